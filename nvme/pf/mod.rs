// SPDX-License-Identifier: GPL-2.0

//! What only a physical function has ([`PhysFn`]): SR-IOV (its VFs' secondary controllers,
//! modes and drivers) and the live migration commands (TP4159) it sends for them. A VF's
//! controller carries none of it; the vfio-mode driver of a VF uses its PF's.

pub(crate) mod lm;
pub(crate) mod sriov;
pub(crate) mod vfs;

pub(crate) use sriov::PhysFn;

use core::pin::Pin;

use kernel::{error::Result, sync::Arc};

use crate::kapi::pci;

/// A PCI driver of physical functions with services for their VFs: the drivers and
/// attributes of the VFs reach their PF's [`PhysFn`] through it, without knowing the driver.
pub(crate) trait PfDriver: pci::Driver {
    /// The services of `this`, a bound physical function; `ENODEV` if it has none.
    fn phys_fn(this: Pin<&Self>) -> Result<&Arc<PhysFn>>;
}
