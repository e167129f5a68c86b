// SPDX-License-Identifier: GPL-2.0

//! VFIO live migration of a VF in vfio mode, carried out by its physical function.
//!
//! The VFIO core asks for a migration state; [`VfMigration::set_state`] walks the arcs
//! `vfio_mig_get_next_state` gives, one at a time, under the migration state mutex, and
//! carries out each one's [`Step`] ([`crate::nvme::spec::migration::fsm`]): Suspend and Resume of the VF's
//! secondary controller, Get and Set Controller State, all sent by the PF on its own admin
//! queue for the secondary controller ID (TP4159). The guest owns the VF's DMA, so nothing
//! of the migration moves through the VF.
//!
//! The data fds carry the migration stream ([`crate::nvme::spec::migration::stream`]): the saving fd gets the
//! compatibility section when PRE_COPY begins and the controller state when STOP_COPY
//! begins; the resuming fd checks each section as it arrives and refuses an incompatible
//! source at its compatibility section, before the source has stopped.
//!
//! A function reset (`VFIO_DEVICE_RESET`, the resets on open and close) brings the state
//! back to RUNNING and closes the data fds. The PCI core reports it from under locks that
//! the migration callbacks' callers hold, so the reset is deferred to whoever holds the
//! state mutex ([`DeferringMutex`]), as upstream drivers do.

use kernel::{prelude::*, sync::Arc};

use crate::{
    kapi::{
        device::{dev_err, dev_info, dev_warn, Core},
        error::eopnotsupp,
        pci,
        sync::DeferringMutex,
        vfio::{self, MigrationFile, VfioDevice},
    },
    nvme::{
        nvme_error::NvmeError,
        pf::{lm::LmSupport, sriov::VfSecondary, vfs::VfioVfState, PhysFn},
        spec::lm::state::standard_size,
        spec::migration::{
            compat,
            fsm::{self, MigState, Step},
            stream::{SECTION_HEADER_SIZE, STATE_PREFIX_SIZE},
        },
    },
};

mod resuming;
mod saving;
mod target;

use super::dirty::VfDirty;
use resuming::{LocalCompat, ResumingFile};
use saving::SavingFile;
use target::{MigTarget, VENDOR_STATE_ESTIMATE};

/// The migration state of a VF, under the state mutex.
struct MigInner {
    /// The VFIO migration state.
    state: MigState,
    /// The saving data fd, in the saving states.
    saving: Option<Arc<SavingFile>>,
    /// The resuming data fd, in RESUMING.
    resuming: Option<Arc<ResumingFile>>,
    /// Whether the driver suspended the secondary controller and has not resumed it
    /// (reset clears this: a function reset ends the suspension).
    device_suspended: bool,
}

impl MigInner {
    /// Closes the data fds: their reads and writes fail from now on.
    fn close_files(&mut self) {
        if let Some(f) = self.saving.take() {
            f.disable();
        }
        if let Some(f) = self.resuming.take() {
            f.disable();
        }
    }

    /// The function was reset: back to RUNNING.
    fn after_reset(&mut self) {
        self.state = MigState::Running;
        self.device_suspended = false;
        self.close_files();
    }
}

/// The migration of one VF.
#[pin_data]
pub(crate) struct VfMigration {
    target: MigTarget,
    #[pin]
    inner: DeferringMutex<MigInner>,
    /// Its device dirty tracking, when the PF tracks the memory its VFs write and the
    /// kernel can report it.
    dirty: Option<Arc<VfDirty>>,
}

impl VfMigration {
    /// The migration of VF `vfn` (`vf`) of `pf`, whose secondary controller is
    /// `secondary`, with what the PF offers in `lm`.
    pub(crate) fn new(
        vf: &pci::Device<Core>,
        pf: Arc<PhysFn>,
        vfn: u16,
        secondary: VfSecondary,
        lm: LmSupport,
    ) -> Result<impl PinInit<Self, Error>> {
        let dirty = match lm.tracking {
            Some(caps) if vfio::dirty_tracking_built() => Some(Arc::pin_init(
                VfDirty::new(vf.get_ref(), pf.clone(), vfn, secondary.scid, caps),
                GFP_KERNEL,
            )?),
            _ => None,
        };
        let target = MigTarget::new(vf, pf, vfn, secondary, lm)?;
        Ok(try_pin_init!(Self {
            dirty,
            target,
            inner <- DeferringMutex::new(
                MigInner {
                    state: MigState::Running,
                    saving: None,
                    resuming: None,
                    device_suspended: false,
                },
                MigInner::after_reset,
            ),
        }))
    }

