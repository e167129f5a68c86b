// SPDX-License-Identifier: GPL-2.0

//! The module's own bindings.
//!
//! `generated/sys.rs` is produced at build time by `kapi/glue/gen-bindings.sh` from
//! `kapi/glue/bindings.h` with the kernel's own bindgen command. Types that
//! `kernel::bindings` defines completely are not generated again but resolve, through the glob
//! import below, to the kernel's types.

/// Raw C declarations for PCI, VFIO, NVMe, IRQ, DMA and the C glue helpers.
#[allow(
    dead_code,
    improper_ctypes,
    missing_docs,
    non_camel_case_types,
    non_snake_case,
    non_upper_case_globals,
    unreachable_pub,
    unsafe_op_in_unsafe_fn,
    unused_imports,
    clippy::all,
    clippy::undocumented_unsafe_blocks
)]
pub(crate) mod sys {
    use kernel::bindings::*;
    use kernel::ffi;

    include!("generated/sys.rs");
}
