// SPDX-License-Identifier: GPL-2.0

//! The `rnvme-vfio` PCI driver: a VF in vfio mode becomes a vfio-pci-core device.
//!
//! The probe checks what makes VFIO mode safe and useful, then leaves the function to
//! vfio-pci-core: it never enables the controller, creates queues or does DMA (the driver
//! is registered with `driver_managed_dma`, so the IOMMU group is VFIO's to give away).

use kernel::{prelude::*, sync::Arc};

use crate::{
    core::CtrlCore,
    driver::{NvmeDriver, PCI_TABLE},
    kapi::{
        device::{dev_err, dev_info, Core},
        init::pin_init_scope,
        pci, vfio,
    },
    mode::Mode,
};

/// A VF in vfio mode.
#[pin_data]
pub(crate) struct VfioVf {
    /// The controller of the VF's physical function.
    pf: Arc<CtrlCore>,
    /// The VF number (1-based).
    vfn: u16,
}

impl vfio::Driver for VfioVf {
    type PhysFn = NvmeDriver;

    const ID_TABLE: pci::IdTable<()> = PCI_TABLE;

    fn probe(
        pdev: &pci::Device<Core>,
        physfn: Option<Pin<&NvmeDriver>>,
    ) -> impl PinInit<Self, Error> {
        pin_init_scope(move || Self::check(pdev, physfn))
    }

    fn unbind(pdev: &pci::Device<Core>, this: Pin<&Self>) {
        dev_info!(
            pdev,
            "VF {}: VFIO device removed (PF controller {})\n",
            this.vfn,
            this.pf.pdev().as_dev().name()
        );
    }
}

impl VfioVf {
    /// Whether `pdev` is a VF in vfio mode of a PF this driver runs, alone in its IOMMU
    /// group; brings its secondary controller online.
    fn check(pdev: &pci::Device<Core>, physfn: Option<Pin<&NvmeDriver>>) -> Result<Self> {
        // Only VFs of a PF this module runs, and only in vfio mode; everything else is
        // left to other drivers.
        let pf = physfn.ok_or(ENODEV)?.core().clone();
        let vfn = pdev.vf_number()?;
        if pf.vf_mode(vfn) != Mode::Vfio {
            return Err(ENODEV);
        }
        // A VMM owns everything in the group: another device in it would be handed over
        // too (or block the hand-over), and without a group there is no isolation at all.
        let group = pdev.iommu_group_size();
        if group != 1 {
            dev_err!(
                pdev,
                "VF {}: vfio mode needs an IOMMU group of its own ({} device(s) in it)\n",
                vfn,
                group
            );
            return Err(EPERM);
        }
        pf.sriov_vf_online(pdev, vfn)?;
        dev_info!(pdev, "VF {}: vfio mode\n", vfn);
        Ok(Self { pf, vfn })
    }
}

/// Whether `vf` is in vfio mode with its VFIO device open (by a VMM or another user).
/// Must not be called with the VF's device lock held.
pub(crate) fn in_use(vf: &pci::Device) -> bool {
    vfio::in_use::<VfioVf>(vf)
}
