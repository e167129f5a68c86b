// SPDX-License-Identifier: GPL-2.0

//! The controller state shared by probe, the I/O path and error recovery: registers, the
//! admin queue, the controller state machine, and the reset that recovers from timeouts.

use core::sync::atomic::{AtomicBool, AtomicU32, AtomicU8, Ordering};

use kernel::{
    new_mutex, new_work,
    prelude::*,
    sync::{Arc, Mutex},
    types::ARef,
    workqueue::{self, impl_has_work, Work, WorkItem},
};

use crate::{
    kapi::{
        block::{
            self,
            mq::{DiskQueue, TagSet},
        },
        delay::read_poll_timeout,
        device::{dev_err, dev_info, dev_warn},
        dma::CoherentAllocation,
        irq, pci,
        workqueue::cancel_arc_work_sync,
    },
    nvme::{
        admin::{AdminQueue, ADMIN_DEPTH},
        disks::{DiskTemplate, NsDisks},
        io::dbbuf::DbBuf,
        io::queue::{IfBusy, IoQueue},
        io_ops::{Cancel, IoOps},
        nvme_error::NvmeError,
        pf::sriov::Sriov,
        spec::{
            command::{num_queues_allocated, Command, SQE_SIZE_LOG2},
            completion::{Completion, CQE_SIZE_LOG2},
            ctrl_regs::{
                Acq, Aqa, Asq, Cap, Cc, Csts, CC_SHN_NORMAL, CSTS_SHST_COMPLETE, REGS_SIZE,
            },
            identify::IDENTIFY_SIZE,
            passthru::AdminEffects,
        },
    },
};

/// How long a normal shutdown (CC.SHN) may take before the driver disables the controller
/// anyway.
const SHUTDOWN_TIMEOUT_MS: u32 = 5_000;

/// The life of a controller.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub(crate) enum CtrlState {
    /// Serving I/O.
    Live = 0,
    /// Being reset: I/O is held back and requeued.
    Resetting = 1,
    /// Failed for good: I/O fails at once.
    Dead = 2,
    /// The driver is unbinding: I/O drains; a timeout now fails everything.
    Removing = 3,
}

impl CtrlState {
    fn from_u8(v: u8) -> Self {
        match v {
            0 => Self::Live,
            1 => Self::Resetting,
            3 => Self::Removing,
            _ => Self::Dead,
        }
    }
}

/// The I/O side the recovery paths act on, set once the queues exist.
pub(crate) struct IoLink {
    /// The tag set of every disk.
    pub(crate) tagset: Arc<TagSet<IoOps>>,
    /// The I/O queues, in queue ID order.
    pub(crate) queues: KVec<Arc<IoQueue>>,
    /// Entries of each I/O queue.
    pub(crate) depth: u16,
    /// The shadow doorbells, when the controller supports them.
    pub(crate) dbbuf: Option<Arc<DbBuf>>,
}

/// The shared part of a controller.
#[pin_data]
pub(crate) struct CtrlCore {
    pdev: ARef<pci::Device>,
    bar: Arc<pci::Bar<REGS_SIZE>>,
    cap: Cap,
    #[pin]
    admin: Mutex<AdminQueue>,
    state: AtomicU8,
    #[pin]
    io: Mutex<Option<IoLink>>,
    #[pin]
    reset_work: Work<CtrlCore>,
    /// What the resets keep between their steps.
    resets: ResetBook,
    /// Handles asynchronous events (see `events.rs`).
    #[pin]
    pub(crate) event_work: Work<CtrlCore, 1>,
    /// Marks the disks dead once the controller was given up ([`CtrlCore::give_up`]).
    #[pin]
    dead_work: Work<CtrlCore, 2>,
    /// The Asynchronous Event Configuration the driver set (0: none), set again after a
    /// reset.
    pub(crate) aen_config: AtomicU32,
    /// The disks; never locked by the reset, which may run while a disk is being added.
    #[pin]
    namespaces: Mutex<NsDisks>,
    /// SR-IOV state of a physical function (see `sriov.rs`); empty for a VF.
    #[pin]
    pub(crate) sriov: Mutex<Sriov>,
    /// Serialises mode switches of this function's VFs (see `vfio-mode/switch.rs`); held
    /// while a VF is unbound and bound again, so never taken under a VF's device lock.
    #[pin]
    pub(crate) vf_switch: Mutex<()>,
    /// Serialises a reset of this (physical) function against the bring-up of its VFs'
    /// controllers (from Online to attached, [`CtrlCore::sriov_attach`]): a reset takes
    /// the secondary controllers offline and then resets only the VFs attached, so a VF
    /// enabled under it would be left disabled. Taken before a VF's own locks.
    #[pin]
    pub(crate) vf_bringup: Mutex<()>,
}

