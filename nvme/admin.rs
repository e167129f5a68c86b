// SPDX-License-Identifier: GPL-2.0

//! The admin queue: synchronous admin commands, polled for completion.

use kernel::prelude::*;

use crate::{
    kapi::{
        delay::read_poll_timeout,
        device::{Bound, Device},
        error::etimedout,
        io::Io,
    },
    nvme_error::NvmeError,
    queue::{CompletionQueue, SubmissionQueue},
    spec::{
        command::Command,
        completion::Completion,
        regs::{Csts, REGS_SIZE},
    },
};

/// Entries of the admin queue.
pub(crate) const ADMIN_DEPTH: u16 = 32;

/// How long an admin command may take before the driver gives up on it.
pub(crate) const ADMIN_TIMEOUT_MS: u32 = 10_000;

/// The admin submission and completion queues and the next command identifier.
pub(crate) struct AdminQueue {
    sq: SubmissionQueue,
    cq: CompletionQueue,
    next_cid: u16,
}

impl AdminQueue {
    /// Allocates the admin queue memory.
    pub(crate) fn new(dev: &Device<Bound>, stride: usize) -> Result<Self> {
        Ok(Self {
            sq: SubmissionQueue::new(dev, 0, ADMIN_DEPTH, stride)?,
            cq: CompletionQueue::new(dev, 0, ADMIN_DEPTH, stride)?,
            next_cid: 0,
        })
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
        self.next_cid = self.next_cid.wrapping_add(1);
        self.sq.push(&cmd.with_cid(cid))?;
        self.sq.ring_doorbell(bar)?;

        let (sq, cq) = (&mut self.sq, &mut self.cq);
        let cqe = read_poll_timeout(
            || {
                if Csts::read(bar).is_all_ones() {
                    return Err(ENODEV);
                }
                while let Some(c) = cq.next()? {
                    sq.set_head(c.sq_head)?;
                    // Anything else is a completion of an earlier, abandoned command.
                    if c.cid == cid {
                        return Ok(Some(c));
                    }
                }
                Ok(None)
            },
            Option::is_some,
            ADMIN_TIMEOUT_MS,
        );
        self.cq.ring_doorbell(bar)?;
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
