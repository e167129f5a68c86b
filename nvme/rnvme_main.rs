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
//! - `nvme/`: the driver: PCI binding, controller bring-up.

// The layer mirrors upstream APIs as a library would; not every item has a user yet.
#[allow(dead_code)]
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
mod dbbuf;
mod driver;
mod events;
mod io_ops;
mod io_queue;
mod namespace;
mod namespaces;
mod nvme_error;
mod queue;
mod sriov;
mod user_cmd;

#[cfg(CONFIG_KUNIT)]
mod kunit_tests;

use kernel::{c_str, prelude::*};

use kapi::pci;

module! {
    type: RnvmeModule,
    name: "rnvme",
    author: "rnvme developers",
    description: "NVMe PCI driver owning both the block and the VFIO life of SR-IOV functions",
    license: "GPL",
}

/// The module: holds the PCI driver registration.
struct RnvmeModule {
    _driver: Pin<KBox<pci::Registration<driver::NvmeDriver>>>,
}

impl kernel::Module for RnvmeModule {
    fn init(module: &'static ThisModule) -> Result<Self> {
        let driver = KBox::pin_init(pci::Registration::new(c_str!("rnvme"), module), GFP_KERNEL)?;
        Ok(Self { _driver: driver })
    }
}
