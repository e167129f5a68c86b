// SPDX-License-Identifier: GPL-2.0

//! Switching a VF between block mode and vfio mode (a write to its `mode` attribute).
//!
//! The switch records the new mode in the PF's state, unbinds the VF from the driver of
//! the old mode and binds it to the driver of the new one, whose probe accepts the VF
//! because of the recorded mode. It returns when the VF is bound again: in the new mode,
//! or, if the new driver's probe failed, back in the old one.
//!
//! Deadlock freedom: the attribute belongs to the VF's device, not to either driver, so
//! unbinding does not remove the file whose write is running. Writers of one PF's VFs are
//! serialised by `PhysFn::vf_switch`, which is taken without any device lock held;
//! probes (run under the VF's device lock) never take it. Removing the VF (or disabling
//! the VFs) waits for a running write; the write's bind then fails with `ENODEV`.

use kernel::{prelude::*, sync::Arc};

use crate::{
    kapi::{
        device::{dev_err, dev_info, dev_warn},
        pci,
    },
    nvme::{
        pf::{PfDriver, PhysFn},
        spec::mode::Mode,
    },
};

use super::{driver_name, in_use, BLOCK_DRIVER_NAME, DRIVER_NAME};

/// Switches `vf` (a VF of `pf`, which is bound to `P`) to `new`. Writing the current mode succeeds and changes
/// nothing. `EBUSY` if the VF is in use (a disk open or mounted in block mode, the VFIO
/// device open in vfio mode) or bound to a driver of another module; then nothing changes.
pub(crate) fn switch<P: PfDriver<IdInfo = ()>>(
    vf: &pci::Device,
    pf: &Arc<PhysFn>,
    new: Mode,
) -> Result {
    let vfn = vf.vf_number()?;
    let _serialised = pf.vf_switch.lock();
    let old = pf.vf_mode(vfn);
    if old == new {
        return Ok(());
    }
    if !vf.unbound_or_bound_to(BLOCK_DRIVER_NAME, DRIVER_NAME) {
        dev_warn!(
            vf,
            "VF {}: bound to a driver of another module; unbind it first\n",
            vfn
        );
        return Err(EBUSY);
    }
    let busy = match old {
        Mode::Nvme => pf.vf_disks_in_use(vfn),
        Mode::Vfio => in_use::<P>(vf),
    };
    if busy {
        dev_warn!(
            vf,
            "VF {} is in use ({}): staying in {} mode\n",
            vfn,
            match old {
                Mode::Nvme => "a disk is open or mounted",
                Mode::Vfio => "its VFIO device is open",
            },
            old.name()
        );
        return Err(EBUSY);
    }

    pf.set_vf_mode(vfn, new)?;
    vf.release_driver();
    let Err(e) = vf.attach_driver(driver_name(new)) else {
        dev_info!(vf, "VF {}: switched to {} mode\n", vfn, new.name());
        return Ok(());
    };
    dev_err!(
        vf,
        "VF {}: {} mode failed ({:?}); back to {} mode\n",
        vfn,
        new.name(),
        e,
        old.name()
    );
    pf.set_vf_mode(vfn, old)?;
    if let Err(back) = vf.attach_driver(driver_name(old)) {
        dev_err!(
            vf,
            "VF {}: binding in {} mode again failed too: {:?}\n",
            vfn,
            old.name(),
            back
        );
    }
    Err(e)
}