    /// The VF's device dirty tracking, if it has one.
    pub(crate) fn dirty(&self) -> Option<&Arc<VfDirty>> {
        self.dirty.as_ref()
    }

    /// What the VFIO core is told the device supports.
    pub(crate) fn flags(&self) -> u64 {
        fsm::MIGRATION_FLAGS
    }

    /// `migration_set_state`: steps towards `new`; returns the data fd the last arc opened.
    pub(crate) fn set_state(&self, dev: &VfioDevice, new: u32) -> Result<Option<MigrationFile>> {
        let new = MigState::from_raw(new).ok_or(EINVAL)?;
        let mut inner = self.inner.lock();
        // Only a reset leaves ERROR; `vfio_mig_get_next_state` must not be asked (it warns).
        if inner.state == MigState::Error {
            return Err(EINVAL);
        }
        let mut file = None;
        while inner.state != new {
            let next =
                MigState::from_raw(dev.next_state(inner.state.raw(), new.raw())?).ok_or(EINVAL)?;
            let step = fsm::step(inner.state, next).ok_or_else(|| {
                dev_err!(
                    self.target.vf,
                    "VF {}: no step for {:?} -> {:?}\n",
                    self.target.vfn,
                    inner.state,
                    next
                );
                EINVAL
            })?;
            file = self.run(&mut inner, step)?;
            inner.state = next;
            // Only the last arc may open a data fd (the core composes arcs that way).
            if file.is_some() && next != new {
                return Err(EINVAL);
            }
        }
        Ok(file)
    }

    /// Carries out one arc's step; on failure the state stays (or becomes ERROR when the
    /// controller stopped answering, so that only a reset helps).
    fn run(&self, inner: &mut MigInner, step: Step) -> Result<Option<MigrationFile>> {
        let t = &self.target;
        match step {
            Step::Suspend => {
                self.device(inner, "Suspend", t.pf.lm().suspend(t.scid))?;
                inner.device_suspended = true;
            }
            Step::Resume => {
                self.device(inner, "Resume", t.pf.lm().resume(t.scid))?;
                inner.device_suspended = false;
            }
            Step::Nothing => {}
            Step::OpenSaving => {
                let saving = SavingFile::new(t.compat_section()?, false)?;
                let fd = MigrationFile::new(saving.clone(), false)?;
                inner.saving = Some(saving);
                return Ok(Some(fd));
            }
            Step::CloseSaving => {
                if let Some(f) = inner.saving.take() {
                    f.disable();
                }
            }
            Step::SaveState { fresh: false } => {
                let state = self.save_state(inner)?;
                let tail = t.state_sections(&state)?;
                inner.saving.as_ref().ok_or(EINVAL)?.append(&tail)?;
            }
            Step::SaveState { fresh: true } => {
                let state = self.save_state(inner)?;
                let mut all = t.compat_section()?;
                all.extend_from_slice(&t.state_sections(&state)?, GFP_KERNEL)?;
                let saving = SavingFile::new(all, true)?;
                let fd = MigrationFile::new(saving.clone(), false)?;
                inner.saving = Some(saving);
                return Ok(Some(fd));
            }
            Step::OpenResuming => {
                let local = LocalCompat {
                    fixed: t.fixed,
                    namespaces: t.namespaces()?,
                    formats: t.formats,
                    limits: t.limits,
                };
                let resuming = ResumingFile::new(t.vf.clone(), t.vfn, local)?;
                let fd = MigrationFile::new(resuming.clone(), true)?;
                inner.resuming = Some(resuming);
                return Ok(Some(fd));
            }
            Step::LoadState => {
                let resuming = inner.resuming.as_ref().ok_or(EINVAL)?;
                let (format, state) = resuming.take_state()?;
                let index = t.formats.index_of(&format).ok_or_else(eopnotsupp)?;
                self.device(
                    inner,
                    "Set Controller State",
                    t.pf.lm().set_state(t.scid, index, &state),
                )?;
                dev_info!(
                    t.vf,
                    "VF {}: controller state loaded ({} bytes)\n",
                    t.vfn,
                    state.len()
                );
                if let Some(f) = inner.resuming.take() {
                    f.disable();
                }
            }
        }
        Ok(None)
    }

