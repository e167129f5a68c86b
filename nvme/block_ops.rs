// SPDX-License-Identifier: GPL-2.0

//! The blk-mq operations of the disks: turning requests into NVMe commands and completions
//! back into request status, and a timed-out request into recovery.

use core::sync::atomic::Ordering;

use kernel::{
    prelude::*,
    sync::{Arc, ArcBorrow},
    types::{ARef, ForeignOwnable},
};

use crate::{
    kapi::{
        block::{
            mq::{
                BatchTarget, CompleteAction, DiskQueue, HctxType, Operations, PreparedRqs,
                QueueMap, ReqOp, Request, TagSet, TimeoutAction,
            },
            BlkStatus,
        },
        device::{dev_warn, Device},
        dma::DmaPool,
        params,
    },
    nvme::{
        ctrl_base::{CtrlBase, CtrlState},
        ctrl_core::{CtrlCore, ResetCause},
        io::{
            queue::{IfBusy, IoQueue, SqBatch},
            request::{command_id, Cancel, IoDma, IoOps, IoPdu, MAX_TRANSFER},
        },
        namespace::Namespace,
        spec::{
            cid,
            command::{dsm_range, Command},
            completion::BlockOutcome,
            prp::{self, Prp2},
            recovery::{timeout_step, TimeoutStep, Tries},
            sgl,
        },
        user_cmd,
    },
};

/// What every I/O request needs: the queues, the device to map data for, the PRP list pool,
/// and the controller (for its state and recovery).
pub(crate) struct IoQueues {
    /// The controller, for its recovery.
    pub(crate) core: Arc<CtrlCore>,
    /// Its basics, for the state every submission checks.
    pub(crate) base: Arc<CtrlBase>,
    /// The queue pairs; hardware context `i` uses `queues[i]` (queue ID `i + 1`).
    pub(crate) queues: KVec<Arc<IoQueue>>,
    /// The device that DMA mappings are made for.
    pub(crate) dev: ARef<Device>,
    /// PRP lists, SGL segments and Dataset Management ranges (one page each).
    pub(crate) prp_pool: Arc<DmaPool>,
    /// Whether the controller takes SGLs for reads and writes (Identify Controller SGLS).
    pub(crate) sgl: bool,
    /// The vector of the first I/O queue when each queue has its own, spread over the
    /// CPUs; `None` when a single vector serves everything.
    pub(crate) first_vector: Option<u32>,
    /// How many of `queues` (the first ones) complete through interrupts; the rest are
    /// polled queues, served by the tag set's poll map.
    pub(crate) nr_interrupt: u32,
}

fn blk_status(outcome: BlockOutcome) -> BlkStatus {
    match outcome {
        BlockOutcome::Ok => BlkStatus::OK,
        BlockOutcome::NotSupported => BlkStatus::NOTSUPP,
        BlockOutcome::OutOfRange => BlkStatus::TARGET,
        BlockOutcome::NoSpace => BlkStatus::NOSPC,
        BlockOutcome::Medium => BlkStatus::MEDIUM,
        BlockOutcome::Protection => BlkStatus::PROTECTION,
        BlockOutcome::IoError => BlkStatus::IOERR,
    }
}

/// PRP entry 2 of a transfer that needs no list.
fn prp2_entry(prp2: Prp2) -> u64 {
    match prp2 {
        Prp2::Page(page) => page,
        Prp2::None | Prp2::List(_) => 0,
    }
}

/// Builds the PRP entries of a mapped request, with a PRP list from the pool (held in
/// `dma` until completion) when the transfer spans more than two pages. The list is built
/// in the pool block itself; a transfer that turns out to need none gives the block back.
fn prp_list(io: &IoQueues, dma: &mut IoDma) -> Result<(u64, u64), BlkStatus> {
    let segments = dma.sg.segments();
    let (list, prps) = io
        .prp_pool
        .alloc_atomic_filled(|entries| {
            let prps = prp::build(segments, 4096, entries)?;
            if let Prp2::List(n) = prps.prp2 {
                for e in entries.iter_mut().take(n) {
                    *e = e.to_le();
                }
            }
            Ok::<_, prp::PrpError>(prps)
        })
        .map_err(|_| BlkStatus::RESOURCE)?;
    let prps = prps.map_err(|_| BlkStatus::IOERR)?;
    let prp2 = match prps.prp2 {
        Prp2::List(_) => {
            let addr = list.dma_handle();
            dma.pool_block = Some(list);
            addr
        }
        other => prp2_entry(other),
    };
    Ok((prps.prp1, prp2))
}

