// SPDX-License-Identifier: GPL-2.0

//! PCI devices and drivers, in the shape of upstream `kernel::pci` (6.18).
//!
//! One idea per file; everything a driver uses is re-exported here, as `crate::kapi::pci::X`:
//!
//! - [`id`]: [`DeviceId`], [`IdTable`] and [`pci_device_table!`];
//! - [`device`]: [`Device`], a PCI function, with its IDs, SR-IOV and saved state;
//! - [`bar`]: [`Bar`] and [`BarReg32`], the mapped memory BARs;
//! - [`irq_vectors`]: [`IrqTypes`] and [`IrqVectors`], the MSI-X/MSI/INTx vectors;
//! - [`driver`]: the [`Driver`] trait and the error recovery values [`ChannelState`] and
//!   [`ErsResult`];
//! - [`attribute`] and [`vf_attribute`]: sysfs attributes of bound functions
//!   ([`BoundAttribute`]) and of VFs ([`VfAttribute`]);
//! - [`adapter`]: the C callbacks of a [`Driver`];
//! - [`registration`]: the one `struct pci_driver` registration of every kind of PCI
//!   driver (this module's [`Registration`], [`crate::kapi::vfio::Registration`]).
//!
//! C header: [`include/linux/pci.h`](srctree/include/linux/pci.h)

mod adapter;
mod attribute;
mod bar;
mod device;
mod driver;
mod id;
mod irq_vectors;
pub(in crate::kapi) mod registration;
mod vf_attribute;

pub(in crate::kapi) use adapter::physfn_data;
pub(crate) use attribute::{BoundAttribute, BoundAttributeOps};
pub(crate) use bar::{Bar, BarReg32};
pub(crate) use device::Device;
pub(crate) use driver::{ChannelState, Driver, ErsResult};
pub(crate) use id::{pci_device_table, DeviceId, IdTable};
pub(crate) use irq_vectors::{IrqTypes, IrqVectors};
pub(crate) use vf_attribute::{VfAttribute, VfAttributeOps};

/// The registration of a PCI [`Driver`] `T` with the PCI core; unregisters on drop.
pub(crate) type Registration<T> = registration::Registration<adapter::Adapter<T>>;