    /// The result of a TP4159 command sent for this VF: a controller that stopped answering
    /// (timeout, or a dead PF) leaves the migration in ERROR, which only a reset leaves; a
    /// command the controller refused leaves the state as it was.
    fn device<T>(&self, inner: &mut MigInner, what: &str, r: Result<T, NvmeError>) -> Result<T> {
        r.map_err(|e| {
            if matches!(e, NvmeError::Timeout | NvmeError::Dead) {
                inner.state = MigState::Error;
            }
            self.target.device_error(what, e)
        })
    }

    /// Reads the controller state of the suspended controller.
    fn save_state(&self, inner: &mut MigInner) -> Result<KVec<u8>> {
        let t = &self.target;
        let r = t.pf.lm().get_state(t.scid, t.index);
        self.device(inner, "Get Controller State", r)
    }

    /// `migration_get_state`.
    pub(crate) fn get_state(&self) -> u32 {
        self.inner.lock().state.raw()
    }

    /// `migration_get_data_size`: what STOP_COPY will yield. Exact once the saving fd holds
    /// the state; before that, from the state's header when the controller is suspended,
    /// else from the VF's queues and an estimate of the vendor-specific state.
    pub(crate) fn data_size(&self) -> Result<usize> {
        let inner = self.inner.lock();
        if let Some(f) = &inner.saving {
            if let Some(n) = f.unread_if_complete() {
                return Ok(n);
            }
        }
        let t = &self.target;
        let estimate = standard_size(
            usize::from(t.limits.io_queues),
            usize::from(t.limits.io_queues),
        ) + VENDOR_STATE_ESTIMATE;
        let state = if inner.device_suspended {
            t.pf.lm().state_size(t.scid, t.index).unwrap_or(estimate)
        } else {
            estimate
        };
        let mut n = 2 * SECTION_HEADER_SIZE + STATE_PREFIX_SIZE + state;
        if inner.saving.is_none() {
            n += SECTION_HEADER_SIZE + compat::size(1);
        }
        Ok(n)
    }

    /// A user opened the VFIO device, which reset the function.
    pub(crate) fn opened(&self) {
        let mut inner = self.inner.lock();
        if inner.device_suspended {
            // A reset should have ended the suspension; make sure it did (a reset
            // controller has no queues to resume).
            let t = &self.target;
            if let Err(e) = t.pf.lm().resume(t.scid) {
                dev_warn!(t.vf, "VF {}: Resume after reset: {:?}\n", t.vfn, e);
            }
        }
        inner.after_reset();
    }

    /// The last user closed the VFIO device: the data fds close, and the function is reset
    /// next.
    pub(crate) fn closed(&self) {
        let mut inner = self.inner.lock();
        inner.close_files();
        inner.state = MigState::Running;
    }

    /// The function was reset.
    pub(crate) fn reset_done(&self) {
        self.inner.defer();
    }

    /// A reset of the PF reset the VF's secondary controller: a migration under way has
    /// lost the state it is moving, so it ends in ERROR (left by `VFIO_DEVICE_RESET`).
    fn lost_to_pf_reset(&self) {
        let mut inner = self.inner.lock();
        // The reset ended any suspension.
        inner.device_suspended = false;
        if matches!(inner.state, MigState::Running | MigState::Error) {
            return;
        }
        let t = &self.target;
        dev_err!(
            t.vf,
            "VF {}: the PF was reset during migration ({:?}): the controller state is gone, \
             migration state ERROR\n",
            t.vfn,
            inner.state
        );
        inner.close_files();
        inner.state = MigState::Error;
    }
}

impl VfioVfState for VfMigration {
    fn reset_by_pf(&self) {
        self.lost_to_pf_reset();
    }
}
