// SPDX-License-Identifier: GPL-2.0

//! The PCI driver: binds NVMe functions (class 01:08:02) and owns their controller.

use kernel::{c_str, prelude::*, sync::Arc};

use crate::{
    kapi::{
        device::{dev_info, dev_warn, Core},
        init::pin_init_scope,
        pci::{self, pci_device_table, BoundAttribute, ChannelState, ErsResult, VfAttribute},
    },
    nvme::{
        controller::Controller,
        ctrl_base::CtrlState,
        ctrl_core::CtrlCore,
        pf::{
            vfs::{VfHooks, VfRecovery},
            PfDriver, PhysFn,
        },
    },
    sysfs, vfio_mode,
};

/// PCI class code of an NVMe controller: mass storage, non-volatile memory, NVM Express.
pub(crate) const PCI_CLASS_STORAGE_EXPRESS: u32 = 0x01_08_02;

pci_device_table!(
    PCI_TABLE,
    RNVME_PCI_IDS,
    (),
    [(
        pci::DeviceId::from_class(PCI_CLASS_STORAGE_EXPRESS, 0xff_ff_ff),
        ()
    ),]
);

/// The driver's per-function object, alive while the function is bound.
#[pin_data]
pub(crate) struct NvmeDriver {
    controller: Controller,
}

impl pci::Driver for NvmeDriver {
    type IdInfo = ();

    const ID_TABLE: pci::IdTable<()> = PCI_TABLE;

    fn probe(
        pdev: &pci::Device<Core>,
        _info: &(),
        physfn: Option<Pin<&Self>>,
    ) -> impl PinInit<Self, Error> {
        let pf = physfn.and_then(|pf| pf.core().phys_fn().cloned());
        pin_init_scope(move || {
            let controller = Controller::new(pdev, pf)?;
            Ok(try_pin_init!(Self { controller }))
        })
    }

    fn unbind(pdev: &pci::Device<Core>, _this: Pin<&Self>) {
        // Dropping the controller removes the disks, shuts the controller down and frees
        // its queues; it logs "unbound" when done.
        dev_info!(pdev, "unbinding\n");
    }

    fn shutdown(_pdev: &pci::Device<Core>, this: Pin<&Self>) {
        this.controller.shutdown();
    }

    fn sriov_configure(pdev: &pci::Device<Core>, this: Pin<&Self>, num_vfs: u16) -> Result<u16> {
        Self::phys_fn(this)?.sriov_configure::<Self>(pdev, num_vfs)
    }

    fn reset_prepare(_pdev: &pci::Device<Core>, this: Pin<&Self>) {
        this.core().prepare_function_reset();
    }

    fn reset_done(_pdev: &pci::Device<Core>, this: Pin<&Self>) {
        this.core().finish_function_reset();
    }

    /// As the C driver: a non-fatal error needs nothing; a frozen link takes the controller
    /// out of service until the link was reset ([`Self::slot_reset`]); a permanent failure
    /// gives the controller up.
    fn error_detected(
        pdev: &pci::Device<Core>,
        this: Pin<&Self>,
        state: ChannelState,
    ) -> ErsResult {
        let core = this.core();
        dev_warn!(pdev, "PCI error detected, channel {:?}\n", state);
        match state {
            ChannelState::Normal => ErsResult::CanRecover,
            ChannelState::Frozen => {
                if core.begin_reset("PCI error recovery (link frozen)") {
                    ErsResult::NeedReset
                } else {
                    ErsResult::Disconnect
                }
            }
            ChannelState::PermanentFailure => {
                core.give_up(format_args!("PCI error recovery: permanent failure"));
                ErsResult::Disconnect
            }
        }
    }

    fn mmio_enabled(pdev: &pci::Device<Core>, _this: Pin<&Self>) -> ErsResult {
        dev_info!(
            pdev,
            "PCI error recovery: MMIO enabled, nothing to restore\n"
        );
        ErsResult::Recovered
    }

    /// The link was reset: the configuration space (on a PF, VF Enable with it) is written
    /// back, and the controller restarted. Each VF's driver gets its own call.
    fn slot_reset(pdev: &pci::Device<Core>, this: Pin<&Self>) -> ErsResult {
        let core = this.core();
        dev_info!(
            pdev,
            "PCI error recovery: restarting after the link reset\n"
        );
        pdev.restore_state();
        pdev.save_state();
        core.finish_reset(VfRecovery::ResetControllers);
        match core.state() {
            CtrlState::Live => ErsResult::Recovered,
            _ => ErsResult::Disconnect,
        }
    }

    fn resume(pdev: &pci::Device<Core>, this: Pin<&Self>) {
        dev_info!(
            pdev,
            "PCI error recovery done, controller {:?}\n",
            this.core().state()
        );
    }

    fn attributes(pdev: &pci::Device<Core>) -> &'static [&'static pci::BoundAttribute<Self>] {
        /// The attributes of a physical function.
        static PF_ATTRIBUTES: [&pci::BoundAttribute<NvmeDriver>; 1] = [&SRIOV_VF_MODE];
        if pdev.is_physfn() {
            &PF_ATTRIBUTES
        } else {
            &[]
        }
    }
}

impl NvmeDriver {
    /// The controller's shared state.
    pub(crate) fn core(&self) -> &Arc<CtrlCore> {
        self.controller.core()
    }
}

impl PfDriver for NvmeDriver {
    fn phys_fn(this: Pin<&Self>) -> Result<&Arc<PhysFn>> {
        this.get_ref().core().phys_fn().ok_or(ENODEV)
    }
}

impl VfHooks for NvmeDriver {
    fn vfio_in_use(vf: &pci::Device) -> bool {
        vfio_mode::in_use::<Self>(vf)
    }

    fn add_mode_attribute(vf: &pci::Device) -> Result {
        vf.add_vf_attribute(&VF_MODE)
    }
}

/// `/sys/bus/pci/devices/<VF>/mode` (see [`sysfs::VfMode`]).
static VF_MODE: VfAttribute<NvmeDriver> = VfAttribute::new::<sysfs::VfMode>(c_str!("mode"), 0o644);

/// `/sys/bus/pci/devices/<PF>/sriov_vf_mode` (see [`sysfs::PfVfMode`]).
static SRIOV_VF_MODE: BoundAttribute<NvmeDriver> =
    BoundAttribute::new::<sysfs::PfVfMode>(c_str!("sriov_vf_mode"), 0o644);
