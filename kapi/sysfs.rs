// SPDX-License-Identifier: GPL-2.0

//! sysfs attributes of devices (`struct device_attribute`).
//!
//! An attribute is a `static` built at compile time by a bus module (see
//! [`crate::kapi::pci::VfAttribute`]), whose typed callbacks are reached through the
//! trampolines there; this file holds what every attribute shares: the C object, the
//! output buffer of `show` and the input of `store`.
//!
//! C header: [`include/linux/device.h`](srctree/include/linux/device.h)

use core::fmt;

use kernel::{bindings, ffi, str::CStr, types::Opaque};

/// `show` callback of a `struct device_attribute`.
pub(crate) type RawShow = unsafe extern "C" fn(
    *mut bindings::device,
    *mut bindings::device_attribute,
    *mut ffi::c_char,
) -> isize;

/// `store` callback of a `struct device_attribute`.
pub(crate) type RawStore = unsafe extern "C" fn(
    *mut bindings::device,
    *mut bindings::device_attribute,
    *const ffi::c_char,
    usize,
) -> isize;

/// A device attribute: a file in a device's sysfs directory.
///
/// # Invariants
///
/// The wrapped `device_attribute` has a static NUL-terminated name and valid callbacks.
#[repr(transparent)]
pub(crate) struct DeviceAttribute(Opaque<bindings::device_attribute>);

// SAFETY: the attribute is never changed after construction; sysfs only reads it.
unsafe impl Sync for DeviceAttribute {}

impl DeviceAttribute {
    /// An attribute `name` with permissions `mode` (e.g. `0o644`).
    ///
    /// # Safety
    ///
    /// `show` and `store` must be safe to call by sysfs for every device the attribute is
    /// added to (they are trampolines that check what they need).
    pub(crate) const unsafe fn new(
        name: &'static CStr,
        mode: u16,
        show: RawShow,
        store: RawStore,
    ) -> Self {
        // SAFETY: all-zero is a valid `device_attribute` (null pointers, no callbacks, a
        // zeroed static lockdep key).
        let mut attr: bindings::device_attribute = unsafe { core::mem::zeroed() };
        attr.attr.name = name.as_char_ptr();
        attr.attr.mode = mode;
        attr.show = Some(show);
        attr.store = Some(store);
        // INVARIANT: a static name and the caller's callbacks.
        Self(Opaque::new(attr))
    }

    /// The C object.
    pub(crate) fn as_raw(&self) -> *const bindings::device_attribute {
        self.0.get()
    }
}

/// The page `show` writes into, like `sysfs_emit`: output beyond it is cut off.
pub(crate) struct ShowBuffer<'a> {
    page: &'a mut [u8],
    len: usize,
}

impl<'a> ShowBuffer<'a> {
    /// Wraps the page sysfs hands to `show`.
    pub(crate) fn new(page: &'a mut [u8]) -> Self {
        Self { page, len: 0 }
    }

    /// Bytes written.
    pub(crate) fn len(&self) -> usize {
        self.len
    }
}

impl fmt::Write for ShowBuffer<'_> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        let room = self.page.len().saturating_sub(self.len);
        let n = s.len().min(room);
        self.page[self.len..self.len + n].copy_from_slice(&s.as_bytes()[..n]);
        self.len += n;
        if n < s.len() {
            return Err(fmt::Error);
        }
        Ok(())
    }
}