/// Where a command's data is, as [`map_data`] described it.
#[derive(Clone, Copy)]
enum DataPtr {
    /// PRP entries 1 and 2.
    Prps(u64, u64),
    /// One SGL Data Block descriptor: all of the data.
    Sgl(sgl::Descriptor),
}

impl DataPtr {
    /// `cmd` with this data pointer.
    fn apply(self, cmd: Command) -> Command {
        match self {
            Self::Prps(prp1, prp2) => cmd.with_prps(prp1, prp2),
            Self::Sgl(desc) => cmd.with_sgl(desc),
        }
    }
}

/// Maps the request's data for the device and describes it: PRP entries, or with
/// `sgl_allowed` one SGL descriptor when the controller has SGLs (and `rnvme.sgls` is on)
/// and the data is one DMA segment of more than two pages, as an IOMMU maps it. The
/// controller then reads no PRP list, which is what the C driver does for such data.
/// Inline: it runs for every read and write, and its result is the caller's command.
#[inline(always)]
fn map_data(
    io: &IoQueues,
    rq: &Request<IoOps>,
    dma: &mut IoDma,
    sgl_allowed: bool,
) -> Result<DataPtr, BlkStatus> {
    dma.sg.map(rq).map_err(|e| {
        if e == ENOMEM {
            BlkStatus::RESOURCE
        } else {
            BlkStatus::IOERR
        }
    })?;
    // One look at the segments: a single one is described without any list.
    if let Some(only) = sgl::single(dma.sg.segments()) {
        if let Some(prps) = prp::simple(only.addr, only.len, 4096) {
            return Ok(DataPtr::Prps(prps.prp1, prp2_entry(prps.prp2)));
        }
        if sgl_allowed && io.sgl && params::sgls() {
            return Ok(DataPtr::Sgl(only));
        }
    }
    prp_list(io, dma).map(|(prp1, prp2)| DataPtr::Prps(prp1, prp2))
}

/// Maps the request's data and builds its Read or Write command.
fn read_write(
    io: &IoQueues,
    ns: &Namespace,
    rq: &Request<IoOps>,
    dma: &mut IoDma,
) -> Result<Command, BlkStatus> {
    // 9 to 12 (`Namespace` invariant): the wrapping operations cannot wrap, they only
    // spare this path the overflow checks' branches.
    let shift = ns.lba_shift();
    let bytes = rq.bytes();
    if bytes == 0 || bytes & 1u32.wrapping_shl(shift).wrapping_sub(1) != 0 || bytes > MAX_TRANSFER {
        return Err(BlkStatus::INVAL);
    }
    let slba = rq.sector().wrapping_shr(shift.wrapping_sub(9));
    let blocks = bytes.wrapping_shr(shift);
    let data = map_data(io, rq, dma, true)?;
    let cmd = Command::read_write(
        rq.op() == ReqOp::Write,
        ns.nsid(),
        slba,
        blocks,
        rq.is_fua(),
        0,
        0,
    )
    .ok_or(BlkStatus::INVAL)?;
    Ok(data.apply(cmd))
}

/// Maps the data of a driver-private request and completes its passthrough command `cmd`.
fn passthru(
    io: &IoQueues,
    rq: &Request<IoOps>,
    cmd: Command,
    dma: &mut IoDma,
) -> Result<Command, BlkStatus> {
    let bytes = rq.bytes();
    if bytes > MAX_TRANSFER {
        return Err(BlkStatus::INVAL);
    }
    // PRPs only: the command is the caller's, its flags included.
    let (prp1, prp2) = match bytes {
        0 => (0, 0),
        _ => match map_data(io, rq, dma, false)? {
            DataPtr::Prps(prp1, prp2) => (prp1, prp2),
            DataPtr::Sgl(_) => return Err(BlkStatus::IOERR),
        },
    };
    Ok(cmd.with_prps(prp1, prp2))
}

/// Builds a command with `build`, which maps the request's data into its DMA state, and
/// keeps it there; on failure whatever was mapped is released.
fn with_dma(
    rq: &Request<IoOps>,
    build: impl FnOnce(&mut IoDma) -> Result<Command, BlkStatus>,
) -> Result<(), BlkStatus> {
    rq.data()
        .dma
        .try_with(|dma| {
            build(dma)
                .map(|cmd| dma.cmd = cmd)
                .inspect_err(|_| dma.release())
        })
        // In use by a completion of this tag: the controller posted one for a command
        // it was never given. Try again later.
        .unwrap_or(Err(BlkStatus::DEV_RESOURCE))
}

