// SPDX-License-Identifier: GPL-2.0

//! The project-local kernel API layer.
//!
//! Linux 6.12's `kernel` crate has no PCI, MMIO, DMA, IRQ, sysfs or VFIO abstractions. This
//! layer provides them in the shapes of upstream Rust-for-Linux 6.18 (`kernel::pci`,
//! `kernel::io`, `kernel::device`, ...), so that moving the driver to a newer kernel is mostly
//! a change of `use` paths from `crate::kapi::x` to `kernel::x`.
//!
//! All `unsafe` code of the module lives here, each block with a `// SAFETY:` comment; the
//! driver code in `nvme/`, `sysfs/` and `vfio-mode/` is safe Rust.
//!
//! The C declarations come from the module's own bindgen run ([`bindings`]) and a small C glue
//! object (`kapi/glue/helpers.c`) for static inline functions and macros.

pub(crate) mod arch;
pub(crate) mod bindings;
pub(crate) mod block;
pub(crate) mod cpu;
pub(crate) mod delay;
pub(crate) mod device;
pub(crate) mod dma;
pub(crate) mod error;
pub(crate) mod init;
pub(crate) mod instance;
pub(crate) mod io;
pub(crate) mod irq;
pub(crate) mod miscdevice;
pub(crate) mod nvme_class;
pub(crate) mod params;
#[macro_use]
pub(crate) mod kunit;
pub(crate) mod pci;
pub(crate) mod sync;
pub(crate) mod sysfs;
pub(crate) mod vfio;
pub(crate) mod workqueue;
