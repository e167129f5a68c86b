// SPDX-License-Identifier: GPL-2.0

//! A controller's basics, which every other part of the driver stands on: its registers
//! (enable, disable, shutdown), its state, and its admin queue with the commands sent on it.
//! The physical function's services ([`crate::nvme::pf`]) and the block-mode controller
//! ([`crate::nvme::ctrl_core`]) share one.

use core::sync::atomic::{AtomicU32, AtomicU8, Ordering};

use kernel::{
    c_str, new_mutex,
    prelude::*,
    sync::{Arc, Mutex},
    types::ARef,
};

use crate::{
    kapi::{
        delay::read_poll_timeout,
        device::{dev_err, dev_warn},
        dma::CoherentAllocation,
        pci,
    },
    nvme::{
        admin::{AdminQueue, ADMIN_DEPTH},
        nvme_error::NvmeError,
        spec::{
            command::{feature, num_queues_allocated, Command, SQE_SIZE_LOG2},
            completion::{Completion, CQE_SIZE_LOG2},
            ctrl_regs::{
                Acq, Aqa, Asq, Cap, Cc, Csts, CC_SHN_NORMAL, CSTS_SHST_COMPLETE, REGS_SIZE,
            },
            event::{log, AEN_CFG_NOTICES},
            identify::IDENTIFY_SIZE,
        },
    },
};

/// Name under which the driver requests BAR0 (in either mode).
pub(crate) const BAR0_NAME: &kernel::str::CStr = c_str!("rnvme");

/// How long a normal shutdown (CC.SHN) may take before the driver disables the controller
/// anyway.
const SHUTDOWN_TIMEOUT_MS: u32 = 5_000;

/// Namespace ID meaning "the whole controller" in Get Log Page.
const NSID_ALL: u32 = 0xffff_ffff;

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

/// A controller's registers, state and admin queue.
#[pin_data]
pub(crate) struct CtrlBase {
    pdev: ARef<pci::Device>,
    bar: Arc<pci::Bar<REGS_SIZE>>,
    cap: Cap,
    /// The admin queue, one synchronous command at a time: a sender holds the mutex from
    /// submission to completion (or timeout), and every other sender (a PF's commands for
    /// many migrating VFs at once) sleeps on it until then, in the mutex's order.
    #[pin]
    admin: Mutex<AdminQueue>,
    /// A [`CtrlState`]; changed by the recovery paths ([`crate::nvme::recovery`]).
    state: AtomicU8,
    /// The Asynchronous Event Configuration the driver set (0: none), set again after a
    /// reset.
    aen_config: AtomicU32,
    /// How many times the controller left `Live` (a reset or giving up began): what the
    /// controller made before (a PF's Controller Data Queues) is gone once it changed.
    generation: AtomicU32,
}

impl CtrlBase {
    /// The basics of a controller whose BAR is mapped and admin queue allocated.
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
            admin <- new_mutex!(admin, "CtrlBase::admin"),
            state: AtomicU8::new(CtrlState::Live as u8),
            aen_config: AtomicU32::new(0),
            generation: AtomicU32::new(0),
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

    /// Sets the state to `s` (system shutdown, unbinding; see `recovery.rs`).
    pub(in crate::nvme) fn set_state(&self, s: CtrlState) {
        self.state.store(s as u8, Ordering::Release);
    }

    /// Moves from `from` to `to`; fails (and changes nothing) in any other state.
    pub(in crate::nvme) fn transition(&self, from: CtrlState, to: CtrlState) -> bool {
        let done = self
            .state
            .compare_exchange(from as u8, to as u8, Ordering::AcqRel, Ordering::Acquire)
            .is_ok();
        if done && from == CtrlState::Live && to != CtrlState::Live {
            self.generation.fetch_add(1, Ordering::AcqRel);
        }
        done
    }

    /// Sets the state to `s` and returns the one it replaced.
    pub(in crate::nvme) fn replace_state(&self, s: CtrlState) -> CtrlState {
        let was = CtrlState::from_u8(self.state.swap(s as u8, Ordering::AcqRel));
        if was == CtrlState::Live && s != CtrlState::Live {
            self.generation.fetch_add(1, Ordering::AcqRel);
        }
        was
    }

