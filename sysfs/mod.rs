// SPDX-License-Identifier: GPL-2.0

//! What the driver's sysfs attributes do (ABI: `Documentation/ABI/testing/sysfs-bus-pci-rnvme`).
//!
//! - `mode` on every VF of a physical function this driver runs: `[nvme] vfio`; a write
//!   switches the VF ([`crate::vfio_mode::switch`]).
//! - `sriov_vf_mode` on such a physical function: the mode VFs enabled from now on start
//!   in.
//!
//! Both show the choices with the current one in brackets and accept exactly a mode's name
//! with an optional trailing newline; anything else is `EINVAL`. The attributes themselves
//! are the PF driver's (`nvme/driver.rs`); these are their operations, for any driver of
//! physical functions ([`PfDriver`]).

use core::pin::Pin;

use kernel::prelude::*;

use crate::{
    kapi::{
        pci::{self, BoundAttributeOps, VfAttributeOps},
        sysfs::ShowBuffer,
    },
    nvme::{
        pf::PfDriver,
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
pub(crate) struct VfMode;

impl<P: PfDriver<IdInfo = ()>> VfAttributeOps<P> for VfMode {
    fn show(vf: &pci::Device, pf: Pin<&P>, out: &mut ShowBuffer<'_>) -> Result {
        let vfn = vf.vf_number()?;
        show(P::phys_fn(pf)?.vf_mode(vfn), out)
    }

    fn store(vf: &pci::Device, pf: Pin<&P>, input: &[u8]) -> Result {
        let mode = parse(input)?;
        vfio_mode::switch::<P>(vf, P::phys_fn(pf)?, mode)
    }
}

/// The `sriov_vf_mode` attribute of a physical function.
pub(crate) struct PfVfMode;

impl<P: PfDriver> BoundAttributeOps<P> for PfVfMode {
    fn show(_pf: &pci::Device, this: Pin<&P>, out: &mut ShowBuffer<'_>) -> Result {
        show(P::phys_fn(this)?.new_vf_mode(), out)
    }

    fn store(_pf: &pci::Device, this: Pin<&P>, input: &[u8]) -> Result {
        P::phys_fn(this)?.set_new_vf_mode(parse(input)?);
        Ok(())
    }
}