impl_has_work! {
    impl HasWork<CtrlCore> for CtrlCore { self.reset_work }
    impl HasWork<CtrlCore, 1> for CtrlCore { self.event_work }
    impl HasWork<CtrlCore, 2> for CtrlCore { self.dead_work }
}

impl WorkItem for CtrlCore {
    type Pointer = Arc<CtrlCore>;

    fn run(this: Arc<CtrlCore>) {
        let why = if this.resets.cause.load(Ordering::Relaxed) == ResetCause::PfReset as u8 {
            "its PF's controller was reset"
        } else {
            "I/O timeout"
        };
        this.reset(why);
    }
}

impl WorkItem<2> for CtrlCore {
    type Pointer = Arc<CtrlCore>;

    fn run(this: Arc<CtrlCore>) {
        // Queued only once the controller is dead; the disks go dead with it. The unbind
        // removes them after cancelling this work.
        this.namespaces.lock().mark_dead();
        dev_err!(this.pdev, "disks marked dead: their I/O fails at once\n");
    }
}

/// Why a reset is scheduled ([`CtrlCore::schedule_reset`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub(crate) enum ResetCause {
    /// A request timed out.
    Timeout = 0,
    /// The PF's controller was reset, which took this VF's secondary controller offline.
    PfReset = 1,
}

/// What a controller's resets keep between their steps.
struct ResetBook {
    /// Resets completed.
    done: AtomicU32,
    /// Why the queued reset runs (a [`ResetCause`]), for its log line.
    cause: AtomicU8,
    /// Whether the reset under way is held across two calls ([`CtrlCore::begin_reset`],
    /// [`CtrlCore::finish_reset`]: a PCI function reset or error recovery) rather than run
    /// by one task from start to end. Changed only with `io` held.
    held: AtomicBool,
}

/// How the VFs' own controllers come back after their PF's controller was reset.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum VfRecovery {
    /// Only the PF's controller was reset (CC.EN), which took the VFs' secondary
    /// controllers offline: the VFs in block mode are reset once they are online again.
    /// Also after PCI error recovery, where every VF's driver recovers its own function.
    ResetControllers,
    /// A function reset of the PF (FLR) reset its VFs' PCI functions too: the VFs in
    /// block mode, which [`CtrlCore::prepare_function_reset`] took out of service, get
    /// their configuration space back and are restarted.
    RestoreFunctions,
}

impl CtrlCore {
    /// The shared state of a controller whose BAR is mapped and admin queue allocated.
    pub(crate) fn new(
        pdev: ARef<pci::Device>,
        bar: Arc<pci::Bar<REGS_SIZE>>,
        cap: Cap,
        admin: AdminQueue,
    ) -> impl PinInit<Self, Error> {
        try_pin_init!(Self {
            pdev,
            bar,
            cap,
            admin <- new_mutex!(admin, "CtrlCore::admin"),
            state: AtomicU8::new(CtrlState::Live as u8),
            io <- new_mutex!(None, "CtrlCore::io"),
            reset_work <- new_work!("CtrlCore::reset_work"),
            resets: ResetBook {
                done: AtomicU32::new(0),
                cause: AtomicU8::new(ResetCause::Timeout as u8),
                held: AtomicBool::new(false),
            },
            event_work <- new_work!("CtrlCore::event_work"),
            dead_work <- new_work!("CtrlCore::dead_work"),
            aen_config: AtomicU32::new(0),
            namespaces <- new_mutex!(NsDisks::new(), "CtrlCore::namespaces"),
            sriov <- new_mutex!(Sriov::new(), "CtrlCore::sriov"),
            vf_switch <- new_mutex!((), "CtrlCore::vf_switch"),
            vf_bringup <- new_mutex!((), "CtrlCore::vf_bringup"),
        })
    }

