// SPDX-License-Identifier: GPL-2.0

//! SR-IOV from the physical function: `echo N > sriov_numvfs` enables N VFs and, on a
//! controller with flexible resources, gives each VF's secondary controller its queues and
//! vectors and brings it online (Virtualization Management); `echo 0` reverses it.
//!
//! Order of operations, which QEMU's controller and real ones require:
//!
//! 1. Identify Primary Controller Capabilities and the Secondary Controller List (which
//!    secondary controller belongs to which VF).
//! 2. For VF 1..N: Offline, Assign queues, Assign vectors, while the VFs are still
//!    disabled; each step only where the list says it is not already so (an offline
//!    controller that holds the right counts needs no command at all).
//! 3. Enable the VFs. A secondary controller can only go online once its VF exists, and
//!    the VF's driver (this one, probing during step 3) needs it online: a VF probe asks
//!    its PF to bring its controller online ([`PhysFn::sriov_vf_online`]).
//! 4. Online whatever no VF probe brought online (VFs bound to another driver or none).
//!
//! A PF reset takes every secondary controller offline (the device drops their
//! resources); the reset path calls [`PhysFn::sriov_restore_secondaries`] to assign and
//! online them again, then [`PhysFn::sriov_recover_vfs`] to bring the VFs' own
//! controllers back.

use kernel::{
    new_mutex,
    prelude::*,
    sync::{Arc, Mutex},
};

use crate::{
    kapi::{
        device::{dev_err, dev_info, dev_warn, Core},
        dma::CoherentAllocation,
        params, pci,
    },
    nvme::{
        ctrl_base::{as_identify, CtrlBase, CtrlState},
        spec::{
            command::{cns, Command},
            identify::IDENTIFY_SIZE,
            lm::track,
            mode::Mode,
            sriov::{
                available, plan, resource_actions, secondary_list, PlanError, PrimaryCaps,
                Resource, SecondaryCtrl, VfResources, VirtAction, MAX_SECONDARIES,
            },
        },
    },
};

use super::{
    lm::{LmCommands, LmSupport},
    vfs::{BlockVf, VfHooks, VfRecovery, VfioVfState},
};

/// A VF's secondary controller as the PF configured it.
#[derive(Clone, Copy, Debug)]
struct Secondary {
    /// VF number (1-based).
    vfn: u16,
    /// Secondary controller ID.
    scid: u16,
    /// What it was given.
    resources: VfResources,
    /// Whether it was brought online.
    online: bool,
}

/// A VF's secondary controller, for its vfio-mode driver.
#[derive(Clone, Copy, Debug)]
pub(crate) struct VfSecondary {
    /// Secondary controller ID.
    pub(crate) scid: u16,
    /// Its queue and vector resources.
    pub(crate) resources: VfResources,
}

/// The SR-IOV state of a physical function.
pub(crate) struct Sriov {
    /// Secondary controllers this driver gave flexible resources, by VF number; empty when
    /// the VFs are disabled or have private resources.
    secondaries: KVec<Secondary>,
    /// Controllers of VFs bound to this driver: slot `vfn - 1` for VF `vfn`, one per
    /// enabled VF.
    vfs: KVec<Option<Arc<dyn BlockVf>>>,
    /// The mode of each enabled VF (slot `vfn - 1`): which of the module's two drivers
    /// may bind it.
    modes: KVec<Mode>,
    /// VFs bound to the vfio-mode driver, slot `vfn - 1`.
    vfio_vfs: KVec<Option<Arc<dyn VfioVfState>>>,
    /// The mode new VFs start in (`sriov_vf_mode`).
    new_vf_mode: Mode,
    /// Live migration support of the PF, while VFs are enabled.
    lm: Option<LmSupport>,
    /// The memory of each VF's Controller Data Queue (slot `vfn - 1`), in the PF's DMA
    /// domain, when the PF tracks the memory its VFs write; a VF's dirty tracking holds
    /// it while it runs.
    cdqs: KVec<Option<CoherentAllocation<u8>>>,
    /// Queue memory the controller may still write (deleting its queue failed): kept until
    /// this state goes, after the PF's controller was disabled.
    parked: KVec<CoherentAllocation<u8>>,
}

