// SPDX-License-Identifier: GPL-2.0

//! The PCI [`Driver`] trait, and the values PCI error recovery passes to and expects from
//! its callbacks.
//!
//! C header: [`include/linux/pci.h`](srctree/include/linux/pci.h)

use core::pin::Pin;

use kernel::prelude::*;

use super::{attribute::BoundAttribute, device::Device, id::IdTable};
use crate::kapi::device::Core;

/// The state of a function's link when PCI error recovery reports an error
/// (`pci_channel_state_t`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ChannelState {
    /// I/O still works (a non-fatal error).
    Normal,
    /// I/O to the function is blocked until the link is reset (a fatal error).
    Frozen,
    /// The function is gone for good.
    PermanentFailure,
}

impl ChannelState {
    /// From the C value (`enum pci_channel_state` in `include/linux/pci.h`: 1, 2, 3);
    /// an unknown value is taken as the worst case.
    pub(super) fn from_raw(raw: u32) -> Self {
        match raw {
            1 => Self::Normal,
            2 => Self::Frozen,
            _ => Self::PermanentFailure,
        }
    }
}

/// What a driver asks of PCI error recovery (`pci_ers_result_t`; the values are those of
/// `enum pci_ers_result` in `include/linux/pci.h`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u32)]
pub(crate) enum ErsResult {
    /// No opinion.
    None = 1,
    /// The driver can recover without a reset.
    CanRecover = 2,
    /// The driver needs the link or slot reset.
    NeedReset = 3,
    /// The device cannot be recovered.
    Disconnect = 4,
    /// The driver recovered.
    Recovered = 5,
}

/// A PCI driver.
pub(crate) trait Driver: Sized + Send + Sync + 'static {
    /// Per-entry data of the ID table, handed to [`Driver::probe`].
    type IdInfo: 'static;

    /// The devices this driver binds to.
    const ID_TABLE: IdTable<Self::IdInfo>;

    /// Binds the driver to `dev`; the returned object lives until the device is unbound.
    /// `physfn` is the driver's object of `dev`'s physical function when `dev` is a VF
    /// whose PF is bound to this driver too.
    fn probe(
        dev: &Device<Core>,
        id_info: &Self::IdInfo,
        physfn: Option<Pin<&Self>>,
    ) -> impl PinInit<Self, Error>;

    /// Called before the driver's object is dropped at unbind, with the device still bound.
    fn unbind(dev: &Device<Core>, this: Pin<&Self>) {
        let _ = (dev, this);
    }

    /// Called at system shutdown or reboot with the device still bound: quiesce it so that
    /// it does no more DMA (the object is not dropped).
    fn shutdown(dev: &Device<Core>, this: Pin<&Self>) {
        let _ = (dev, this);
    }

    /// `echo N > sriov_numvfs` on a bound physical function: enable `num_vfs` VFs (0:
    /// disable them); returns how many are enabled. The PCI core has checked `num_vfs`
    /// against the function's total and that VFs are disabled before new ones are enabled.
    /// By default SR-IOV is not supported (`ENODEV`).
    fn sriov_configure(dev: &Device<Core>, this: Pin<&Self>, num_vfs: u16) -> Result<u16> {
        let _ = (dev, this, num_vfs);
        Err(ENODEV)
    }

    /// A reset of the function is about to happen (`echo 1 > reset`, a reset of the bus
    /// it sits on, or a VFIO user's): stop using the device. The PCI core saves the
    /// configuration space after this and restores it before [`Driver::reset_done`].
    fn reset_prepare(dev: &Device<Core>, this: Pin<&Self>) {
        let _ = (dev, this);
    }

    /// The reset announced by [`Driver::reset_prepare`] is over (successful or not): bring
    /// the device back into use.
    fn reset_done(dev: &Device<Core>, this: Pin<&Self>) {
        let _ = (dev, this);
    }

    /// PCI error recovery (AER, DPC): an error was detected on the function's link in
    /// `state`. Returns what the driver needs next. The default asks for nothing, which
    /// the PCI core takes as "no opinion".
    fn error_detected(dev: &Device<Core>, this: Pin<&Self>, state: ChannelState) -> ErsResult {
        let _ = (dev, this, state);
        ErsResult::None
    }

    /// PCI error recovery: MMIO works again (after [`ErsResult::CanRecover`]).
    fn mmio_enabled(dev: &Device<Core>, this: Pin<&Self>) -> ErsResult {
        let _ = (dev, this);
        ErsResult::Recovered
    }

    /// PCI error recovery: the link or slot was reset (after [`ErsResult::NeedReset`]);
    /// the function's configuration space is as after power-on.
    fn slot_reset(dev: &Device<Core>, this: Pin<&Self>) -> ErsResult {
        let _ = (dev, this);
        ErsResult::Disconnect
    }

    /// PCI error recovery is over: normal operation may resume.
    fn resume(dev: &Device<Core>, this: Pin<&Self>) {
        let _ = (dev, this);
    }

    /// The sysfs attributes added to a function once it is bound (and removed before
    /// [`Driver::unbind`]); none by default.
    fn attributes(dev: &Device<Core>) -> &'static [&'static BoundAttribute<Self>] {
        let _ = dev;
        &[]
    }
}
