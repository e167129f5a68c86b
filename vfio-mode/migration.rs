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

use kernel::{
    new_mutex,
    prelude::*,
    sync::{Arc, Mutex},
    types::ARef,
    uaccess::{UserSliceReader, UserSliceWriter},
};

use crate::{
    kapi::{
        device::{dev_err, dev_info, dev_warn, Core},
        error::{enomsg, eopnotsupp},
        pci,
        sync::DeferringMutex,
        vfio::{MigrationFile, MigrationFileOps, PrecopyInfo, VfioDevice},
    },
    nvme::{
        controller::BAR0_NAME,
        nvme_error::NvmeError,
        pf::{lm::LmSupport, sriov::VfSecondary, vfs::VfioVfState, PhysFn},
        spec::migration::{
            compat::{self, Fixed, NamespaceInfo, PciIds},
            fsm::{self, MigState, Step},
            resume::{Destination, Refusal, Resume},
            save::{ReadOutcome, SaveCursor},
            stream::{
                self, SectionKind, StatePayload, MAX_STREAM, SECTION_HEADER_SIZE, STATE_PREFIX_SIZE,
            },
        },
        spec::{
            ctrl_regs::{Cap, Vs, REGS_SIZE},
            lm::{
                command::FormatIndex,
                formats::{StateFormat, StateFormats},
                state::{standard_size, ControllerState, Limits},
            },
        },
    },
};

/// What a controller's vendor-specific state is assumed to take when the data size is
/// asked for before the controller is suspended (afterwards its header tells).
const VENDOR_STATE_ESTIMATE: usize = 4096;

/// What a VF's migration is about; fixed while the VF is in vfio mode.
struct MigTarget {
    /// The VF (for messages).
    vf: ARef<pci::Device>,
    /// The controller of the VF's physical function, which sends the commands.
    pf: Arc<PhysFn>,
    /// VF number.
    vfn: u16,
    /// The VF's secondary controller ID.
    scid: u16,
    /// This VF's compatibility section, apart from the namespaces.
    fixed: Fixed,
    /// The state formats the PF takes.
    formats: StateFormats,
    /// The indexes of `fixed.format` on the PF.
    index: FormatIndex,
    /// What an incoming controller state must fit.
    limits: Limits,
}

impl MigTarget {
    /// Reads what the compatibility section needs from the VF: config space and, from a
    /// short mapping of BAR0, the read-only CAP and VS registers. Runs at probe, before any
    /// user owns the VF.
    fn new(
        vf: &pci::Device<Core>,
        pf: Arc<PhysFn>,
        vfn: u16,
        secondary: VfSecondary,
        lm: LmSupport,
    ) -> Result<Self> {
        let (cap, vs) = {
            let bar = vf.iomap_region_sized::<REGS_SIZE>(0, BAR0_NAME)?;
            (Cap::read(&*bar), Vs::read(&*bar))
        };
        let io_queues = secondary.resources.queues.saturating_sub(1);
        let fixed = Fixed {
            pci: PciIds {
                vendor: vf.vendor_id(),
                device: vf.device_id(),
                subsystem_vendor: vf.subsystem_vendor_id(),
                subsystem: vf.subsystem_id(),
                revision: vf.revision_id(),
            },
            msix_entries: vf.msix_vec_count()?,
            cap: cap.0,
            vs: vs.0,
            io_queues,
            vectors: secondary.resources.vectors,
            vid: lm.vid,
            ssvid: lm.ssvid,
            model: lm.model,
            format: lm.format,
        };
        Ok(Self {
            vf: vf.get_ref(),
            pf,
            vfn,
            scid: secondary.scid,
            fixed,
            formats: lm.formats,
            index: lm.index,
            limits: Limits {
                io_queues,
                max_entries: u32::from(cap.mqes()) + 1,
                vectors: secondary.resources.vectors,
            },
        })
    }

    /// The namespaces attached to the VF's secondary controller now.
    fn namespaces(&self) -> Result<KVec<NamespaceInfo>> {
        self.pf.lm().namespaces(self.scid).inspect_err(|e| {
            dev_err!(
                self.vf,
                "VF {}: cannot list its namespaces: {:?}\n",
                self.vfn,
                e
            )
        })
    }

    /// The compatibility section of this VF as it is now.
    fn compat_section(&self) -> Result<KVec<u8>> {
        let namespaces = self.namespaces()?;
        let mut payload = KVec::from_elem(0u8, compat::size(namespaces.len()), GFP_KERNEL)?;
        compat::encode(&self.fixed, &namespaces, &mut payload).map_err(|_| EINVAL)?;
        section(SectionKind::Compat, &payload)
    }

