// SPDX-License-Identifier: GPL-2.0

//! The driver's sysfs attributes (ABI: `Documentation/ABI/testing/sysfs-bus-pci-rnvme`).
//!
//! - `mode` on every VF of a physical function this driver runs: `[nvme] vfio`; a write
//!   switches the VF ([`crate::vfio_mode::switch`]).
//! - `sriov_vf_mode` on such a physical function: the mode VFs enabled from now on start
//!   in.
//!
//! Both show the choices with the current one in brackets and accept exactly a mode's name
//! with an optional trailing newline; anything else is `EINVAL`.

use core::pin::Pin;

use kernel::{c_str, prelude::*};

use crate::{
    kapi::{
        pci::{self, BoundAttribute, BoundAttributeOps, VfAttribute, VfAttributeOps},
        sysfs::ShowBuffer,
    },
    nvme::{
        driver::NvmeDriver,
        spec::mode::{show_choices, Mode},
    },
    vfio_mode,
};

/// Parses a mode write, or `EINVAL`.
fn parse(input: &[u8]) -> Result<Mode> {
    Mode::parse(input).ok_or(EINVAL)
}

/// Shows the choices with `current` in brackets.
fn show(current: Mode, out: &mut ShowBuffer<'_>) -> Result {
    show_choices(current, out).map_err(|_| EINVAL)
}

/// The `mode` attribute of a VF.
struct VfMode;

impl VfAttributeOps<NvmeDriver> for VfMode {
    fn show(vf: &pci::Device, pf: Pin<&NvmeDriver>, out: &mut ShowBuffer<'_>) -> Result {
        let vfn = vf.vf_number()?;
        show(pf.core().vf_mode(vfn), out)
    }

    fn store(vf: &pci::Device, pf: Pin<&NvmeDriver>, input: &[u8]) -> Result {
        let mode = parse(input)?;
        vfio_mode::switch(vf, pf.core(), mode)
    }
}

/// `/sys/bus/pci/devices/<VF>/mode`.
static VF_MODE: VfAttribute<NvmeDriver> = VfAttribute::new::<VfMode>(c_str!("mode"), 0o644);

/// Adds the `mode` attribute to a VF of a physical function this driver runs.
pub(crate) fn add_vf_mode(vf: &pci::Device) -> Result {
    vf.add_vf_attribute(&VF_MODE)
}

/// The `sriov_vf_mode` attribute of a physical function.
struct PfVfMode;

impl BoundAttributeOps<NvmeDriver> for PfVfMode {
    fn show(_pf: &pci::Device, this: Pin<&NvmeDriver>, out: &mut ShowBuffer<'_>) -> Result {
        show(this.core().new_vf_mode(), out)
    }

    fn store(_pf: &pci::Device, this: Pin<&NvmeDriver>, input: &[u8]) -> Result {
        this.core().set_new_vf_mode(parse(input)?);
        Ok(())
    }
}

/// `/sys/bus/pci/devices/<PF>/sriov_vf_mode`.
pub(crate) static SRIOV_VF_MODE: BoundAttribute<NvmeDriver> =
    BoundAttribute::new::<PfVfMode>(c_str!("sriov_vf_mode"), 0o644);