    /// How many times the controller left `Live` so far (see the field).
    pub(crate) fn generation(&self) -> u32 {
        self.generation.load(Ordering::Acquire)
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

    /// Empties the admin queue's rings, for a controller that was disabled.
    pub(crate) fn reset_admin_queue(&self) -> Result {
        self.admin.lock().reset()
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

    /// Asks the controller to abort command `cid` of submission queue `sqid`; returns
    /// whether it says it did (the command then completes with an abort status).
    pub(crate) fn abort(&self, sqid: u16, cid: u16) -> Result<bool> {
        let dw0 = self.admin_checked(Command::abort(sqid, cid), "Abort")?;
        Ok(dw0 & 1 == 0)
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

    /// Creates I/O completion queue and submission queue `qid`, `depth` entries each, at
    /// `dma` (submission queue, completion queue), the completion queue interrupting on
    /// `vector` (none for a polled queue).
    pub(crate) fn create_io_queue(
        &self,
        qid: u16,
        depth: u16,
        (sq_dma, cq_dma): (u64, u64),
        vector: Option<u16>,
    ) -> Result {
        self.admin_checked(
            Command::create_cq(qid, depth, cq_dma, vector),
            "Create I/O Completion Queue",
        )?;
        self.admin_checked(
            Command::create_sq(qid, depth, sq_dma, qid),
            "Create I/O Submission Queue",
        )?;
        Ok(())
    }

    /// Tells the controller where the shadow doorbells live (Doorbell Buffer Config):
    /// `dma` is (doorbells, event indexes).
    pub(crate) fn config_dbbuf(&self, (db, ei): (u64, u64)) -> Result {
        self.admin_checked(Command::dbbuf_config(db, ei), "Doorbell Buffer Config")
            .map(|_| ())
    }

    /// Enables the notices the controller supports (of those in `oaes` the driver
    /// handles) and gives it an Asynchronous Event Request; also after every reset.
    pub(crate) fn enable_events(&self, oaes: u32) -> Result {
        self.aen_config
            .store(oaes & AEN_CFG_NOTICES, Ordering::Relaxed);
        self.start_events()
    }

    /// Sets the Asynchronous Event Configuration again and arms the request (a disabled
    /// controller forgets both).
    pub(crate) fn start_events(&self) -> Result {
        let config = self.aen_config.load(Ordering::Relaxed);
        if config != 0 {
            self.admin_checked(
                Command::set_features(feature::ASYNC_EVENT_CONFIG, config),
                "Set Features (Asynchronous Event Configuration)",
            )?;
        }
        self.arm_async_event()
    }

    /// Reads (and so clears) the Changed Namespace List before the first namespace scan.
    /// A controller reports a namespace change only once until the host reads that log;
    /// a change that happened while no driver read it (the function in vfio mode, or
    /// unbound) would otherwise silence every later attach and detach.
    pub(crate) fn clear_changed_namespaces(&self) {
        // 1024 namespace IDs of 4 bytes.
        self.discard_log(log::CHANGED_NS, 4096);
    }

    /// Reads `bytes` of log page `page` for all namespaces and drops the contents: what
    /// matters is that the controller sees the host read it. A failure is only logged.
    pub(crate) fn discard_log(&self, page: u8, bytes: u32) {
        let Some(cmd) = Command::get_log_page(page, NSID_ALL, bytes, 0) else {
            return;
        };
        if let Err(e) = self.admin_bounced(cmd, bytes, |_| Ok(()), |_| Ok(())) {
            dev_warn!(
                self.pdev(),
                "reading log page {:#x} failed: {:?}\n",
                page,
                e
            );
        }
    }
}

/// Views an Identify buffer as the fixed-size structure the parsers take.
pub(crate) fn as_identify(raw: &[u8]) -> Result<&[u8; IDENTIFY_SIZE]> {
    raw.try_into().map_err(|_| EINVAL)
}
