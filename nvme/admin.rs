// SPDX-License-Identifier: GPL-2.0

//! The admin queue: synchronous admin commands, polled for completion, and the one
//! Asynchronous Event Request the controller holds until it has an event to report.

use kernel::{prelude::*, sync::Arc};

use crate::{
    kapi::{
        delay::read_poll_timeout,
        device::{Bound, Device},
        dma::CoherentAllocation,
        error::etimedout,
        io::Io,
        pci,
    },
    nvme::{
        io::rings::{CompletionQueue, SubmissionQueue},
        nvme_error::NvmeError,
        spec::{
            command::Command,
            completion::Completion,
            ctrl_regs::{Csts, REGS_SIZE},
            prp::{self, Prp2},
        },
    },
};

/// Entries of the admin queue. The queue holds at most one synchronous command (its
/// owner's mutex serialises them) and the Asynchronous Event Request, so the depth never
/// limits how many users send commands: they wait for the mutex instead
/// (`Documentation/migration.rst`, "Many VFs at once").
pub(crate) const ADMIN_DEPTH: u16 = 32;

/// How long an admin command may take before the driver gives up on it, counted from its
/// submission: the time a command waited for the queue behind other commands does not
/// count, so a busy queue never makes a command time out.
pub(crate) const ADMIN_TIMEOUT_MS: u32 = 10_000;

/// Largest data transfer of a passthrough admin command.
pub(crate) const MAX_PASSTHRU_DATA: u32 = 64 * 1024;

/// Command identifier of the Asynchronous Event Request; synchronous commands use
/// identifiers below it.
const AER_CID: u16 = 0x8000;

/// The admin submission and completion queues, the next command identifier, and the
/// bounce buffer (with its PRP list) that passthrough commands move their data through.
pub(crate) struct AdminQueue {
    sq: SubmissionQueue,
    cq: CompletionQueue,
    next_cid: u16,
    bounce: CoherentAllocation<u8>,
    bounce_list: CoherentAllocation<u64>,
    /// Whether the controller holds an Asynchronous Event Request.
    aer_outstanding: bool,
    /// The DW0 of an Asynchronous Event Request completion not yet handled.
    event: Option<u32>,
}

impl AdminQueue {
    /// Allocates the admin queue memory.
    pub(crate) fn new(
        dev: &Device<Bound>,
        bar: &Arc<pci::Bar<REGS_SIZE>>,
        stride: usize,
    ) -> Result<Self> {
        Ok(Self {
            sq: SubmissionQueue::new(dev, bar, 0, ADMIN_DEPTH, stride)?,
            cq: CompletionQueue::new(dev, bar, 0, ADMIN_DEPTH, stride)?,
            next_cid: 0,
            bounce: CoherentAllocation::alloc_coherent(dev, MAX_PASSTHRU_DATA as usize)?,
            bounce_list: CoherentAllocation::alloc_coherent(dev, prp::list_capacity(4096))?,
            aer_outstanding: false,
            event: None,
        })
    }

    /// Runs a passthrough command whose data (`data_len` bytes) goes through the bounce
    /// buffer: `fill` writes the data to send into it first, `drain` reads what the
    /// controller returned afterwards (only if the command succeeded).
    pub(crate) fn submit_bounced(
        &mut self,
        bar: &Io<REGS_SIZE>,
        cmd: Command,
        data_len: u32,
        fill: impl FnOnce(&CoherentAllocation<u8>) -> Result,
        drain: impl FnOnce(&CoherentAllocation<u8>) -> Result,
    ) -> Result<Completion, NvmeError> {
        if data_len > MAX_PASSTHRU_DATA {
            return Err(NvmeError::Kernel(EINVAL));
        }
        let cmd = if data_len == 0 {
            cmd
        } else {
            fill(&self.bounce)?;
            let mut entries = [0u64; (MAX_PASSTHRU_DATA / 4096) as usize];
            let prps = prp::build([(self.bounce.dma_handle(), data_len)], 4096, &mut entries)
                .map_err(|_| NvmeError::Kernel(EINVAL))?;
            let prp2 = match prps.prp2 {
                Prp2::None => 0,
                Prp2::Page(page) => page,
                Prp2::List(n) => {
                    for (i, e) in entries[..n].iter().enumerate() {
                        self.bounce_list.write(i, e.to_le())?;
                    }
                    self.bounce_list.dma_handle()
                }
            };
            cmd.with_prps(prps.prp1, prp2)
        };
        let cqe = self.submit_sync(bar, cmd)?;
        if data_len != 0 {
            drain(&self.bounce)?;
        }
        Ok(cqe)
    }