    /// The register BAR.
    pub(crate) fn bar(&self) -> &Arc<pci::Bar<REGS_SIZE>> {
        &self.bar
    }

    /// The controller's capabilities.
    pub(crate) fn cap(&self) -> Cap {
        self.cap
    }

    /// The PCI function.
    pub(crate) fn pdev(&self) -> &pci::Device {
        &self.pdev
    }

    /// The current state.
    pub(crate) fn state(&self) -> CtrlState {
        CtrlState::from_u8(self.state.load(Ordering::Acquire))
    }

    fn set_state(&self, s: CtrlState) {
        self.state.store(s as u8, Ordering::Release);
    }

    /// Moves from `from` to `to`; fails (and changes nothing) in any other state.
    fn transition(&self, from: CtrlState, to: CtrlState) -> bool {
        self.state
            .compare_exchange(from as u8, to as u8, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
    }

    /// Current controller status.
    pub(crate) fn status(&self) -> Csts {
        Csts::read(&**self.bar)
    }

    /// Clears CC.EN and waits for CSTS.RDY to follow (within CAP.TO).
    pub(crate) fn disable(&self) -> Result {
        let cc = Cc::read(&**self.bar);
        let csts = Csts::read(&**self.bar);
        if csts.is_all_ones() {
            return Err(ENODEV);
        }
        if !cc.en() && !csts.rdy() {
            return Ok(());
        }
        cc.set_en(false).write(&**self.bar);
        self.wait_ready(false)
    }

    /// Waits for CSTS.RDY to become `ready`; fails on a fatal or vanished controller.
    fn wait_ready(&self, ready: bool) -> Result {
        let bar = &**self.bar;
        read_poll_timeout(
            || {
                let csts = Csts::read(bar);
                if csts.is_all_ones() {
                    return Err(ENODEV);
                }
                if ready && csts.cfs() {
                    return Err(EIO);
                }
                Ok(csts)
            },
            |csts| csts.rdy() == ready,
            self.cap.timeout_ms(),
        )
        .map(|_| ())
        .inspect_err(|e| {
            dev_err!(
                self.pdev,
                "controller did not become {} within {} ms: {:?}\n",
                if ready { "ready" } else { "disabled" },
                self.cap.timeout_ms(),
                e
            )
        })
    }

    /// Programs the (empty) admin queue and sets CC.EN.
    pub(crate) fn enable(&self) -> Result {
        let bar = &**self.bar;
        let (sq_dma, cq_dma) = self.admin.lock().dma();
        let size = ADMIN_DEPTH - 1;
        Aqa::default().set_asqs(size).set_acqs(size).write(bar);
        Asq::default().set_asqb(sq_dma).write(bar);
        Acq::default().set_acqb(cq_dma).write(bar);
        Cc::default()
            .set_css(0)
            .set_mps(0)
            .set_ams(0)
            .set_iosqes(SQE_SIZE_LOG2)
            .set_iocqes(CQE_SIZE_LOG2)
            .set_en(true)
            .write(bar);
        self.wait_ready(true)
    }

    /// Shuts the controller down in an orderly way (CC.SHN normal); returns the status the
    /// controller then reports (SHST complete once it finished).
    pub(crate) fn shutdown(&self) -> Csts {
        let bar = &**self.bar;
        let csts = Csts::read(bar);
        if csts.is_all_ones() {
            return csts;
        }
        Cc::alter(bar, |cc| cc.set_shn(CC_SHN_NORMAL));
        let done = read_poll_timeout(
            || Ok(Csts::read(bar)),
            |csts| csts.is_all_ones() || csts.shst() == CSTS_SHST_COMPLETE,
            SHUTDOWN_TIMEOUT_MS,
        );
        if done.is_err() {
            dev_err!(
                self.pdev,
                "shutdown did not complete within {} ms\n",
                SHUTDOWN_TIMEOUT_MS
            );
        }
        Csts::read(bar)
    }

    /// A dead controller takes no admin command: it would only time out.
    fn check_not_dead(&self) -> Result<(), NvmeError> {
        if self.state() == CtrlState::Dead {
            return Err(NvmeError::Dead);
        }
        Ok(())
    }

    /// Sends an admin command and waits for it; returns the completion's DW0.
    pub(crate) fn admin_sync(&self, cmd: Command) -> Result<u32, NvmeError> {
        self.check_not_dead()?;
        self.admin
            .lock()
            .submit_sync(&self.bar, cmd)
            .map(|c| c.result)
    }

    /// Sends an admin command; failures are logged with `what` and become kernel errors.
    pub(crate) fn admin_checked(&self, cmd: Command, what: &str) -> Result<u32> {
        self.admin_sync(cmd).map_err(|e| {
            dev_err!(self.pdev, "{} failed: {:?}\n", what, e);
            Error::from(e)
        })
    }

    /// Gives the controller an Asynchronous Event Request unless it holds one.
    pub(crate) fn arm_async_event(&self) -> Result {
        self.admin.lock().arm_async_event()
    }

    /// The DW0 of an asynchronous event that arrived, if any.
    pub(crate) fn take_event(&self) -> Result<Option<u32>> {
        self.admin.lock().take_event()
    }

    /// Runs a passthrough admin command whose data moves through the admin queue's bounce
    /// buffer; see [`AdminQueue::submit_bounced`].
    pub(crate) fn admin_bounced(
        &self,
        cmd: Command,
        data_len: u32,
        fill: impl FnOnce(&CoherentAllocation<u8>) -> Result,
        drain: impl FnOnce(&CoherentAllocation<u8>) -> Result,
    ) -> Result<Completion, NvmeError> {
        self.check_not_dead()?;
        self.admin
            .lock()
            .submit_bounced(&self.bar, cmd, data_len, fill, drain)
    }

    /// Runs Identify with `cns`/`nsid` into `buf` and returns a copy of the 4 KiB result.
    pub(crate) fn identify(
        &self,
        buf: &CoherentAllocation<u8>,
        cns: u8,
        nsid: u32,
    ) -> Result<KVec<u8>> {
        self.admin_checked(Command::identify(cns, nsid, buf.dma_handle()), "Identify")?;
        let mut out = KVec::from_elem(0u8, IDENTIFY_SIZE, GFP_KERNEL)?;
        buf.read_into(0, &mut out)?;
        Ok(out)
    }

    /// Sets what new disks are made of, once the I/O queues exist.
    pub(crate) fn set_disk_template(&self, template: DiskTemplate) {
        self.namespaces.lock().set_template(template);
    }

    /// Adds disks for new active namespaces and removes those of namespaces that went away.
    pub(crate) fn rescan(&self) -> Result {
        let report = self.namespaces.lock().scan(self)?;
        if report.added + report.removed + report.revalidated > 0 {
            dev_info!(
                self.pdev,
                "namespace scan: {} disk(s) added, {} removed, {} changed\n",
                report.added,
                report.removed,
                report.revalidated
            );
        }
        Ok(())
    }

    /// Runs admin passthrough `f` with what its `effects` ask for: with every disk's queue
    /// frozen for a command that changes namespace data or format (and the disks
    /// revalidated before I/O flows again, so nothing is issued with the old format), and
    /// followed by a rescan for one that may change namespaces (as the C driver's
    /// `nvme_passthru_end`).
    pub(crate) fn passthru_with_effects<R>(
        &self,
        effects: AdminEffects,
        f: impl FnOnce() -> Result<R>,
    ) -> Result<R> {
        let out = if effects.freeze_io {
            let disks = self.namespaces.lock();
            let frozen = disks.freeze_all()?;
            let out = f();
            if let Err(e) = disks.revalidate(self) {
                dev_err!(self.pdev, "revalidating the namespaces failed: {:?}\n", e);
            }
            drop(frozen);
            out
        } else {
            f()
        };
        if effects.rescan {
            if let Err(e) = self.rescan() {
                dev_err!(self.pdev, "namespace scan failed: {:?}\n", e);
            }
        }
        out
    }

    /// Runs `f` with the request queue of namespace `nsid`'s disk (`EINVAL` if there is
    /// none); the disk stays while `f` runs.
    pub(crate) fn with_disk_queue<R>(
        &self,
        nsid: u32,
        f: impl FnOnce(&DiskQueue<IoOps>) -> Result<R>,
    ) -> Result<R> {
        let disks = self.namespaces.lock();
        f(disks.queue_of(nsid).ok_or(EINVAL)?)
    }

    /// Whether a disk of this controller is open or mounted.
    pub(crate) fn disks_in_use(&self) -> bool {
        // A close deferred by a kernel thread (the partition scan of a new disk) is not a
        // user holding the disk.
        block::flush_deferred_closes();
        self.namespaces.lock().in_use()
    }

    /// Removes every disk, draining its I/O.
    pub(crate) fn remove_disks(&self) {
        self.namespaces.lock().clear();
    }

    /// Asks the controller to abort command `cid` of submission queue `sqid`; returns
    /// whether it says it did (the command then completes with an abort status).
    pub(crate) fn abort(&self, sqid: u16, cid: u16) -> Result<bool> {
        let dw0 = self.admin_checked(Command::abort(sqid, cid), "Abort")?;
        Ok(dw0 & 1 == 0)
    }

    /// Resets the controller now, from a user request; fails with `EBUSY` unless live, and
    /// with `ENODEV` if the driver began unbinding meanwhile.
    pub(crate) fn reset_now(self: &Arc<Self>) -> Result {
        if self.state() != CtrlState::Live {
            return Err(EBUSY);
        }
        self.reset("requested by the user");
        match self.state() {
            CtrlState::Live => Ok(()),
            // The driver began unbinding meanwhile (a mode switch, a removal): the
            // controller is going away, it did not fail.
            CtrlState::Removing => Err(ENODEV),
            // Another reset (a function reset) holds it.
            CtrlState::Resetting => Err(EBUSY),
            CtrlState::Dead => Err(EIO),
        }
    }

    /// Asks for `wanted` I/O queue pairs; returns how many the controller grants.
    pub(crate) fn set_num_queues(&self, wanted: u16) -> Result<u32> {
        let dw0 = self.admin_checked(
            Command::set_num_queues(wanted, wanted),
            "Set Features (Number of Queues)",
        )?;
        let (nsq, ncq) = num_queues_allocated(dw0);
        Ok(u32::from(wanted).min(nsq).min(ncq))
    }

    /// Creates I/O completion queue and submission queue `queue` on the controller, the
    /// completion queue interrupting on the queue's vector (none for a polled queue).
    pub(crate) fn create_io_queue(&self, queue: &IoQueue, depth: u16) -> Result {
        let qid = queue.qid();
        let (sq_dma, cq_dma) = queue.dma();
        self.admin_checked(
            Command::create_cq(qid, depth, cq_dma, queue.vector()),
            "Create I/O Completion Queue",
        )?;
        self.admin_checked(
            Command::create_sq(qid, depth, sq_dma, qid),
            "Create I/O Submission Queue",
        )?;
        Ok(())
    }

    /// Records the I/O side once it exists.
    pub(crate) fn link_io(&self, link: IoLink) {
        *self.io.lock() = Some(link);
    }

    /// Schedules a controller reset for `cause`; does nothing unless live.
    pub(crate) fn schedule_reset(self: &Arc<Self>, cause: ResetCause) {
        if self.state() == CtrlState::Live {
            self.resets.cause.store(cause as u8, Ordering::Relaxed);
            // Already queued is fine: one reset handles every timeout.
            let _ = workqueue::system().enqueue::<Arc<CtrlCore>, 0>(self.clone());
        }
    }

    /// Resets the controller (`why` is logged): holds I/O back, disables the controller,
    /// requeues every request in flight, re-enables it and recreates the I/O queues. On
    /// failure the controller is given up ([`Self::give_up`]). Does nothing unless live.
    fn reset(self: &Arc<Self>, why: &str) {
        // Held from the start until the secondary controllers are online again, so that
        // no VF's controller is brought up in between and left offline.
        let bringup = self.vf_bringup.lock();
        if !self.stop_for_reset(why, false) {
            return;
        }
        let restarted = self.restart_after_reset();
        drop(bringup);
        self.sriov_recover_vfs(VfRecovery::ResetControllers, restarted);
    }

    /// Takes the controller out of service for a reset, if it is live (`why` is logged):
    /// I/O is held back, the controller disabled and every request in flight taken back,
    /// to be dispatched again once [`Self::finish_reset`] brought the controller back.
    /// Returns whether it did; if not (not live), nothing changed.
    pub(crate) fn begin_reset(&self, why: &str) -> bool {
        // Not while a VF's controller is being brought up (the PF's secondary controllers
        // go offline here); a VF probe finding its PF resetting declines.
        let _bringup = self.vf_bringup.lock();
        self.stop_for_reset(why, true)
    }

    /// Brings a controller that [`Self::begin_reset`] took out of service back; then its
    /// VFs' controllers come back as `vfs` says, or are given up if it is dead.
    pub(crate) fn finish_reset(self: &Arc<Self>, vfs: VfRecovery) {
        let bringup = self.vf_bringup.lock();
        let restarted = match self.state() {
            CtrlState::Resetting => self.restart_after_reset(),
            // Not taken out of service by `begin_reset` (dead already): the VFs it took
            // out of service are given up with it.
            state => state == CtrlState::Live,
        };
        drop(bringup);
        self.sriov_recover_vfs(vfs, restarted);
    }

    /// The first half of a reset, with `vf_bringup` held: see [`Self::begin_reset`].
    /// `held`: the second half comes from another call ([`Self::finish_reset`]).
    fn stop_for_reset(&self, why: &str, held: bool) -> bool {
        let io = self.io.lock();
        // INVARIANT: `Resetting` is entered and left with `io` held, and the I/O queues
        // stay quiesced (once, by the reset) for as long as it lasts; whoever ends it
        // (the restart, or giving up a held reset) releases that quiesce.
        if !self.transition(CtrlState::Live, CtrlState::Resetting) {
            return false;
        }
        self.resets.held.store(held, Ordering::Relaxed);
        dev_warn!(
            self.pdev,
            "resetting controller: {} (CSTS {:#x})\n",
            why,
            self.status().0
        );
        if let Some(link) = io.as_ref() {
            link.tagset.quiesce();
            self.stop_and_cancel(link, Cancel::Requeue);
        }
        true
    }

    /// The second half of a reset, with `vf_bringup` held and the controller resetting:
    /// empty rings, enabled, I/O queues recreated and I/O flowing again (the requests taken
    /// back first), and on a PF the VFs' secondary controllers online again. A failure
    /// gives the controller up. Returns whether the controller is live again.
    fn restart_after_reset(self: &Arc<Self>) -> bool {
        let io = self.io.lock();
        // This task ends the reset now, whoever began it.
        self.resets.held.store(false, Ordering::Relaxed);
        let restarted = match io.as_ref().map_or(Ok(()), |link| self.restart(link)) {
            Ok(()) => {
                // Fails if the driver began unbinding meanwhile (`Removing`): the
                // controller works, and the unbind goes on with it.
                self.transition(CtrlState::Resetting, CtrlState::Live)
            }
            Err(e) => {
                self.fail(io.as_ref(), format_args!("reset failed ({:?})", e));
                false
            }
        };
        if let Some(link) = io.as_ref() {
            // The reset's quiesce (`stop_for_reset`).
            link.tagset.unquiesce();
        }
        drop(io);
        if restarted {
            let n = self.resets.done.fetch_add(1, Ordering::Relaxed) + 1;
            dev_info!(self.pdev, "controller reset complete ({} so far)\n", n);
            // The reset took the VFs' secondary controllers offline.
            self.sriov_restore_secondaries();
        }
        restarted
    }

    /// Gives the controller up (the C driver's "disable controller" after a failed
    /// recovery): see [`Self::fail`]. `why` is logged, once.
    pub(crate) fn give_up(self: &Arc<Self>, why: ::core::fmt::Arguments<'_>) {
        let io = self.io.lock();
        self.fail(io.as_ref(), why);
    }

    /// Declares the controller dead (logged once, with `why`), disables it and fails every
    /// request in flight with `EIO`, with the queues quiesced so that none is being
    /// submitted meanwhile; new I/O fails at once (`not_live`). A work item marks the
    /// disks dead, so that I/O held back at the disks' queues fails too. The disks stay
    /// until the driver unbinds; the module can be unloaded once their users let go. The
    /// work item, not the caller, takes the disks' lock: the caller may be a timeout
    /// handler that a holder of that lock (freezing the disks) waits for. On a dead
    /// controller it only fails what is in flight again (a request that timed out there).
    /// `link` is borrowed from the held `io` lock, under which the state changes.
    fn fail(self: &Arc<Self>, link: Option<&IoLink>, why: ::core::fmt::Arguments<'_>) {
        let was = CtrlState::from_u8(self.state.swap(CtrlState::Dead as u8, Ordering::AcqRel));
        if was != CtrlState::Dead {
            dev_err!(
                self.pdev,
                "{}: giving the controller up (CSTS {:#x}); its I/O fails\n",
                why,
                self.status().0
            );
        }
        // A held reset (`begin_reset`) ends here: nobody else would release its quiesce.
        // A reset run by one task releases it itself when its restart fails.
        let ends_held =
            was == CtrlState::Resetting && self.resets.held.swap(false, Ordering::Relaxed);
        if let Some(link) = link {
            link.tagset.quiesce();
            self.stop_and_cancel(link, Cancel::Fail);
            link.tagset.unquiesce();
            if ends_held {
                link.tagset.unquiesce();
            }
        }
        // Not while unbinding: the disks are being removed anyway.
        if was != CtrlState::Dead && was != CtrlState::Removing {
            let _ = workqueue::system().enqueue::<Arc<CtrlCore>, 2>(self.clone());
        }
    }

    /// Takes the controller out of service before a reset of its PCI function (FLR,
    /// `echo 1 > reset`); on a PF, its VFs in block mode first, since the function reset
    /// of a PF resets its VFs too. [`Self::finish_function_reset`] brings them back.
    pub(crate) fn prepare_function_reset(self: &Arc<Self>) {
        // A reset queued by a timeout is superseded by this one.
        cancel_arc_work_sync::<_, 0>(self);
        for vf in self.block_vfs().iter() {
            vf.begin_reset("function reset of its PF");
        }
        self.begin_reset("function reset");
    }

    /// Brings the controller back after a reset of its PCI function, whose configuration
    /// space the PCI core restored (on a PF with the VFs enabled again).
    pub(crate) fn finish_function_reset(self: &Arc<Self>) {
        // The restore used the saved state up; keep one for the next reset.
        self.pdev.save_state();
        self.finish_reset(VfRecovery::RestoreFunctions);
    }

    /// Disables the controller (so it no longer touches any queue or data memory), takes
    /// the completions it posted before that, and cancels every request still in flight.
    fn stop_and_cancel(&self, link: &IoLink, how: Cancel) {
        // A failed disable means the device is gone or broken: it cannot DMA either way
        // once bus mastering stops, and nothing more will complete.
        let _ = self.disable();
        for q in link.queues.iter() {
            // A polled queue has no interrupt; this drain waits for a polling task's.
            if q.vector().is_some() {
                irq::synchronize(q.irq());
            }
            q.drain(&link.tagset, IfBusy::Wait);
        }
        link.tagset
            .cancel_in_flight(&mut |rq| rq.data().cancel(how));
    }

    /// Brings a disabled controller back: empty rings, enable, I/O queues recreated.
    fn restart(&self, link: &IoLink) -> Result {
        self.admin.lock().reset()?;
        for q in link.queues.iter() {
            q.reset()?;
        }
        self.enable()?;
        let wanted = u16::try_from(link.queues.len()).map_err(|_| EINVAL)?;
        if self.set_num_queues(wanted)? < u32::from(wanted) {
            return Err(ENODEV);
        }
        for q in link.queues.iter() {
            self.create_io_queue(q, link.depth)?;
        }
        if let Some(buf) = &link.dbbuf {
            buf.clear()?;
            self.config_dbbuf(buf)?;
        }
        self.start_events()
    }

    /// Tells the controller where the shadow doorbells live (Doorbell Buffer Config).
    pub(crate) fn config_dbbuf(&self, buf: &DbBuf) -> Result {
        let (db, ei) = buf.dma();
        self.admin_checked(Command::dbbuf_config(db, ei), "Doorbell Buffer Config")
            .map(|_| ())
    }

    /// Cancels a queued reset or event handling and waits for a running one.
    fn cancel_work(self: &Arc<Self>) {
        cancel_arc_work_sync::<_, 0>(self);
        cancel_arc_work_sync::<_, 1>(self);
        cancel_arc_work_sync::<_, 2>(self);
    }

    /// Stops the controller for a system shutdown or reboot: no more I/O is dispatched,
    /// the controller completes a normal shutdown (CC.SHN) and is disabled, and whatever
    /// was still in flight fails. The disks stay until the system goes down.
    pub(crate) fn system_shutdown(self: &Arc<Self>) {
        self.cancel_work();
        self.set_state(CtrlState::Dead);
        let io = self.io.lock();
        if let Some(link) = io.as_ref() {
            link.tagset.quiesce();
        }
        // The status right after CC.SHN is the one that tells whether the shutdown
        // completed (SHST); disabling the controller afterwards clears it.
        let csts = if self.status().rdy() {
            self.shutdown()
        } else {
            self.status()
        };
        if let Some(link) = io.as_ref() {
            self.stop_and_cancel(link, Cancel::Fail);
            link.tagset.unquiesce();
        }
        dev_info!(self.pdev, "shut down (CSTS {:#x})\n", csts.0);
    }

    /// Starts unbinding: waits for a running reset, then lets I/O drain.
    pub(crate) fn begin_removal(self: &Arc<Self>) {
        self.cancel_work();
        let io = self.io.lock();
        match self.state() {
            CtrlState::Dead => {}
            // Held stopped by a function reset (its own, or its PF's) whose second half
            // will not come for it: its requests wait at quiesced queues; fail them now.
            CtrlState::Resetting if self.resets.held.load(Ordering::Relaxed) => {
                self.fail(io.as_ref(), format_args!("unbound during a function reset"))
            }
            // A reset run by one task (a timeout's, a user's) finishes by itself, and the
            // unbind goes on with the controller it brought back.
            CtrlState::Resetting | CtrlState::Live | CtrlState::Removing => {
                self.set_state(CtrlState::Removing)
            }
        }
    }

    /// Finishes unbinding once the disks are gone: no reset may run any more, the I/O side
    /// is unlinked (breaking the reference cycle through the tag set), and the controller
    /// is shut down and disabled before any queue memory is freed.
    pub(crate) fn finish_removal(self: &Arc<Self>) {
        self.cancel_work();
        drop(self.io.lock().take());
        let csts = self.status();
        if !csts.is_all_ones() {
            if csts.rdy() {
                self.shutdown();
            }
            if self.disable().is_err() {
                dev_err!(self.pdev, "controller did not disable\n");
            }
        }
    }
}
