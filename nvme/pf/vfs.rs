// SPDX-License-Identifier: GPL-2.0

//! The VFs as their physical function sees them: the handles through which its SR-IOV
//! state reaches a VF's driver (block mode or vfio mode) when the PF is reset, and what the
//! drivers above do for each VF it enables or disables.

use kernel::sync::Arc;

use crate::kapi::pci;

/// How the VFs' own controllers come back after their PF's controller was reset.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum VfRecovery {
    /// Only the PF's controller was reset (CC.EN), which took the VFs' secondary
    /// controllers offline: the VFs in block mode are reset once they are online again.
    /// Also after PCI error recovery, where every VF's driver recovers its own function.
    ResetControllers,
    /// A function reset of the PF (FLR) reset its VFs' PCI functions too: the VFs in
    /// block mode, which [`BlockVf::stop_for_pf_reset`] took out of service, get
    /// their configuration space back and are restarted.
    RestoreFunctions,
}

/// A VF bound in block mode, as its PF sees it (its controller, [`crate::nvme::ctrl_core`]).
pub(crate) trait BlockVf: Send + Sync {
    /// Whether a disk of the VF is open or mounted.
    fn disks_in_use(&self) -> bool;

    /// Takes the VF's controller out of service: a function reset of the PF is about to
    /// reset the VF's function too.
    fn stop_for_pf_reset(&self);

    /// After a reset of the PF: brings the VF's controller back as `how` says if the PF
    /// came back (`pf_live`), else gives it up with its PF.
    fn recover_after_pf_reset(self: Arc<Self>, how: VfRecovery, pf_live: bool);
}

/// A VF in vfio mode, as its PF sees it: told when a reset of the PF took its secondary
/// controller's state away (the controller went offline and came back empty), so that a
/// migration under way does not go on with a state the device no longer has.
pub(crate) trait VfioVfState: Send + Sync {
    /// A reset of the PF reset the VF's secondary controller.
    fn reset_by_pf(&self);
}

/// What the drivers above the physical function's services do for each VF that SR-IOV
/// enables or disables (implemented by the block-mode PCI driver, which knows both).
pub(crate) trait VfHooks {
    /// Whether `vf` is in vfio mode with its VFIO device open.
    fn vfio_in_use(vf: &pci::Device) -> bool;

    /// Adds the `mode` attribute to the new VF `vf`.
    fn add_mode_attribute(vf: &pci::Device) -> kernel::error::Result;
}