    /// Empties both rings for a controller that is being re-enabled.
    pub(crate) fn reset(&mut self) -> Result {
        // A disabled controller forgets the Asynchronous Event Request it held.
        self.aer_outstanding = false;
        self.sq.reset()?;
        self.cq.reset()
    }

    /// Gives the controller an Asynchronous Event Request, unless it holds one already.
    pub(crate) fn arm_async_event(&mut self) -> Result {
        if self.aer_outstanding || self.event.is_some() {
            return Ok(());
        }
        self.sq.push(&Command::async_event().with_cid(AER_CID))?;
        self.sq.ring_doorbell()?;
        self.aer_outstanding = true;
        Ok(())
    }

    /// Takes the completions posted so far (without waiting) and returns the DW0 of an
    /// asynchronous event, if one arrived since the last call.
    pub(crate) fn take_event(&mut self) -> Result<Option<u32>> {
        self.reap(None)?;
        self.cq.ring_doorbell()?;
        Ok(self.event.take())
    }

    /// Takes the completions posted so far, keeping an asynchronous event for
    /// [`Self::take_event`]; stops at and returns the completion of command `cid`, if
    /// given. Other completions belong to earlier, abandoned commands and are dropped.
    fn reap(&mut self, cid: Option<u16>) -> Result<Option<Completion>> {
        while let Some(c) = self.cq.next()? {
            self.sq.set_head(c.sq_head)?;
            if !self.route(&c) && Some(c.cid) == cid {
                return Ok(Some(c));
            }
        }
        Ok(None)
    }

    /// Keeps an Asynchronous Event Request completion for [`Self::take_event`]; returns
    /// whether `c` was one. Anything else is a synchronous command's completion.
    fn route(&mut self, c: &Completion) -> bool {
        if c.cid != AER_CID {
            return false;
        }
        self.aer_outstanding = false;
        // An aborted request (the controller is being disabled) carries no event.
        if c.status().is_success() {
            self.event = Some(c.result);
        }
        true
    }

    /// Bus addresses of the submission and completion rings (for ASQ and ACQ).
    pub(crate) fn dma(&self) -> (u64, u64) {
        (self.sq.dma(), self.cq.dma())
    }

    /// Submits `cmd` and waits for its completion; a completion with an error status
    /// becomes [`NvmeError::Status`], a dead controller [`NvmeError::Dead`].
    pub(crate) fn submit_sync(
        &mut self,
        bar: &Io<REGS_SIZE>,
        cmd: Command,
    ) -> Result<Completion, NvmeError> {
        let cid = self.next_cid;
        self.next_cid = self.next_cid.wrapping_add(1) % AER_CID;
        self.sq.push(&cmd.with_cid(cid))?;
        self.sq.ring_doorbell()?;

        let cqe = read_poll_timeout(
            || {
                if Csts::read(bar).is_all_ones() {
                    return Err(ENODEV);
                }
                self.reap(Some(cid))
            },
            Option::is_some,
            ADMIN_TIMEOUT_MS,
        );
        self.cq.ring_doorbell()?;
        let cqe = match cqe {
            Ok(Some(c)) => c,
            Ok(None) => return Err(NvmeError::Timeout),
            Err(e) if e == etimedout() => return Err(NvmeError::Timeout),
            Err(e) if e == ENODEV => return Err(NvmeError::Dead),
            Err(e) => return Err(NvmeError::Kernel(e)),
        };
        let status = cqe.status();
        if status.is_success() {
            Ok(cqe)
        } else {
            Err(NvmeError::Status(status))
        }
    }
}
