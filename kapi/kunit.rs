// SPDX-License-Identifier: GPL-2.0

//! KUnit test suites for the module: a `macro_rules!` backport of upstream's
//! `#[kunit_tests(name)]` (Linux 6.15+) for 6.12.
//!
//! C header: [`include/kunit/test.h`](srctree/include/kunit/test.h)
//!
//! [`kunit_tests!`] builds a `kunit_case` per test function and a `kunit_suite`, and places a
//! pointer to the suite in the `.kunit_test_suites` section. The module loader collects that
//! section, and KUnit runs the suites when the module loads (with `kunit.enable=1`, the
//! default of `CONFIG_KUNIT_DEFAULT_ENABLED`), printing KTAP results to the kernel log.
//!
//! Inside a suite, `assert!` and `assert_eq!` are shadowed by KUnit versions that mark the
//! current test failed, log the location and the values, and return from the test function
//! instead of panicking, as upstream's attribute macro rewrites them.

use core::{fmt, ptr};

use kernel::{bindings, ffi, str::CStr};

use super::bindings::sys;

/// Marks the running KUnit test failed and logs `args` at `file:line`.
#[doc(hidden)]
pub(crate) fn fail(file: &'static CStr, line: u32, args: fmt::Arguments<'_>) {
    // SAFETY: `file` is NUL-terminated and static; `args` outlives the call and is consumed by
    // a `%pA` specifier.
    unsafe {
        sys::rnvme_kunit_fail(
            file.as_char_ptr(),
            line as ffi::c_int,
            ptr::from_ref(&args).cast::<ffi::c_void>(),
        )
    };
}

/// A test case entry running `run` under the name `name`.
#[doc(hidden)]
pub(crate) const fn case(
    name: &'static CStr,
    run: unsafe extern "C" fn(*mut bindings::kunit),
) -> bindings::kunit_case {
    // SAFETY: all-zero is a valid `kunit_case` (null pointers, `None` callbacks, zero status).
    let mut c: bindings::kunit_case = unsafe { core::mem::zeroed() };
    c.run_case = Some(run);
    c.name = name.as_char_ptr();
    c
}

/// The all-zero entry terminating a suite's case array.
#[doc(hidden)]
pub(crate) const fn case_terminator() -> bindings::kunit_case {
    // SAFETY: all-zero is a valid `kunit_case` and is the terminator KUnit looks for.
    unsafe { core::mem::zeroed() }
}

/// A suite named `name` (at most 255 bytes) running `cases`.
#[doc(hidden)]
pub(crate) const fn suite(name: &str, cases: *mut bindings::kunit_case) -> bindings::kunit_suite {
    // SAFETY: all-zero is a valid `kunit_suite`.
    let mut s: bindings::kunit_suite = unsafe { core::mem::zeroed() };
    let bytes = name.as_bytes();
    assert!(bytes.len() < 256, "KUnit suite names are at most 255 bytes");
    let mut i = 0;
    while i < bytes.len() {
        s.name[i] = bytes[i] as ffi::c_char;
        i += 1;
    }
    s.test_cases = cases;
    s
}

/// Declares a KUnit suite. See the [module documentation](self).
///
/// ```ignore
/// kunit_tests!(rnvme_regs, {
///     fn cap_fields() {
///         assert_eq!(Cap(0x7ff).mqes(), 0x7ff);
///     }
/// });
/// ```
macro_rules! kunit_tests {
    ($suite:ident, { $( $(#[$attr:meta])* fn $name:ident() $body:block )+ }) => {
        $crate::kapi::kunit::kunit_tests!(@with_dollar ($) $suite, { $( $(#[$attr])* fn $name() $body )+ });
    };
    (@with_dollar ($d:tt) $suite:ident, { $( $(#[$attr:meta])* fn $name:ident() $body:block )+ }) => {
        #[allow(unused_macros)]
        mod $suite {
            use super::*;

            macro_rules! assert {
                ($d cond:expr $d(,)?) => {
                    if !$d cond {
                        $crate::kapi::kunit::fail(
                            kernel::c_str!(file!()),
                            line!(),
                            format_args!("Expected {} to be true, but is false", stringify!($d cond)),
                        );
                        return;
                    }
                };
            }

            macro_rules! assert_eq {
                ($d left:expr, $d right:expr $d(,)?) => {
                    match (&$d left, &$d right) {
                        (l, r) => {
                            if !(*l == *r) {
                                $crate::kapi::kunit::fail(
                                    kernel::c_str!(file!()),
                                    line!(),
                                    format_args!(
                                        "Expected {} == {}, but {:?} != {:?}",
                                        stringify!($d left), stringify!($d right), l, r
                                    ),
                                );
                                return;
                            }
                        }
                    }
                };
            }

            $(
                $(#[$attr])*
                fn $name() $body
            )+

            mod cases {
                $(
                    /// KUnit entry point of the case.
                    pub(super) extern "C" fn $name(_test: *mut kernel::bindings::kunit) {
                        super::$name()
                    }
                )+
            }

            static mut CASES: [kernel::bindings::kunit_case; [$(stringify!($name)),+].len() + 1] = [
                $(
                    $crate::kapi::kunit::case(
                        kernel::c_str!(stringify!($name)),
                        cases::$name,
                    ),
                )+
                $crate::kapi::kunit::case_terminator(),
            ];

            static mut SUITE: kernel::bindings::kunit_suite =
                $crate::kapi::kunit::suite(stringify!($suite), &raw mut CASES as *mut _);

            // The section KUnit finds its suites in; expanded in driver code, whose crate
            // denies `unsafe_code`, so the macro allows its own attribute.
            #[allow(unsafe_code)]
            #[used]
            #[link_section = ".kunit_test_suites"]
            static mut SUITE_ENTRY: *const kernel::bindings::kunit_suite = &raw const SUITE;
        }
    };
}
pub(crate) use kunit_tests;
