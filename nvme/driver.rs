// SPDX-License-Identifier: GPL-2.0

//! The PCI driver: binds NVMe functions (class 01:08:02) and owns their controller.

use kernel::{c_str, prelude::*, sync::Arc};

use crate::{
    controller::Controller,
    core::CtrlCore,
    kapi::{
        device::{dev_info, Core},
        init::pin_init_scope,
        pci::{self, pci_device_table},
    },
    sysfs,
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
        let pf = physfn.map(|pf| pf.controller.core().clone());
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
        this.controller.core().sriov_configure(pdev, num_vfs)
    }

    fn attributes(pdev: &pci::Device<Core>) -> &'static [&'static pci::BoundAttribute<Self>] {
        /// The attributes of a physical function.
        static PF_ATTRIBUTES: [&pci::BoundAttribute<NvmeDriver>; 1] = [&sysfs::SRIOV_VF_MODE];
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

/// Name under which the driver requests BAR0.
pub(crate) const BAR0_NAME: &kernel::str::CStr = c_str!("rnvme");