    /// The controller state section around `state` (read from the suspended controller),
    /// followed by the end section.
    fn state_sections(&self, state: &[u8]) -> Result<KVec<u8>> {
        // The stream carries only what a destination can check: never pass on a state the
        // driver itself cannot read.
        if let Err(e) = ControllerState::parse(state) {
            dev_err!(
                self.vf,
                "VF {}: controller state unreadable: {:?}\n",
                self.vfn,
                e
            );
            return Err(EIO);
        }
        let mut payload = KVec::with_capacity(STATE_PREFIX_SIZE + state.len(), GFP_KERNEL)?;
        payload.extend_from_slice(&StatePayload::prefix(&self.fixed.format), GFP_KERNEL)?;
        payload.extend_from_slice(state, GFP_KERNEL)?;
        let mut out = section(SectionKind::ControllerState, &payload)?;
        out.extend_from_slice(&section(SectionKind::End, &[])?, GFP_KERNEL)?;
        Ok(out)
    }

    /// Logs a failed TP4159 command and turns it into the error the VFIO user sees.
    fn device_error(&self, what: &str, e: NvmeError) -> Error {
        dev_err!(self.vf, "VF {}: {} failed: {:?}\n", self.vfn, what, e);
        EIO
    }
}

/// A section of `kind` around `payload`.
fn section(kind: SectionKind, payload: &[u8]) -> Result<KVec<u8>> {
    let header = stream::section_header(kind, payload).map_err(|_| EINVAL)?;
    let mut out = KVec::with_capacity(SECTION_HEADER_SIZE + payload.len(), GFP_KERNEL)?;
    out.extend_from_slice(&header, GFP_KERNEL)?;
    out.extend_from_slice(payload, GFP_KERNEL)?;
    Ok(out)
}

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
        let target = MigTarget::new(vf, pf, vfn, secondary, lm)?;
        Ok(try_pin_init!(Self {
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

/// The saving data fd: the stream, and how far it has been read.
#[pin_data]
struct SavingFile {
    /// Serialises reads (taken before `data`, never under the state mutex).
    #[pin]
    reader: Mutex<()>,
    #[pin]
    data: Mutex<SaveData>,
}

struct SaveData {
    buf: KVec<u8>,
    cursor: SaveCursor,
    /// The fd was closed by the driver (the device left the saving states).
    disabled: bool,
}

impl SavingFile {
    /// A saving fd holding `initial`; `complete`: nothing will be added.
    fn new(initial: KVec<u8>, complete: bool) -> Result<Arc<Self>> {
        let mut cursor = SaveCursor::new();
        cursor.extend(initial.len(), complete);
        Arc::pin_init(
            try_pin_init!(Self {
                reader <- new_mutex!((), "SavingFile::reader"),
                data <- new_mutex!(SaveData { buf: initial, cursor, disabled: false }, "SavingFile::data"),
            }),
            GFP_KERNEL,
        )
    }

    /// Appends the rest of the stream.
    fn append(&self, rest: &[u8]) -> Result {
        let mut d = self.data.lock();
        d.buf.extend_from_slice(rest, GFP_KERNEL)?;
        d.cursor.extend(rest.len(), true);
        Ok(())
    }

    /// Closes the fd for reads.
    fn disable(&self) {
        self.data.lock().disabled = true;
    }

    /// Bytes not read yet, once the stream is complete.
    fn unread_if_complete(&self) -> Option<usize> {
        let d = self.data.lock();
        d.cursor.complete().then(|| d.cursor.unread())
    }
}

impl MigrationFileOps for SavingFile {
    fn read(&self, out: &mut UserSliceWriter) -> Result<usize> {
        // The copy to the user runs outside `data`, which the state mutex nests: a fault in
        // the copy takes the mm's locks. `reader` keeps the bytes handed out and the cursor
        // in step.
        let _reader = self.reader.lock();
        let bytes = {
            let d = self.data.lock();
            if d.disabled {
                return Err(ENODEV);
            }
            match d.cursor.peek(out.len()) {
                ReadOutcome::Data { start, end } => {
                    let mut bytes = KVec::with_capacity(end - start, GFP_KERNEL)?;
                    bytes.extend_from_slice(&d.buf[start..end], GFP_KERNEL)?;
                    bytes
                }
                ReadOutcome::TemporaryEnd => return Err(enomsg()),
                ReadOutcome::End => return Ok(0),
            }
        };
        // A fault here consumes nothing: the next read gets the same bytes.
        out.write_slice(&bytes)?;
        self.data.lock().cursor.consume(bytes.len());
        Ok(bytes.len())
    }

    fn precopy_info(&self) -> Result<PrecopyInfo> {
        let d = self.data.lock();
        // PRE_COPY is exactly while the stream is not complete.
        if d.disabled || d.cursor.complete() {
            return Err(EINVAL);
        }
        Ok(PrecopyInfo {
            initial_bytes: d.cursor.unread() as u64,
            dirty_bytes: 0,
        })
    }
}

/// What an incoming stream is checked against: the destination VF as it is when RESUMING
/// begins.
struct LocalCompat {
    fixed: Fixed,
    namespaces: KVec<NamespaceInfo>,
    formats: StateFormats,
    limits: Limits,
}

impl LocalCompat {
    fn destination(&self) -> Destination<'_> {
        Destination {
            fixed: &self.fixed,
            namespaces: &self.namespaces,
            formats: &self.formats,
            limits: &self.limits,
        }
    }
}

/// The resuming data fd: the stream received so far, checked as it arrives
/// ([`Resume`]).
#[pin_data]
struct ResumingFile {
    vf: ARef<pci::Device>,
    vfn: u16,
    #[pin]
    data: Mutex<ResumeData>,
}

struct ResumeData {
    buf: KVec<u8>,
    resume: Resume,
    local: LocalCompat,
    /// The fd was closed by the driver.
    disabled: bool,
}

impl ResumingFile {
    fn new(vf: ARef<pci::Device>, vfn: u16, local: LocalCompat) -> Result<Arc<Self>> {
        Arc::pin_init(
            try_pin_init!(Self {
                vf,
                vfn,
                data <- new_mutex!(
                    ResumeData {
                        buf: KVec::new(),
                        resume: Resume::new(),
                        local,
                        disabled: false,
                    },
                    "ResumingFile::data"
                ),
            }),
            GFP_KERNEL,
        )
    }

    /// Closes the fd for writes.
    fn disable(&self) {
        self.data.lock().disabled = true;
    }

    /// Logs why the stream was refused and returns the error the VFIO user sees.
    fn refusal(&self, r: Refusal) -> Error {
        if r.incompatible() {
            dev_err!(
                self.vf,
                "VF {}: incompatible migration source: {:?}\n",
                self.vfn,
                r
            );
            eopnotsupp()
        } else {
            dev_err!(
                self.vf,
                "VF {}: migration stream refused: {:?}\n",
                self.vfn,
                r
            );
            EINVAL
        }
    }

    /// Logs a stream that outgrew [`MAX_STREAM`] and returns the error the user sees.
    fn too_long(&self) -> Error {
        dev_err!(
            self.vf,
            "VF {}: migration stream longer than {} bytes\n",
            self.vfn,
            MAX_STREAM
        );
        EFBIG
    }

    /// The controller state of a complete, checked stream and the format it is in.
    fn take_state(&self) -> Result<(StateFormat, KVec<u8>)> {
        let d = self.data.lock();
        let (format, raw) = d
            .resume
            .finish(&d.buf, &d.local.destination())
            .map_err(|r| self.refusal(r))?;
        let mut state = KVec::with_capacity(raw.len(), GFP_KERNEL)?;
        state.extend_from_slice(raw, GFP_KERNEL)?;
        Ok((format, state))
    }
}

impl MigrationFileOps for ResumingFile {
    fn write(&self, input: &mut UserSliceReader) -> Result<usize> {
        let n = input.len();
        if n > MAX_STREAM {
            return Err(self.too_long());
        }
        // Copied aside first, outside `data` (which the state mutex nests; a fault in the
        // copy takes the mm's locks): a fault halfway leaves the stream as it was.
        let mut bytes = KVec::from_elem(0u8, n, GFP_KERNEL)?;
        input.read_slice(&mut bytes)?;
        let mut guard = self.data.lock();
        let d = &mut *guard;
        if d.disabled {
            return Err(ENODEV);
        }
        if d.resume.refused() {
            return Err(EINVAL);
        }
        if d.buf.len().saturating_add(n) > MAX_STREAM {
            return Err(self.too_long());
        }
        d.buf.extend_from_slice(&bytes, GFP_KERNEL)?;
        let dest = d.local.destination();
        d.resume
            .advance(&d.buf, &dest)
            .map_err(|r| self.refusal(r))?;
        Ok(n)
    }
}
