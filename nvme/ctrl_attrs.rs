// SPDX-License-Identifier: GPL-2.0

//! What a controller's sysfs attributes ask the driver (`kapi::nvme_class::CtrlControls`):
//! the `state` shown, and the actions of `reset_controller` and `rescan_controller`, which
//! accept a write of `1` (optionally followed by one newline) and refuse anything else with
//! `EINVAL`, changing nothing. The attributes are on the controller's class device
//! `nvme<N>` with `nvme_class`, else on its misc device `rnvme<N>`
//! (ABI: `Documentation/ABI/testing/sysfs-bus-pci-rnvme`).
//!
//! # Why an action run from the store callback cannot deadlock with an unbind
//!
//! Both actions run synchronously in the writer's task, inside the sysfs store callback.
//! Removing the device that carries the attribute waits for running callbacks, so an
//! unbind (`Controller::drop`) waits for a running action at that point; there is a
//! deadlock only if the action waits for something the unbinding task holds or has yet to
//! do. At that point the unbinding task holds the PCI function's device lock (the driver
//! core's), for the misc device also the misc core's `misc_mtx` (`misc_deregister` holds
//! it while it removes the device), for a VF switched to vfio mode also the PF's
//! `vf_switch`, and for VFs removed by an SR-IOV disable the PF's device lock. None of the
//! actions takes any of these:
//!
//! - The reset (`CtrlCore::reset_now`) takes this function's reset lock (on a PF its
//!   `PhysFn`'s `vf_bringup`), its `io` and `CtrlBase::admin` mutexes, on a PF its
//!   `PhysFn`'s `sriov` mutex and, for a PF, the migration state mutexes of its vfio-mode VFs
//!   (`sriov_recover_vfs`); it queues the VFs' resets without waiting for them; it takes no
//!   device lock and registers no device. Its queue drains wait for interrupt handlers and
//!   polling tasks, never for the unbind.
//! - The rescan takes this function's `namespaces` and `admin` mutexes and adds or removes
//!   disks (`add_disk`, `del_gendisk`), which take neither a device lock of the parent nor
//!   `misc_mtx`.
//!
//! Nor do they wait for what the unbind does after removing the device: with the misc
//! device the removal comes first (only a VF's detach from its PF has run, which the
//! actions do not depend on); with the class
//! device it comes last, after `begin_removal` (a reset running then finds the state
//! `Removing` at its end and returns `ENODEV`; a new action is refused), `remove_disks`
//! (which waits for the `namespaces` mutex a running rescan holds, and for requeued I/O
//! that a running reset dispatches again when it ends; the reset never takes
//! `namespaces`) and `finish_removal` (which waits for the reset's `io` mutex).

use kernel::{c_str, prelude::*, str::CStr, sync::Arc};

use crate::{
    kapi::nvme_class::CtrlControls,
    nvme::{ctrl_base::CtrlState, ctrl_core::CtrlCore, spec::trigger::is_trigger},
};

impl CtrlControls for CtrlCore {
    fn state_name(&self) -> &'static CStr {
        match self.state() {
            CtrlState::Live => c_str!("live"),
            CtrlState::Resetting => c_str!("resetting"),
            CtrlState::Dead => c_str!("dead"),
            CtrlState::Removing => c_str!("deleting"),
        }
    }

    /// Resets the controller and returns when it is live again: `EBUSY` unless live,
    /// `ENODEV` if the driver began unbinding meanwhile, `EIO` if the reset failed (the
    /// controller is then dead).
    fn reset_controller(this: &Arc<Self>, input: &[u8]) -> Result {
        if !is_trigger(input) {
            return Err(EINVAL);
        }
        this.reset_now()
    }

    /// Rescans the namespaces and returns when the disks follow them: `EBUSY` while the
    /// controller is being reset, `ENODEV` once it is dead or the driver is unbinding.
    fn rescan_controller(this: &Arc<Self>, input: &[u8]) -> Result {
        if !is_trigger(input) {
            return Err(EINVAL);
        }
        match this.state() {
            CtrlState::Live => this.rescan(),
            CtrlState::Resetting => Err(EBUSY),
            CtrlState::Dead | CtrlState::Removing => Err(ENODEV),
        }
    }
}
