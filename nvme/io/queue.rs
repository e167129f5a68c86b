// SPDX-License-Identifier: GPL-2.0

//! I/O queue pairs: submission from any CPU, completion from the queue's interrupt.

use core::sync::atomic::{AtomicU16, AtomicU32, Ordering};

use kernel::{prelude::*, sync::Arc};

use crate::{
    kapi::{
        block::mq::{BatchTarget, CompletionBatch, TagSet},
        device::{dev_warn, Device},
        irq::{Handler, IrqReturn},
        sync::{Exclusive, SpinLock},
    },
    nvme::{
        io::{
            dbbuf::{DbBuf, Shadow},
            request::IoOps,
            rings::{CompletionQueue, SubmissionQueue},
        },
        spec::{
            cid::{self, Generation},
            command::Command,
            completion::Completion,
        },
    },
};

/// An I/O submission/completion queue pair.
#[pin_data]
pub(crate) struct IoQueue {
    qid: u16,
    /// The interrupt vector (MSI-X table index) of the completion queue; `None` for a
    /// polled queue, which has no interrupt.
    vector: Option<u16>,
    /// Only taken by submission (`queue_rq`, never in interrupt context) and by recovery,
    /// so, as in the C driver, a plain spinlock: interrupts stay enabled.
    #[pin]
    sq: SpinLock<SubmissionQueue>,
    /// Used by the queue's interrupt handler (or, for a polled queue, by polling tasks) and
    /// by recovery. As the C driver's interrupt handler, which takes no lock, the handler
    /// makes no interrupt-flag change and no call for it: a drain finds it in use only
    /// when another drain runs, which then takes the completions (see
    /// [`Self::process_completions`]).
    cq: Exclusive<CompletionQueue>,
    /// The SQ head the controller reported last, applied to the ring before a push.
    sq_head: AtomicU16,
    /// The Linux IRQ of the queue's vector, once its handler is registered (0 before).
    irq: AtomicU32,
    /// Bus addresses of the submission and completion rings (fixed for the queue's life).
    dma: (u64, u64),
    /// Completions whose tag was not in flight.
    stray: AtomicU32,
    /// Completions for an earlier submission of a tag that is in flight again.
    stale: AtomicU32,
}

/// How many completions of each kind that name no submission in flight one queue logs.
const STRAY_LOGGED: u32 = 16;

impl IoQueue {
    /// A queue pair whose rings the controller has already created.
    pub(crate) fn new(
        qid: u16,
        vector: Option<u16>,
        sq: SubmissionQueue,
        cq: CompletionQueue,
    ) -> impl PinInit<Self> {
        let dma = (sq.dma(), cq.dma());
        pin_init!(Self {
            qid,
            vector,
            dma,
            sq <- SpinLock::new(sq),
            cq: Exclusive::new(cq),
            sq_head: AtomicU16::new(0),
            irq: AtomicU32::new(0),
            stray: AtomicU32::new(0),
            stale: AtomicU32::new(0),
        })
    }

    /// Bus addresses of the submission and completion rings.
    pub(crate) fn dma(&self) -> (u64, u64) {
        self.dma
    }

    /// Records the Linux IRQ of the queue's handler.
    pub(crate) fn set_irq(&self, irq: u32) {
        self.irq.store(irq, Ordering::Release);
    }

    /// The Linux IRQ of the queue's handler (0 if none yet).
    pub(crate) fn irq(&self) -> u32 {
        self.irq.load(Ordering::Acquire)
    }

    /// Makes both doorbells of the queue shadow doorbells in `buf`; `dstride` is the
    /// doorbell stride in dwords.
    pub(crate) fn use_shadow(&self, buf: &Arc<DbBuf>, dstride: usize) {
        let sq_index = 2 * usize::from(self.qid) * dstride;
        self.sq.lock().set_shadow(Shadow {
            buf: buf.clone(),
            index: sq_index,
        });
        self.cq.wait_with(|cq| {
            cq.set_shadow(Shadow {
                buf: buf.clone(),
                index: sq_index + dstride,
            })
        });
    }

    /// Empties both rings for a controller that is being re-enabled.
    pub(crate) fn reset(&self) -> Result {
        self.sq.lock().reset()?;
        self.cq.wait_with(CompletionQueue::reset)?;
        self.sq_head.store(0, Ordering::Release);
        Ok(())
    }

    /// Completes every request whose completion the controller posted on this queue;
    /// returns how many completions there were. Completions that name no submission in
    /// flight (bogus, stale or duplicate command identifiers) are dropped. `busy` says
    /// what happens if another drain has the queue.
    pub(crate) fn drain(&self, tagset: &TagSet<IoOps>, busy: IfBusy) -> usize {
        let mut batch = CompletionBatch::new();
        self.drain_into(tagset, &mut batch.as_target(), busy)
        // Dropping the batch ends the requests that completed successfully.
    }

    /// Like [`Self::drain`], with the successful completions going to `batch` (e.g. the
    /// batch of a polling task, which ends them).
    pub(crate) fn drain_into(
        &self,
        tagset: &TagSet<IoOps>,
        batch: &mut BatchTarget<'_, IoOps>,
        busy: IfBusy,
    ) -> usize {
        let hctx = u32::from(self.qid) - 1;
        let io = tagset.data();
        self.process_completions(busy, |cqe| {
            // The generation of the tag's request, if the completion is for another one.
            let mut in_flight = None;
            let found = tagset.complete_tag(hctx, cid::tag(cqe.cid), batch, |rq| {
                // A completion for an earlier submission of the tag (a stale or repeated
                // identifier) must not complete the request now using it.
                let current = rq.data().generation();
                if current != cid::generation(cqe.cid) {
                    in_flight = Some(current);
                    return None;
                }
                let status = cqe.status();
                rq.data()
                    .set_completion(status, u64::from(cqe.result) | u64::from(cqe.dw1) << 32);
                Some(status.is_success())
            });
            if !found {
                self.stray_completion(&io.dev, cqe, in_flight);
            }
        })
    }