impl Sriov {
    /// No VFs; new VFs start in block mode.
    pub(crate) fn new() -> Self {
        Self {
            secondaries: KVec::new(),
            vfs: KVec::new(),
            modes: KVec::new(),
            vfio_vfs: KVec::new(),
            new_vf_mode: Mode::Nvme,
            lm: None,
            cdqs: KVec::new(),
            parked: KVec::new(),
        }
    }
}

/// A physical function's services for its VFs: SR-IOV, the VFs' modes and their
/// controllers, and the live migration commands. Only a physical function has one; the
/// block-mode controller of a PF and the vfio-mode driver of its VFs share it.
#[pin_data]
pub(crate) struct PhysFn {
    /// The PF's controller basics, whose admin queue carries the commands.
    base: Arc<CtrlBase>,
    /// SR-IOV state.
    #[pin]
    sriov: Mutex<Sriov>,
    /// Serialises mode switches of this function's VFs (see `vfio-mode/switch.rs`); held
    /// while a VF is unbound and bound again, so never taken under a VF's device lock.
    #[pin]
    pub(crate) vf_switch: Mutex<()>,
    /// Serialises a reset of this (physical) function against the bring-up of its VFs'
    /// controllers (from Online to attached, [`PhysFn::sriov_attach`]): a reset takes the
    /// secondary controllers offline and then resets only the VFs attached, so a VF
    /// enabled under it would be left disabled. Taken before a VF's own locks.
    #[pin]
    pub(crate) vf_bringup: Mutex<()>,
}

/// The index of VF `vfn` (1-based) in the per-VF vectors of [`Sriov`]; VF 0 maps to an
/// index no vector has.
fn slot(vfn: u16) -> usize {
    usize::from(vfn).wrapping_sub(1)
}

impl PhysFn {
    /// The services of the physical function whose controller basics are `base`.
    pub(crate) fn new(base: Arc<CtrlBase>) -> impl PinInit<Self, Error> {
        try_pin_init!(Self {
            base,
            sriov <- new_mutex!(Sriov::new(), "PhysFn::sriov"),
            vf_switch <- new_mutex!((), "PhysFn::vf_switch"),
            vf_bringup <- new_mutex!((), "PhysFn::vf_bringup"),
        })
    }

    /// The PF's controller basics.
    pub(crate) fn base(&self) -> &CtrlBase {
        &self.base
    }

