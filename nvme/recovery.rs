// SPDX-License-Identifier: GPL-2.0

//! Recovery of a controller in block mode: the reset after a timeout or on request, giving
//! a controller up, the reset of its PCI function (and, on a physical function, of its
//! VFs), PCI error recovery's two halves, system shutdown and unbinding.

use core::sync::atomic::Ordering;

use kernel::{
    prelude::*,
    sync::{
        lock::{mutex::MutexBackend, Guard},
        Arc,
    },
    workqueue::{self, WorkItem},
};

use crate::{
    kapi::{
        device::{dev_err, dev_info, dev_warn},
        irq,
        workqueue::cancel_arc_work_sync,
    },
    nvme::{
        ctrl_base::CtrlState,
        ctrl_core::{CtrlCore, IoLink, ResetCause},
        io::{queue::IfBusy, request::Cancel},
        pf::vfs::{BlockVf, VfRecovery},
    },
};

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
        dev_err!(this.pdev(), "disks marked dead: their I/O fails at once\n");
    }
}

impl CtrlCore {
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
        // Serialises the resets of this controller; on a PF held from the start until the
        // secondary controllers are online again, so that no VF's controller is brought
        // up in between and left offline.
        let serialised = self.hold_reset_lock();
        if !self.stop_for_reset(why, false) {
            return;
        }
        let restarted = self.restart_after_reset();
        drop(serialised);
        self.recover_vfs(VfRecovery::ResetControllers, restarted);
    }

    /// Takes the controller out of service for a reset, if it is live (`why` is logged):
    /// I/O is held back, the controller disabled and every request in flight taken back,
    /// to be dispatched again once [`Self::finish_reset`] brought the controller back.
    /// Returns whether it did; if not (not live), nothing changed.
    pub(crate) fn begin_reset(&self, why: &str) -> bool {
        // Not while a VF's controller is being brought up (the PF's secondary controllers
        // go offline here); a VF probe finding its PF resetting declines.
        let _serialised = self.hold_reset_lock();
        self.stop_for_reset(why, true)
    }

    /// Brings a controller that [`Self::begin_reset`] took out of service back; then its
    /// VFs' controllers come back as `vfs` says, or are given up if it is dead.
    pub(crate) fn finish_reset(self: &Arc<Self>, vfs: VfRecovery) {
        let serialised = self.hold_reset_lock();
        let restarted = match self.state() {
            CtrlState::Resetting => self.restart_after_reset(),
            // Not taken out of service by `begin_reset` (dead already): the VFs it took
            // out of service are given up with it.
            state => state == CtrlState::Live,
        };
        drop(serialised);
        self.recover_vfs(vfs, restarted);
    }

    /// The first half of a reset, with the reset lock held ([`Self::hold_reset_lock`]): see
    /// [`Self::begin_reset`].
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
            self.pdev(),
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

    /// The second half of a reset, with the reset lock held and the controller resetting:
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
            dev_info!(self.pdev(), "controller reset complete ({} so far)\n", n);
            // The reset took the VFs' secondary controllers offline.
            if let Some(pf) = self.phys_fn() {
                pf.sriov_restore_secondaries();
            }
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
        let was = self.replace_state(CtrlState::Dead);
        if was != CtrlState::Dead {
            dev_err!(
                self.pdev(),
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
        if let Some(pf) = self.phys_fn() {
            for vf in pf.block_vfs().iter() {
                vf.stop_for_pf_reset();
            }
        }
        self.begin_reset("function reset");
    }

    /// Brings the controller back after a reset of its PCI function, whose configuration
    /// space the PCI core restored (on a PF with the VFs enabled again).
    pub(crate) fn finish_function_reset(self: &Arc<Self>) {
        // The restore used the saved state up; keep one for the next reset.
        self.pdev().save_state();
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
        self.reset_admin_queue()?;
        for q in link.queues.iter() {
            q.reset()?;
        }
        self.enable()?;
        let wanted = u16::try_from(link.queues.len()).map_err(|_| EINVAL)?;
        if self.set_num_queues(wanted)? < u32::from(wanted) {
            return Err(ENODEV);
        }
        for q in link.queues.iter() {
            self.create_io_queue(q.qid(), link.depth, q.dma(), q.vector())?;
        }
        if let Some(buf) = &link.dbbuf {
            buf.clear()?;
            self.config_dbbuf(buf.dma())?;
        }
        self.start_events()
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
        dev_info!(self.pdev(), "shut down (CSTS {:#x})\n", csts.0);
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
                dev_err!(self.pdev(), "controller did not disable\n");
            }
        }
    }

    /// Takes the lock that serialises this controller's resets: on a physical function its
    /// [`PhysFn`]'s `vf_bringup`, which also holds the bring-up of its VFs off; on any
    /// other function [`CtrlCore::reset_lock`].
    ///
    /// [`PhysFn`]: crate::nvme::pf::PhysFn
    fn hold_reset_lock(&self) -> Guard<'_, (), MutexBackend> {
        match self.phys_fn() {
            Some(pf) => pf.vf_bringup.lock(),
            None => self.reset_lock.lock(),
        }
    }

    /// On a physical function, after its reset: its VFs come back as `how` says, or are
    /// given up with it (`restarted` false).
    fn recover_vfs(&self, how: VfRecovery, restarted: bool) {
        if let Some(pf) = self.phys_fn() {
            pf.sriov_recover_vfs(how, restarted);
        }
    }
}

impl BlockVf for CtrlCore {
    fn disks_in_use(&self) -> bool {
        CtrlCore::disks_in_use(self)
    }

    fn stop_for_pf_reset(&self) {
        self.begin_reset("function reset of its PF");
    }

    fn recover_after_pf_reset(self: Arc<Self>, how: VfRecovery, pf_live: bool) {
        if !pf_live {
            self.give_up(format_args!("its PF was given up"));
            return;
        }
        match how {
            VfRecovery::ResetControllers => self.schedule_reset(ResetCause::PfReset),
            VfRecovery::RestoreFunctions => {
                self.pdev().restore_state();
                self.finish_function_reset();
            }
        }
    }
}