/// Releases the request's DMA state (its mapping and pool block).
fn release_dma(rq: &Request<IoOps>) {
    // `None`: submission is still preparing this tag, so the completion that brought us
    // here was bogus; the submission keeps what it holds.
    let _ = rq.data().dma.try_with(IoDma::release);
}

/// Places the command [`prepare`] left in `rq` on the submission ring, copied straight
/// from the request's DMA state under its exclusion. Fails if the ring is full, or if the
/// state is in use (by a bogus completion of the tag).
fn push_prepared(rq: &Request<IoOps>, sq: &mut SqBatch<'_>) -> Result {
    rq.data()
        .dma
        .try_with(|dma| sq.push(&dma.cmd))
        .unwrap_or(Err(EBUSY))
}

/// Builds the command of `rq` and maps its data; the command is kept in the request's
/// DMA state for [`push_prepared`].
fn prepare(io: &IoQueues, ns: &Namespace, rq: &Request<IoOps>) -> Result<(), BlkStatus> {
    let state = io.base.state();
    if state != CtrlState::Live {
        not_live(state)?;
    }
    rq.data().status.store(0, Ordering::Relaxed);
    rq.data().cancel(Cancel::No);
    rq.data().aborted.store(false, Ordering::Relaxed);
    // Tags are below the queue depth, which the controller keeps below `cid::MAX_TAGS`.
    let cid = cid::encode(rq.tag(), rq.data().next_generation()).ok_or(BlkStatus::IOERR)?;

    // Read before the DMA state is taken: the passthrough lock is never held with it.
    let user_cmd = if is_passthru(rq) {
        Some((*rq.data().passthru.lock()).ok_or(BlkStatus::IOERR)?)
    } else {
        None
    };
    // One use of the DMA state per request: the data mapping, the pool block and the
    // command kept for the submission.
    with_dma(rq, |dma| {
        // Reads and writes first, without a jump table on the operation.
        if rq.is_read_write() {
            return Ok(read_write(io, ns, rq, dma)?.with_cid(cid));
        }
        let cmd = match (rq.op(), user_cmd) {
            (ReqOp::DrvIn | ReqOp::DrvOut, Some(cmd)) => passthru(io, rq, cmd, dma)?,
            (ReqOp::Flush, _) => Command::flush(ns.nsid()),
            (ReqOp::Discard, _) if ns.discard() => {
                let shift = ns.lba_shift();
                let range = dsm_range(rq.sector() >> (shift - 9), rq.bytes() >> shift);
                let block = io
                    .prp_pool
                    .alloc_atomic()
                    .map_err(|_| BlkStatus::RESOURCE)?;
                block.write_le(&range).map_err(|_| BlkStatus::IOERR)?;
                let cmd = Command::dsm_deallocate(ns.nsid(), 1, block.dma_handle())
                    .ok_or(BlkStatus::INVAL)?;
                // Kept until completion: the controller reads the range from it.
                dma.pool_block = Some(block);
                cmd
            }
            (ReqOp::WriteZeroes, _) if ns.write_zeroes() => {
                let shift = ns.lba_shift();
                Command::write_zeroes(ns.nsid(), rq.sector() >> (shift - 9), rq.bytes() >> shift)
                    .ok_or(BlkStatus::INVAL)?
            }
            _ => return Err(BlkStatus::NOTSUPP),
        }
        .with_cid(cid);
        Ok(cmd)
    })
}

/// What becomes of I/O prepared while the controller is not live: it proceeds while the
/// driver unbinds (the queues drain), comes back later during recovery, and fails once the
/// controller is dead. Out of line: [`prepare`] tests for the live state first.
#[cold]
fn not_live(state: CtrlState) -> Result<(), BlkStatus> {
    match state {
        CtrlState::Live | CtrlState::Removing => Ok(()),
        // Recovery quiesces the queues; a request that races in comes back later.
        CtrlState::Resetting => Err(BlkStatus::DEV_RESOURCE),
        CtrlState::Dead => Err(BlkStatus::IOERR),
    }
}

/// Whether a request is driver-private (a passthrough command from userspace).
fn is_passthru(rq: &Request<IoOps>) -> bool {
    rq.op().is_passthrough()
}