    /// The live migration commands the PF sends for its VFs.
    pub(crate) fn lm(&self) -> LmCommands<'_> {
        LmCommands::new(&self.base)
    }

    /// Runs `f` with the PF's commands and its controller's generation
    /// ([`CtrlBase::generation`]) while the controller is live and, with `since`, has not
    /// left `Live` since that generation; holds `vf_bringup`, so that no reset of the PF
    /// begins meanwhile. `None` (and `f` not run) otherwise.
    pub(crate) fn lm_while_live<T>(
        &self,
        since: Option<u32>,
        f: impl FnOnce(&LmCommands<'_>, u32) -> T,
    ) -> Option<T> {
        let _bringup = self.vf_bringup.lock();
        let generation = self.base.generation();
        let same = since.map_or(true, |g| g == generation);
        (self.base.state() == CtrlState::Live && same).then(|| f(&self.lm(), generation))
    }

    /// `sriov_configure`: enables `num_vfs` VFs (0: disables them); returns how many are
    /// enabled.
    /// `H` tells what the drivers above this object do for each VF.
    pub(crate) fn sriov_configure<H: VfHooks>(
        &self,
        pdev: &pci::Device<Core>,
        num_vfs: u16,
    ) -> Result<u16> {
        if num_vfs == 0 {
            self.sriov_disable::<H>(pdev)?;
            return Ok(0);
        }
        if self.base.state() != CtrlState::Live {
            dev_err!(
                self.base.pdev(),
                "cannot enable VFs: controller is not live\n"
            );
            return Err(EBUSY);
        }
        let buf =
            CoherentAllocation::<u8>::alloc_coherent(pdev.as_dev().as_bound(), IDENTIFY_SIZE)?;
        let caps = PrimaryCaps::parse(as_identify(&self.base.identify(
            &buf,
            cns::PRIMARY_CTRL_CAPS,
            0,
        )?)?);
        if caps.flexible() {
            let list = self.base.identify(&buf, cns::SECONDARY_CTRL_LIST, 0)?;
            let list = secondary_list(as_identify(&list)?);
            let mut secondaries = KVec::with_capacity(MAX_SECONDARIES, GFP_KERNEL)?;
            for s in list {
                secondaries.push(s, GFP_KERNEL)?;
            }
            self.sriov_assign(&caps, &secondaries, num_vfs)?;
        } else {
            dev_info!(
                self.base.pdev(),
                "VFs have private resources: no Virtualization Management needed\n"
            );
        }

        let mut lm = self.lm().support(&buf);
        let cdqs = self.alloc_cdqs(pdev, lm.as_mut(), num_vfs);
        {
            let mut sriov = self.sriov.lock();
            sriov.lm = lm;
            sriov.cdqs = cdqs;
            sriov.vfs = KVec::new();
            sriov
                .vfs
                .extend_with(usize::from(num_vfs), None, GFP_KERNEL)?;
            let mode = sriov.new_vf_mode;
            sriov.modes = KVec::new();
            sriov
                .modes
                .extend_with(usize::from(num_vfs), mode, GFP_KERNEL)?;
            sriov.vfio_vfs = KVec::new();
            sriov
                .vfio_vfs
                .extend_with(usize::from(num_vfs), None, GFP_KERNEL)?;
        }
        if let Err(e) = pdev.enable_sriov(num_vfs) {
            dev_err!(
                self.base.pdev(),
                "enabling {} VFs failed: {:?}\n",
                num_vfs,
                e
            );
            self.sriov_release();
            return Err(e);
        }
        // Online what no VF probe brought online (VFs bound to another driver, or none).
        let mut sriov = self.sriov.lock();
        for s in sriov.secondaries.iter_mut().filter(|s| !s.online) {
            if let Err(e) = self.virt_mgmt(s.scid, VirtAction::Online) {
                dev_err!(
                    self.base.pdev(),
                    "VF {}: secondary controller {} did not come online: {:?}\n",
                    s.vfn,
                    s.scid,
                    e
                );
                drop(sriov);
                pdev.disable_sriov();
                self.sriov_release();
                return Err(EIO);
            }
            s.online = true;
        }
        drop(sriov);
        // Without the attribute a VF stays in its mode; that is no reason to undo the
        // enable.
        match pdev.vfs() {
            Ok(vfs) => {
                for vf in vfs.iter() {
                    if let Err(e) = H::add_mode_attribute(vf) {
                        dev_warn!(*vf, "no mode attribute: {:?}\n", e);
                    }
                }
            }
            Err(e) => dev_warn!(self.base.pdev(), "VFs have no mode attribute: {:?}\n", e),
        }
        dev_info!(self.base.pdev(), "{} VF(s) enabled\n", num_vfs);
        Ok(num_vfs)
    }

    /// Splits the flexible resources among VFs `1..=num_vfs` and assigns them to their
    /// offline secondary controllers; on failure nothing stays assigned.
    fn sriov_assign(&self, caps: &PrimaryCaps, list: &[SecondaryCtrl], num_vfs: u16) -> Result {
        let wanted = VfResources {
            queues: params::vf_queues(),
            vectors: params::vf_vectors(),
        };
        let avail_vq = available(&caps.vq, list.iter().copied(), Resource::Queue, num_vfs);
        let avail_vi = available(&caps.vi, list.iter().copied(), Resource::Interrupt, num_vfs);
        let res = plan(caps, num_vfs, avail_vq, avail_vi, wanted).map_err(|e| {
            let (what, free, max) = match e {
                PlanError::NotEnough(Resource::Queue) | PlanError::Invalid(Resource::Queue) => {
                    ("queue", avail_vq, caps.vq.max_per_secondary)
                }
                _ => ("interrupt", avail_vi, caps.vi.max_per_secondary),
            };
            dev_err!(
                self.base.pdev(),
                "cannot give {} VFs {} resources: {} free, at most {} per VF, vf_queues={} vf_vectors={}\n",
                num_vfs,
                what,
                free,
                max,
                wanted.queues,
                wanted.vectors
            );
            match e {
                PlanError::NotEnough(_) => ENOSPC,
                PlanError::Invalid(_) => EINVAL,
            }
        })?;

        let mut sriov = self.sriov.lock();
        sriov.secondaries = KVec::new();
        for vfn in 1..=num_vfs {
            let Some(sc) = list.iter().find(|s| s.vfn == vfn) else {
                dev_err!(self.base.pdev(), "VF {} has no secondary controller\n", vfn);
                drop(sriov);
                self.sriov_release();
                return Err(ENODEV);
            };
            let secondary = Secondary {
                vfn,
                scid: sc.scid,
                resources: res,
                online: false,
            };
            // Recorded first, so that a failure releases it too.
            sriov.secondaries.push(secondary, GFP_KERNEL)?;
            if let Err(e) = self.give_resources(&secondary, Some(sc)) {
                dev_err!(
                    self.base.pdev(),
                    "VF {}: assigning resources to secondary controller {} failed: {:?}\n",
                    vfn,
                    sc.scid,
                    e
                );
                drop(sriov);
                self.sriov_release();
                return Err(EIO);
            }
        }
        dev_info!(
            self.base.pdev(),
            "{} VF(s): {} queue and {} interrupt resources each\n",
            num_vfs,
            res.queues,
            res.vectors
        );
        Ok(())
    }

    /// Takes a secondary controller offline and assigns it its resources, skipping what
    /// `current` (its entry of the list just read; `None`: unknown) says is already so.
    fn give_resources(&self, s: &Secondary, current: Option<&SecondaryCtrl>) -> Result {
        for action in resource_actions(current, s.resources) {
            self.virt_mgmt(s.scid, action)?;
        }
        Ok(())
    }

    fn virt_mgmt(&self, scid: u16, action: VirtAction) -> Result {
        self.base
            .admin_checked(
                Command::virt_mgmt(scid, action),
                "Virtualization Management",
            )
            .map(|_| ())
    }

    /// Takes every secondary controller this driver configured offline (which releases its
    /// resources) and forgets them.
    fn sriov_release(&self) {
        let mut sriov = self.sriov.lock();
        for s in sriov.secondaries.iter() {
            if let Err(e) = self.virt_mgmt(s.scid, VirtAction::Offline) {
                dev_warn!(
                    self.base.pdev(),
                    "VF {}: secondary controller {} did not go offline: {:?}\n",
                    s.vfn,
                    s.scid,
                    e
                );
            }
        }
        sriov.secondaries = KVec::new();
        sriov.vfs = KVec::new();
        sriov.modes = KVec::new();
        sriov.vfio_vfs = KVec::new();
        sriov.lm = None;
        // The VFs are gone, and their dirty tracking ended with them.
        sriov.cdqs = KVec::new();
    }

    /// Allocates the Controller Data Queue memory of `num_vfs` VFs when `lm` says the
    /// controller tracks the memory they write. The PF's DMA memory is allocated here, in a
    /// callback of the bound PF; a VF's tracking later takes its VF's. Without the memory
    /// the VFs migrate without dirty tracking (logged).
    fn alloc_cdqs(
        &self,
        pdev: &pci::Device<Core>,
        lm: Option<&mut LmSupport>,
        num_vfs: u16,
    ) -> KVec<Option<CoherentAllocation<u8>>> {
        let Some(lm) = lm.filter(|lm| lm.tracking.is_some()) else {
            return KVec::new();
        };
        let bytes = params::cdq_entries() as usize * track::ENTRY_SIZE;
        let mut cdqs = KVec::new();
        let made = cdqs
            .reserve(usize::from(num_vfs), GFP_KERNEL)
            .map_err(Error::from)
            .and_then(|()| {
                for _ in 0..num_vfs {
                    let mem =
                        CoherentAllocation::<u8>::alloc_coherent(pdev.as_dev().as_bound(), bytes)?;
                    cdqs.push(Some(mem), GFP_KERNEL)?;
                }
                Ok(())
            });
        if let Err(e) = made {
            dev_warn!(
                self.base.pdev(),
                "no dirty page tracking for VFs: {} bytes of queue memory each: {:?}\n",
                bytes,
                e
            );
            lm.tracking = None;
            return KVec::new();
        }
        cdqs
    }

    /// Takes the Controller Data Queue memory of VF `vfn` for its dirty tracking; `None`
    /// if the PF has none for it or a tracking holds it.
    pub(crate) fn cdq_memory_take(&self, vfn: u16) -> Option<CoherentAllocation<u8>> {
        self.sriov.lock().cdqs.get_mut(slot(vfn))?.take()
    }

    /// Gives back the queue memory VF `vfn`'s tracking took. `quiet`: the controller no
    /// longer writes it (its queue was deleted, or a reset of the PF deleted it); otherwise
    /// it is parked, never freed or reused while the controller may still write it.
    pub(crate) fn cdq_memory_return(&self, vfn: u16, mem: CoherentAllocation<u8>, quiet: bool) {
        let mut sriov = self.sriov.lock();
        if !quiet {
            // A failed push would drop (free) the memory: make room first, and lose the
            // memory rather than free what a device writes if there is none.
            if sriov.parked.reserve(1, GFP_KERNEL).is_ok() {
                let _ = sriov.parked.push(mem, GFP_KERNEL);
            } else {
                core::mem::forget(mem);
            }
            return;
        }
        if let Some(s) = sriov.cdqs.get_mut(slot(vfn)) {
            if s.is_none() {
                *s = Some(mem);
            }
        }
    }

    /// Disables the VFs, unless one is in use (a disk of it open or mounted): then nothing
    /// changes and the write fails with `EBUSY`.
    fn sriov_disable<H: VfHooks>(&self, pdev: &pci::Device<Core>) -> Result {
        {
            let sriov = self.sriov.lock();
            let busy = sriov
                .vfs
                .iter()
                .position(|vf| vf.as_ref().is_some_and(|vf| vf.disks_in_use()));
            if let Some(index) = busy {
                dev_warn!(
                    self.base.pdev(),
                    "VF {} is in use (a disk is open or mounted): VFs stay enabled\n",
                    index + 1
                );
                return Err(EBUSY);
            }
        }
        // Checked without the lock: the check locks the VF, whose probe takes the lock.
        for vf in pdev.vfs()?.iter() {
            if H::vfio_in_use(vf) {
                dev_warn!(
                    self.base.pdev(),
                    "VF {} is in use (its VFIO device is open): VFs stay enabled\n",
                    vf.vf_number().unwrap_or(0)
                );
                return Err(EBUSY);
            }
        }
        // The VFs' drivers unbind here; ours detach from this function's state.
        pdev.disable_sriov();
        self.sriov_release();
        dev_info!(self.base.pdev(), "VFs disabled\n");
        Ok(())
    }

    /// From the probe of VF `vfn` (`vf`, in either mode): brings its secondary controller
    /// online if this function configured it and it is not online yet; a failure is logged
    /// on the VF.
    pub(crate) fn sriov_vf_online(&self, vf: &pci::Device, vfn: u16) -> Result {
        // A PF being reset takes no admin command (its controller is disabled), and a dead
        // one none at all: the VF is not bound, and can be bound again once the PF is back.
        if self.base.state() != CtrlState::Live {
            dev_warn!(
                vf,
                "VF {}: its PF is {:?}, the VF's controller cannot be brought online\n",
                vfn,
                self.base.state()
            );
            return Err(EBUSY);
        }
        let mut sriov = self.sriov.lock();
        let Some(s) = sriov.secondaries.iter_mut().find(|s| s.vfn == vfn) else {
            return Ok(());
        };
        if !s.online {
            self.virt_mgmt(s.scid, VirtAction::Online)
                .inspect_err(|e| {
                    dev_err!(vf, "VF {}: secondary controller not online: {:?}\n", vfn, e)
                })?;
            s.online = true;
        }
        Ok(())
    }

    /// The secondary controller of VF `vfn` as this function configured it, if it did.
    pub(crate) fn vf_secondary(&self, vfn: u16) -> Option<VfSecondary> {
        let sriov = self.sriov.lock();
        let s = sriov.secondaries.iter().find(|s| s.vfn == vfn)?;
        Some(VfSecondary {
            scid: s.scid,
            resources: s.resources,
        })
    }

    /// What this function offers for the live migration of its VFs, if anything.
    pub(crate) fn lm_support_of_vfs(&self) -> Option<LmSupport> {
        self.sriov.lock().lm
    }

    /// The mode of VF `vfn` (block mode for an unknown VF).
    pub(crate) fn vf_mode(&self, vfn: u16) -> Mode {
        let sriov = self.sriov.lock();
        sriov.modes.get(slot(vfn)).copied().unwrap_or_default()
    }

    /// Sets the mode of VF `vfn`, which decides which driver may bind it next.
    pub(crate) fn set_vf_mode(&self, vfn: u16, mode: Mode) -> Result {
        let mut sriov = self.sriov.lock();
        let slot = sriov.modes.get_mut(slot(vfn)).ok_or(ENODEV)?;
        *slot = mode;
        Ok(())
    }

    /// Whether a disk of VF `vfn`, bound to this driver in block mode, is open or mounted.
    pub(crate) fn vf_disks_in_use(&self, vfn: u16) -> bool {
        let sriov = self.sriov.lock();
        sriov
            .vfs
            .get(slot(vfn))
            .is_some_and(|vf| vf.as_ref().is_some_and(|vf| vf.disks_in_use()))
    }

    /// The mode VFs enabled from now on start in.
    pub(crate) fn new_vf_mode(&self) -> Mode {
        self.sriov.lock().new_vf_mode
    }

    /// Sets the mode VFs enabled from now on start in (VFs that exist keep theirs).
    pub(crate) fn set_new_vf_mode(&self, mode: Mode) {
        self.sriov.lock().new_vf_mode = mode;
    }

    /// Records the controller of VF `vfn`, bound to this driver.
    pub(crate) fn sriov_attach(&self, vfn: u16, vf: Arc<dyn BlockVf>) {
        if let Some(slot) = self.sriov.lock().vfs.get_mut(slot(vfn)) {
            *slot = Some(vf);
        }
    }

    /// Records VF `vfn`, bound to the vfio-mode driver.
    pub(crate) fn sriov_attach_vfio(&self, vfn: u16, vf: Arc<dyn VfioVfState>) {
        if let Some(slot) = self.sriov.lock().vfio_vfs.get_mut(slot(vfn)) {
            *slot = Some(vf);
        }
    }

    /// Forgets VF `vfn` of the vfio-mode driver (it is unbinding).
    pub(crate) fn sriov_detach_vfio(&self, vfn: u16) {
        if let Some(slot) = self.sriov.lock().vfio_vfs.get_mut(slot(vfn)) {
            *slot = None;
        }
    }

    /// Forgets the controller of VF `vfn` (it is unbinding).
    pub(crate) fn sriov_detach(&self, vfn: u16) {
        if let Some(slot) = self.sriov.lock().vfs.get_mut(slot(vfn)) {
            *slot = None;
        }
    }

    /// The controllers of the VFs bound in block mode.
    pub(crate) fn block_vfs(&self) -> KVec<Arc<dyn BlockVf>> {
        let sriov = self.sriov.lock();
        let mut vfs = KVec::new();
        for vf in sriov.vfs.iter().flatten() {
            if vfs.push(vf.clone(), GFP_KERNEL).is_err() {
                dev_err!(self.base.pdev(), "out of memory listing the VFs\n");
                break;
            }
        }
        vfs
    }

    /// After a reset of this (physical) function, which took every secondary controller
    /// offline, once the PF is live again: assigns their resources again and brings them
    /// online. Called with `vf_bringup` held, so that no VF probe runs in between.
    pub(crate) fn sriov_restore_secondaries(&self) {
        let sriov = self.sriov.lock();
        for s in sriov.secondaries.iter().filter(|s| s.online) {
            let done = self
                .give_resources(s, None)
                .and_then(|()| self.virt_mgmt(s.scid, VirtAction::Online));
            match done {
                Ok(()) => dev_info!(
                    self.base.pdev(),
                    "VF {}: secondary controller {} online again\n",
                    s.vfn,
                    s.scid
                ),
                Err(e) => dev_err!(
                    self.base.pdev(),
                    "VF {}: secondary controller {} not restored: {:?}\n",
                    s.vfn,
                    s.scid,
                    e
                ),
            }
        }
    }

    /// After a reset of this (physical) function: if the PF came back (`restarted`), the
    /// VFs' controllers in block mode come back as `how` says; if it was given up, so are
    /// they. The VFs in vfio mode are told either way: their controller lost its state.
    /// Called without `vf_bringup` (a VF's reset takes the VF's own reset lock).
    pub(crate) fn sriov_recover_vfs(&self, how: VfRecovery, restarted: bool) {
        // Told without the lock: they take their own locks, under which they may ask this
        // function for things that take it.
        let mut told = KVec::new();
        for vf in self.sriov.lock().vfio_vfs.iter().flatten() {
            if told.push(vf.clone(), GFP_KERNEL).is_err() {
                dev_err!(
                    self.base.pdev(),
                    "cannot tell the vfio-mode VFs about the reset\n"
                );
                break;
            }
        }
        for vf in self.block_vfs() {
            vf.recover_after_pf_reset(how, restarted);
        }
        for vf in told.iter() {
            vf.reset_by_pf();
        }
    }
}
