// SPDX-License-Identifier: GPL-2.0

//! rnvme: an NVMe PCI driver in Rust that owns both lives of an SR-IOV function: normal block
//! operation and VFIO operation.
//!
//! Crate layout (one idea per file):
//!
//! - `kapi/`: the project-local kernel API layer (PCI, MMIO, devices, KUnit, ...) in the
//!   shapes of upstream Rust-for-Linux 6.18; all `unsafe` code lives there.
//! - `nvme/spec/`: pure NVMe logic (registers, later commands and queues), also compiled on
//!   the host by the `rnvme-spec` crate.
//! - `nvme/`: the block-mode driver: PCI binding, controller, queues, disks, SR-IOV.
//! - `vfio-mode/`: the vfio-mode driver and the switch between the two modes.
//! - `sysfs/`: the `mode` and `sriov_vf_mode` attributes.

// Driver code is safe Rust, and the compiler holds it to that: only the kernel API layer
// (`kapi/`) may contain `unsafe`, each block with the argument why it is sound.
#![deny(unsafe_code)]

// The layer mirrors upstream APIs as a library would; not every item has a user yet.
#[allow(dead_code)]
#[allow(unsafe_code)]
#[macro_use]
#[path = "../kapi/mod.rs"]
mod kapi;

#[allow(dead_code, unreachable_pub)]
#[path = "spec/mod.rs"]
mod spec;

mod admin;
mod chardev;
mod controller;
mod core;
mod ctrl_attrs;
mod dbbuf;
mod driver;
mod events;
mod io_ops;
mod io_queue;
mod lm;
mod namespace;
mod namespaces;
mod nvme_error;
mod queue;
mod sriov;
mod user_cmd;

#[allow(dead_code, unreachable_pub)]
#[path = "../vfio-mode/mig/mod.rs"]
mod mig;
#[allow(dead_code, unreachable_pub)]
#[path = "../vfio-mode/mode.rs"]
mod mode;
#[path = "../sysfs/mod.rs"]
mod sysfs;
#[path = "../vfio-mode/mod.rs"]
mod vfio_mode;

#[cfg(CONFIG_KUNIT)]
mod kunit_tests;
#[cfg(CONFIG_KUNIT)]
#[path = "../vfio-mode/kunit_tests.rs"]
mod vfio_kunit_tests;

use kernel::prelude::*;

use kapi::{nvme_class, pci, vfio};

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
    _vfio_driver: Pin<KBox<vfio::Registration<vfio_mode::VfioVf>>>,
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
