// SPDX-License-Identifier: GPL-2.0

//! VFIO mode: the second life of a VF of a physical function this driver runs.
//!
//! The module registers two PCI drivers for NVMe functions: `rnvme` (block mode,
//! `nvme/driver.rs`) and `rnvme-vfio` ([`driver`]), a vfio-pci-core driver. The PF's state
//! records each VF's [`Mode`]; each driver's probe declines (`ENODEV`) a VF in the other
//! mode, so a new VF binds straight to the right one and a VF in vfio mode never runs the
//! block probe. A write to a VF's `mode` attribute unbinds the VF and binds it to the
//! other driver ([`switch()`]). See `Documentation/vfio-mode.rst`.

mod dirty;
mod driver;
mod migration;
mod switch;

#[cfg(CONFIG_KUNIT)]
mod kunit_tests;

pub(crate) use driver::{in_use, VfioVf};
pub(crate) use switch::switch;

use crate::nvme::spec::mode::Mode;

/// Name of the vfio-mode PCI driver (`/sys/bus/pci/drivers/rnvme-vfio`).
pub(crate) const DRIVER_NAME: &kernel::str::CStr = kernel::c_str!("rnvme-vfio");

/// Name of the block-mode PCI driver (`/sys/bus/pci/drivers/rnvme`).
pub(crate) const BLOCK_DRIVER_NAME: &kernel::str::CStr = kernel::c_str!("rnvme");

/// The PCI driver that serves `mode`.
pub(crate) fn driver_name(mode: Mode) -> &'static kernel::str::CStr {
    match mode {
        Mode::Nvme => BLOCK_DRIVER_NAME,
        Mode::Vfio => DRIVER_NAME,
    }
}
