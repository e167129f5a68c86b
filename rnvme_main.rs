// SPDX-License-Identifier: GPL-2.0

//! rnvme: an NVMe PCI driver in Rust that owns both lives of an SR-IOV function: normal block
//! operation and VFIO operation.
//!
//! The crate root: it declares the layers, each a folder, and registers the module's two
//! PCI drivers. `Documentation/architecture.rst` draws how they stand on each other:
//!
//! - `nvme/spec/`: the pure logic (NVMe and TP4159 encodings, the VFIO migration stream and
//!   state machine, the mode words), also the host crate `rnvme-spec`; mounted as
//!   `nvme::spec`. It uses nothing else.
//! - `kapi/`: the kernel API layer (PCI, MMIO, DMA, IRQ, blk-mq, VFIO, sysfs, ...) in the
//!   shapes of upstream Rust-for-Linux; all `unsafe` code lives there.
//! - `nvme/`: the block-mode driver. Its lower part (the controller's basics, I/O queues,
//!   disks, recovery, and the physical function's services, `nvme/pf/`) stands on those
//!   two; its PCI driver (`nvme/driver.rs`) stands on everything below.
//! - `vfio-mode/` (module `vfio_mode`): the vfio-mode driver, a VF's VFIO migration and the
//!   switch between the two modes; it uses the physical function's services.
//! - `sysfs/`: what the `mode` and `sriov_vf_mode` attributes do, over the two above.

// Driver code is safe Rust, and the compiler holds it to that: only the kernel API layer
// (`kapi/`) may contain `unsafe`, each block with the argument why it is sound.
#![deny(unsafe_code)]

// The layer mirrors upstream APIs as a library would; not every item has a user yet.
#[allow(dead_code)]
#[allow(unsafe_code)]
#[macro_use]
mod kapi;

mod nvme;
mod sysfs;
// `vfio-mode/` is the folder name the project was asked for, and not a Rust identifier:
// this is the one module whose file needs a path.
#[path = "vfio-mode/mod.rs"]
mod vfio_mode;

use kernel::prelude::*;

use kapi::{nvme_class, pci, vfio};
use nvme::driver;

module! {
    type: RnvmeModule,
    name: "rnvme",
    author: "rnvme developers",
    description: "NVMe PCI driver owning both the block and the VFIO life of SR-IOV functions",
    license: "GPL",
}

/// The module: holds the registrations of its two PCI drivers. Fields drop in order: the
/// block driver goes first, so that its PFs disable their VFs (unbinding the vfio-mode ones)
/// while the vfio-mode driver still exists.
struct RnvmeModule {
    _driver: Pin<KBox<pci::Registration<driver::NvmeDriver>>>,
    _vfio_driver: Pin<KBox<vfio::Registration<vfio_mode::VfioVf<driver::NvmeDriver>>>>,
    /// Last: the classes outlive every controller device in them.
    _class: nvme_class::ClassRegistration,
}

impl kernel::Module for RnvmeModule {
    fn init(module: &'static ThisModule) -> Result<Self> {
        // The `nvme` classes first (if `nvme_class` asks for them): probes name their
        // devices after them.
        let class = nvme_class::ClassRegistration::new()?;
        // The vfio-mode driver first: the PCI core offers a new device to drivers in
        // registration order, so a VF coming up in vfio mode is bound at the first
        // attempt instead of after a declined block probe.
        let vfio_driver = KBox::pin_init(
            vfio::Registration::new(vfio_mode::DRIVER_NAME, module),
            GFP_KERNEL,
        )?;
        let driver = KBox::pin_init(
            pci::Registration::new(vfio_mode::BLOCK_DRIVER_NAME, module),
            GFP_KERNEL,
        )?;
        Ok(Self {
            _driver: driver,
            _vfio_driver: vfio_driver,
            _class: class,
        })
    }
}