impl Operations for IoOps {
    type TagSetData = Arc<IoQueues>;
    type QueueData = Arc<Namespace>;
    type RequestData = IoPdu;

    fn new_request_data(
        io: <Self::TagSetData as ForeignOwnable>::Borrowed<'_>,
    ) -> impl PinInit<IoPdu, Error> {
        IoPdu::new(io.dev.clone())
    }

    fn queue_rq(
        io: ArcBorrow<'_, IoQueues>,
        ns: ArcBorrow<'_, Namespace>,
        hctx_idx: u32,
        rq: &Request<Self>,
        is_last: bool,
    ) -> Result<(), BlkStatus> {
        let queue = io.queues.get(hctx_idx as usize).ok_or(BlkStatus::IOERR)?;
        prepare(&io, &ns, rq)?;
        // The DMA state is out of use again before the doorbell rings, after which the
        // completion may run. Like the C driver, the doorbell is rung once per batch
        // (`is_last`, or `commit_rqs` when the block layer ends a batch early).
        queue
            .submit(is_last, |sq| push_prepared(rq, sq))
            .map_err(|_| {
                release_dma(rq);
                BlkStatus::DEV_RESOURCE
            })
    }

    const QUEUE_RQS: bool = true;

    fn prepare_rq(
        io: ArcBorrow<'_, IoQueues>,
        ns: ArcBorrow<'_, Namespace>,
        hctx_idx: u32,
        rq: &Request<Self>,
    ) -> Result<(), BlkStatus> {
        if io.queues.get(hctx_idx as usize).is_none() {
            return Err(BlkStatus::IOERR);
        }
        prepare(&io, &ns, rq)
    }

    fn submit_rqs(io: ArcBorrow<'_, IoQueues>, hctx_idx: u32, rqs: PreparedRqs<'_, Self>) {
        let Some(queue) = io.queues.get(hctx_idx as usize) else {
            // Not reached (`prepare_rq` checked the queue); `queue_rq` fails them.
            rqs.for_each(|rq| {
                release_dma(rq);
                Err(())
            });
            return;
        };
        // One lock hold and one doorbell write for the whole list, as the C driver's
        // `nvme_queue_rqs`. A request that does not fit goes back to blk-mq. A failed
        // doorbell write means the device is gone; the requests time out.
        let _ = queue.submit(true, |sq| {
            rqs.for_each(|rq| push_prepared(rq, sq).map_err(|_| release_dma(rq)));
            Ok(())
        });
    }

    fn commit_rqs(io: ArcBorrow<'_, IoQueues>, hctx_idx: u32) {
        if let Some(queue) = io.queues.get(hctx_idx as usize) {
            // A failed doorbell write means the device is gone; the requests time out.
            let _ = queue.ring();
        }
    }

    fn complete_batched(rq: &Request<Self>) {
        release_dma(rq);
        rq.data().retries.store(0, Ordering::Relaxed);
    }

    fn complete(rq: &Request<Self>) -> CompleteAction {
        let pdu = rq.data();
        release_dma(rq);
        // A passthrough command is neither replayed nor retried: its caller sees what
        // happened (as with the C driver's fail-fast passthrough requests).
        let passthru = is_passthru(rq);
        let status = match pdu.cancel.load(Ordering::Relaxed) {
            // Taken back by a reset: not a retry, the count stays; marked, so that a second
            // timeout gives the controller up.
            c if c == Cancel::Requeue as u8 && !passthru => {
                let tries = Tries::from_raw(pdu.retries.load(Ordering::Relaxed));
                pdu.retries
                    .store(tries.with_taken_back().raw(), Ordering::Relaxed);
                return CompleteAction::Requeue;
            }
            c if c != Cancel::No as u8 => BlkStatus::IOERR,
            _ => {
                let status = pdu.status();
                let tries = Tries::from_raw(pdu.retries.load(Ordering::Relaxed));
                if !passthru && status.should_retry(tries.retries()) {
                    pdu.retries.store(tries.retried().raw(), Ordering::Relaxed);
                    return CompleteAction::Requeue;
                }
                blk_status(status.block_outcome())
            }
        };
        // The data is reused by the tag's next request.
        pdu.retries.store(0, Ordering::Relaxed);
        CompleteAction::End(status)
    }

