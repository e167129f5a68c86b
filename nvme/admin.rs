// SPDX-License-Identifier: GPL-2.0

//! The admin queue: synchronous admin commands, polled for completion.

use kernel::prelude::*;

use crate::{
    kapi::{delay::read_poll_timeout, device::Bound, error::etimedout, io::Io},
    nvme_error::NvmeError,
    queue::QueuePair,
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

/// The admin queue pair and the next command identifier.
pub(crate) struct AdminQueue {
    qp: QueuePair,
    next_cid: u16,
}

impl AdminQueue {
    /// Allocates the admin queue memory.
    pub(crate) fn new(dev: &crate::kapi::device::Device<Bound>, stride: usize) -> Result<Self> {
        Ok(Self {
            qp: QueuePair::new(dev, 0, ADMIN_DEPTH, stride)?,
            next_cid: 0,
        })
    }

    /// The queue pair (for programming AQA/ASQ/ACQ).
    pub(crate) fn queue(&self) -> &QueuePair {
        &self.qp
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
        self.qp.submit(bar, &cmd.with_cid(cid))?;

        let qp = &mut self.qp;
        let cqe = read_poll_timeout(
            || {
                if Csts::read(bar).is_all_ones() {
                    return Err(ENODEV);
                }
                loop {
                    match qp.next_completion()? {
                        // A completion for an earlier, abandoned command: skip it.
                        Some(c) if c.cid != cid => continue,
                        other => return Ok(other),
                    }
                }
            },
            Option::is_some,
            ADMIN_TIMEOUT_MS,
        );
        self.qp.ring_cq_doorbell(bar)?;
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
