// SPDX-License-Identifier: GPL-2.0

//! The `rnvme-vfio` PCI driver: a VF in vfio mode becomes a vfio-pci-core device.
//!
//! The probe checks what makes VFIO mode safe and useful, then leaves the function to
//! vfio-pci-core: it never enables the controller, creates queues or does DMA (the driver
//! is registered with `driver_managed_dma`, so the IOMMU group is VFIO's to give away).

use core::marker::PhantomData;

use kernel::{prelude::*, sync::Arc};

use crate::{
    kapi::{
        device::{dev_err, dev_info, dev_warn, Core},
        init::pin_init_scope,
        pci,
        vfio::{self, IovaBitmap, IovaRange, MigrationFile, VfioDevice},
    },
    nvme::{
        pf::{PfDriver, PhysFn},
        spec::mode::Mode,
    },
};

use super::{dirty::VfDirty, migration::VfMigration};

/// A VF in vfio mode, of a physical function bound to the PCI driver `P`.
#[pin_data]
pub(crate) struct VfioVf<P> {
    /// The services of the VF's physical function.
    pf: Arc<PhysFn>,
    /// The VF number (1-based).
    vfn: u16,
    /// Its live migration, when the PF offers it.
    migration: Option<Arc<VfMigration>>,
    /// The driver of the physical function.
    _pf_driver: PhantomData<fn() -> P>,
}

impl<P: PfDriver<IdInfo = ()>> vfio::Driver for VfioVf<P> {
    type PhysFn = P;

    // The functions the block-mode driver binds: a VF in vfio mode is one of them.
    const ID_TABLE: pci::IdTable<()> = P::ID_TABLE;

    fn probe(pdev: &pci::Device<Core>, physfn: Option<Pin<&P>>) -> impl PinInit<Self, Error> {
        pin_init_scope(move || Self::check(pdev, physfn))
    }

    fn unbind(pdev: &pci::Device<Core>, this: Pin<&Self>) {
        dev_info!(
            pdev,
            "VF {}: VFIO device removed (PF controller {})\n",
            this.vfn,
            this.pf.base().pdev().as_dev().name()
        );
    }

    fn migration_flags(this: Pin<&Self>) -> u64 {
        this.migration.as_ref().map_or(0, |m| m.flags())
    }

    fn log_max_ranges(this: Pin<&Self>) -> u32 {
        this.dirty().map_or(0, |d| d.max_ranges())
    }

    fn log_start(this: Pin<&Self>, ranges: &[IovaRange], page_size: &mut u64) -> Result {
        this.dirty().ok_or(ENOTTY)?.start(ranges, page_size)
    }

    fn log_stop(this: Pin<&Self>) -> Result {
        this.dirty().ok_or(ENOTTY)?.stop();
        Ok(())
    }

    fn log_read_and_clear(
        this: Pin<&Self>,
        iova: u64,
        length: u64,
        dirty: &mut IovaBitmap<'_>,
    ) -> Result {
        this.dirty().ok_or(ENOTTY)?.report(iova, length, dirty)
    }

    fn set_state(this: Pin<&Self>, dev: &VfioDevice, state: u32) -> Result<Option<MigrationFile>> {
        this.migration()?.set_state(dev, state)
    }

    fn get_state(this: Pin<&Self>) -> Result<u32> {
        Ok(this.migration()?.get_state())
    }

    fn data_size(this: Pin<&Self>) -> Result<usize> {
        this.migration()?.data_size()
    }

    fn open(this: Pin<&Self>) {
        if let Some(m) = &this.migration {
            m.opened();
            // While a user has the device, a reset of the PF must reach the migration.
            this.pf.sriov_attach_vfio(this.vfn, m.clone());
        }
    }

    fn close(this: Pin<&Self>) {
        if let Some(m) = &this.migration {
            this.pf.sriov_detach_vfio(this.vfn);
            m.closed();
            // A VMM that went away without stopping leaves no tracking behind.
            if let Some(d) = m.dirty() {
                d.stop();
            }
        }
    }

    fn reset_done(this: Pin<&Self>) {
        if let Some(m) = &this.migration {
            m.reset_done();
        }
    }
}

impl<P: PfDriver<IdInfo = ()>> VfioVf<P> {
    /// Whether `pdev` is a VF in vfio mode of a PF this driver runs, alone in its IOMMU
    /// group; brings its secondary controller online.
    fn check(pdev: &pci::Device<Core>, physfn: Option<Pin<&P>>) -> Result<Self> {
        // Only VFs of a PF this module runs, and only in vfio mode; everything else is
        // left to other drivers.
        let pf = P::phys_fn(physfn.ok_or(ENODEV)?)?.clone();
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
        let migration = Self::migration_of(pdev, &pf, vfn);
        dev_info!(
            pdev,
            "VF {}: vfio mode{}\n",
            vfn,
            if migration.is_some() {
                ", live migration"
            } else {
                ""
            }
        );
        Ok(Self {
            pf,
            vfn,
            migration,
            _pf_driver: PhantomData,
        })
    }

    /// The live migration of the VF, if its PF offers it (TP4159) for the VF's secondary
    /// controller; a failure to set it up is logged and leaves the VF without it.
    fn migration_of(
        pdev: &pci::Device<Core>,
        pf: &Arc<PhysFn>,
        vfn: u16,
    ) -> Option<Arc<VfMigration>> {
        let lm = pf.lm_support_of_vfs()?;
        let secondary = pf.vf_secondary(vfn)?;
        let made = VfMigration::new(pdev, pf.clone(), vfn, secondary, lm)
            .and_then(|init| Arc::pin_init(init, GFP_KERNEL));
        match made {
            Ok(m) => Some(m),
            Err(e) => {
                dev_warn!(pdev, "VF {}: no live migration: {:?}\n", vfn, e);
                None
            }
        }
    }

    /// The VF's device dirty tracking, if it has one.
    fn dirty(&self) -> Option<&Arc<VfDirty>> {
        self.migration.as_ref()?.dirty()
    }

    /// The VF's migration; `ENOTTY` without one (the VFIO core then never asks).
    fn migration(&self) -> Result<&VfMigration> {
        self.migration.as_deref().ok_or(ENOTTY)
    }
}

/// Whether `vf` (a VF of a PF bound to `P`) is in vfio mode with its VFIO device open (by
/// a VMM or another user). Must not be called with the VF's device lock held.
pub(crate) fn in_use<P: PfDriver<IdInfo = ()>>(vf: &pci::Device) -> bool {
    vfio::in_use::<VfioVf<P>>(vf)
}