    fn map_queues(io: ArcBorrow<'_, IoQueues>, map: &QueueMap) {
        // Interrupt-driven queues first (hardware contexts 0..nr_interrupt), then the
        // polled ones; reads share the default queues, as in the C driver.
        let nr = io.nr_interrupt;
        let polled = map.nr_hw_queues().saturating_sub(nr);
        let mut result = match io.first_vector {
            Some(first) => map.follow_irqs(HctxType::Default, nr, 0, io.core.pdev(), first),
            None => map.spread(HctxType::Default, nr, 0),
        };
        if map.nr_maps() > HctxType::Poll as u32 {
            result = result
                .and_then(|()| map.spread(HctxType::Read, 0, nr))
                .and_then(|()| map.spread(HctxType::Poll, polled, nr));
        }
        if let Err(e) = result {
            dev_warn!(io.core.pdev(), "cannot map the I/O queues: {:?}\n", e);
        }
    }

    fn poll(tagset: &TagSet<Self>, hctx_idx: u32, batch: &mut BatchTarget<'_, Self>) -> u32 {
        let io = tagset.data();
        match io.queues.get(hctx_idx as usize) {
            // Only polled queues: an interrupt-driven one is reaped by its handler.
            Some(queue) if queue.vector().is_none() => {
                queue.drain_into(tagset, batch, IfBusy::Skip) as u32
            }
            _ => 0,
        }
    }

    fn ioctl(
        io: ArcBorrow<'_, IoQueues>,
        ns: ArcBorrow<'_, Namespace>,
        queue: &DiskQueue<Self>,
        cmd: u32,
        arg: usize,
    ) -> Result<isize> {
        user_cmd::disk_ioctl(&io.core, &ns, queue, cmd, arg)
    }

    fn timeout(io: ArcBorrow<'_, IoQueues>, rq: &Request<Self>) -> TimeoutAction {
        let core = &io.core;
        let state = core.state();
        dev_warn!(
            core.pdev(),
            "I/O tag {} ({:?}, {} bytes at sector {}) timed out, controller {:?}, CSTS {:#x}\n",
            rq.tag(),
            rq.op(),
            rq.bytes(),
            rq.sector(),
            state,
            core.status().0
        );
        match state {
            // First try to abort just this command (its completion then retries it); if
            // that fails, or the request times out again, the reset disables the
            // controller and requeues every request; if a request the reset took back
            // times out again, the controller is given up (`spec::recovery`).
            CtrlState::Live => {
                let pdu = rq.data();
                let tries = Tries::from_raw(pdu.retries.load(Ordering::Relaxed));
                let aborted = pdu.aborted.load(Ordering::Relaxed);
                match timeout_step(tries, aborted) {
                    TimeoutStep::Abort => {
                        pdu.aborted.store(true, Ordering::Relaxed);
                        let sqid = (rq.hctx_index() + 1) as u16;
                        // Without an identifier (not reached: the queue depth fits the
                        // tag bits) there is nothing to abort: reset.
                        let Some(cid) = command_id(rq) else {
                            core.schedule_reset(ResetCause::Timeout);
                            return TimeoutAction::ResetTimer;
                        };
                        match core.abort(sqid, cid) {
                            Ok(aborted) => {
                                dev_warn!(
                                    core.pdev(),
                                    "abort of I/O tag {} (command {:#06x}) on queue {}: {}\n",
                                    rq.tag(),
                                    cid,
                                    sqid,
                                    if aborted { "aborted" } else { "not aborted" }
                                );
                                return TimeoutAction::ResetTimer;
                            }
                            Err(e) => dev_warn!(core.pdev(), "abort failed: {:?}\n", e),
                        }
                    }
                    TimeoutStep::Reset => dev_warn!(
                        core.pdev(),
                        "I/O tag {} timed out again after its abort\n",
                        rq.tag()
                    ),
                    TimeoutStep::GiveUp => {
                        core.give_up(format_args!(
                            "I/O tag {} timed out again after a controller reset",
                            rq.tag()
                        ));
                        // Giving up failed every request in flight, this one too.
                        return TimeoutAction::Done;
                    }
                }
                core.schedule_reset(ResetCause::Timeout);
                TimeoutAction::ResetTimer
            }
            CtrlState::Resetting => TimeoutAction::ResetTimer,
            // Unbinding, or already failed: fail everything in flight, this request too,
            // so that unbinding cannot hang on a controller that stopped answering.
            CtrlState::Removing | CtrlState::Dead => {
                core.give_up(format_args!(
                    "I/O tag {} timed out while the controller is {:?}",
                    rq.tag(),
                    state
                ));
                TimeoutAction::Done
            }
        }
    }
}