    /// Reports a completion that names no submission in flight: no request with its tag
    /// is in flight, or the one that is (of generation `in_flight`) is a later submission
    /// of the tag. The completion is dropped (a request it might have meant times out and
    /// recovery takes over); the first few of each kind are logged, the rest only
    /// counted, so that a misbehaving controller cannot flood the log.
    fn stray_completion(&self, dev: &Device, cqe: &Completion, in_flight: Option<Generation>) {
        let counter = match in_flight {
            Some(_) => &self.stale,
            None => &self.stray,
        };
        let seen = counter.fetch_add(1, Ordering::Relaxed);
        if seen >= STRAY_LOGGED {
            return;
        }
        let last = if seen + 1 == STRAY_LOGGED {
            "; further ones are not logged"
        } else {
            ""
        };
        match in_flight {
            Some(current) => dev_warn!(
                dev,
                "stale command identifier {:#06x} completed on queue {}: tag {} is in flight in generation {}{}\n",
                cqe.cid,
                self.qid,
                cid::tag(cqe.cid),
                current.raw(),
                last
            ),
            None => dev_warn!(
                dev,
                "invalid command identifier {:#06x} completed on queue {}: tag {} is not in flight{}\n",
                cqe.cid,
                self.qid,
                cid::tag(cqe.cid),
                last
            ),
        }
    }

    /// The queue identifier.
    pub(crate) fn qid(&self) -> u16 {
        self.qid
    }

    /// The interrupt vector of the completion queue (`None`: a polled queue).
    pub(crate) fn vector(&self) -> Option<u16> {
        self.vector
    }

    /// Places the commands `fill` pushes on the submission ring under one lock hold, then,
    /// if `ring` (the last request of a batch), rings the doorbell once if any were pushed.
    /// Entries pushed without ringing reach the controller with the next ring. Returns
    /// what `fill` returned, or the doorbell write's error.
    pub(crate) fn submit(
        &self,
        ring: bool,
        fill: impl FnOnce(&mut SqBatch<'_>) -> Result,
    ) -> Result {
        let mut sq = self.sq.lock();
        // A head outside the ring (from a broken controller) is not taken: the ring keeps
        // the last valid one and only looks fuller than it is.
        let _ = sq.set_head(self.sq_head.load(Ordering::Acquire));
        let mut batch = SqBatch {
            sq: &mut sq,
            pushed: false,
        };
        let filled = fill(&mut batch);
        if ring && batch.pushed {
            sq.ring_doorbell()?;
        }
        filled
    }

    /// Rings the submission doorbell for everything pushed so far.
    pub(crate) fn ring(&self) -> Result {
        self.sq.lock().ring_doorbell()
    }

    /// Takes every new completion off the ring and hands each to `f`, then rings the
    /// completion doorbell once; returns how many there were.
    ///
    /// `f` runs while the drain has the completion queue to itself, as the C driver
    /// handles completions in its interrupt handler or under its poll lock, so no copy of
    /// the completions is needed. If another drain has the queue, [`IfBusy`] says whether
    /// to wait for it or to return 0 at once.
    pub(crate) fn process_completions(
        &self,
        busy: IfBusy,
        mut f: impl FnMut(&Completion),
    ) -> usize {
        let drain = |cq: &mut CompletionQueue| {
            let mut n = 0;
            while let Ok(Some(c)) = cq.next() {
                // Before the request completes: its completion may lead to a new
                // submission, which needs the freed ring slots.
                self.sq_head.store(c.sq_head, Ordering::Release);
                f(&c);
                n += 1;
            }
            if n > 0 {
                // A failed doorbell write means the device is gone; its requests time out.
                let _ = cq.ring_doorbell();
            }
            n
        };
        match busy {
            IfBusy::Skip => self.cq.try_with(drain).unwrap_or(0),
            IfBusy::Wait => self.cq.wait_with(drain),
        }
    }
}

/// What a drain does when another drain of the same queue is running.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum IfBusy {
    /// Return at once, having taken nothing: the other drain takes the completions. For
    /// the interrupt handler (the same handler never runs twice at once, so the other
    /// drain is recovery, which drains a disabled controller itself) and for polling
    /// tasks (a task polling for its own request polls again). A completion that leads
    /// to a drain of its own queue also returns at once.
    Skip,
    /// Wait for the other drain to end: for recovery, which must have taken every
    /// completion before it cancels what is left in flight.
    Wait,
}

/// Commands being placed on a submission ring by [`IoQueue::submit`].
pub(crate) struct SqBatch<'a> {
    sq: &'a mut SubmissionQueue,
    /// Whether a command was pushed (and the doorbell has something to announce).
    pushed: bool,
}

impl SqBatch<'_> {
    /// Copies `cmd` into the next slot. `EBUSY` if the ring is full.
    pub(crate) fn push(&mut self, cmd: &Command) -> Result {
        self.sq.push(cmd)?;
        self.pushed = true;
        Ok(())
    }
}

/// The interrupt handler of one I/O queue.
pub(crate) struct QueueIrq {
    /// The queue whose completions this interrupt signals.
    pub(crate) queue: Arc<IoQueue>,
    /// The tag set whose requests the queue completes.
    pub(crate) tagset: Arc<TagSet<IoOps>>,
}

impl Handler for QueueIrq {
    fn handle(&self) -> IrqReturn {
        if self.queue.drain(&self.tagset, IfBusy::Skip) > 0 {
            IrqReturn::Handled
        } else {
            IrqReturn::None
        }
    }
}
