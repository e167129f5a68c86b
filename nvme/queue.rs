// SPDX-License-Identifier: GPL-2.0

//! A submission/completion queue pair in coherent DMA memory, with its doorbells.

use kernel::prelude::*;

use crate::{
    kapi::{
        device::Bound,
        dma::{dma_rmb, CoherentAllocation},
        io::Io,
    },
    spec::{
        command::{Command, SQE_SIZE},
        completion::{Completion, CQE_SIZE},
        queue::{CqCursor, SqRing},
        regs::{doorbell_offset, Doorbell, REGS_SIZE},
    },
};

/// Dwords per submission queue entry.
const SQE_DWORDS: usize = SQE_SIZE / 4;
/// Dwords per completion queue entry.
const CQE_DWORDS: usize = CQE_SIZE / 4;

/// A queue pair: `depth` submission and `depth` completion entries, and the byte offsets of
/// their doorbells in BAR0.
pub(crate) struct QueuePair {
    sq: CoherentAllocation<u32>,
    cq: CoherentAllocation<u32>,
    ring: SqRing,
    cursor: CqCursor,
    sq_doorbell: usize,
    cq_doorbell: usize,
}

impl QueuePair {
    /// Allocates the queue memory for queue `qid` of `depth` entries; `stride` is the
    /// controller's doorbell stride in bytes.
    pub(crate) fn new(
        dev: &crate::kapi::device::Device<Bound>,
        qid: u16,
        depth: u16,
        stride: usize,
    ) -> Result<Self> {
        let ring = SqRing::new(depth).map_err(|_| EINVAL)?;
        let cursor = CqCursor::new(depth).map_err(|_| EINVAL)?;
        let entries = usize::from(depth);
        Ok(Self {
            sq: CoherentAllocation::alloc_coherent(dev, entries * SQE_DWORDS)?,
            cq: CoherentAllocation::alloc_coherent(dev, entries * CQE_DWORDS)?,
            ring,
            cursor,
            sq_doorbell: doorbell_offset(qid, Doorbell::SqTail, stride).ok_or(EINVAL)?,
            cq_doorbell: doorbell_offset(qid, Doorbell::CqHead, stride).ok_or(EINVAL)?,
        })
    }

    /// Bus address of the submission ring.
    pub(crate) fn sq_dma(&self) -> u64 {
        self.sq.dma_handle()
    }

    /// Bus address of the completion ring.
    pub(crate) fn cq_dma(&self) -> u64 {
        self.cq.dma_handle()
    }

    /// Copies `cmd` into the next submission slot and rings the tail doorbell.
    pub(crate) fn submit(&mut self, bar: &Io<REGS_SIZE>, cmd: &Command) -> Result {
        let slot = self.ring.push().map_err(|_| EBUSY)?;
        let base = usize::from(slot) * SQE_DWORDS;
        for (i, dw) in cmd.dw.iter().enumerate() {
            self.sq.write(base + i, dw.to_le())?;
        }
        // `writel` orders the doorbell after the entry's memory writes.
        bar.try_write32(u32::from(self.ring.tail()), self.sq_doorbell)
    }

    /// Returns the next new completion, if any, consuming it (the completion head doorbell
    /// is rung by [`QueuePair::ring_cq_doorbell`]).
    pub(crate) fn next_completion(&mut self) -> Result<Option<Completion>> {
        let base = usize::from(self.cursor.head()) * CQE_DWORDS;
        let dw3 = u32::from_le(self.cq.read(base + 3)?);
        if !self.cursor.is_new((dw3 >> 16) & 1 != 0) {
            return Ok(None);
        }
        // The phase tag says the entry is complete; read the rest only after it.
        dma_rmb();
        let mut bytes = [0u8; CQE_SIZE];
        for i in 0..CQE_DWORDS {
            let dw = u32::from_le(self.cq.read(base + i)?);
            bytes[4 * i..4 * i + 4].copy_from_slice(&dw.to_le_bytes());
        }
        let cqe = Completion::from_bytes(&bytes);
        self.cursor.advance();
        self.ring.set_head(cqe.sq_head).map_err(|_| EIO)?;
        Ok(Some(cqe))
    }

    /// Tells the controller which completions the host has consumed.
    pub(crate) fn ring_cq_doorbell(&self, bar: &Io<REGS_SIZE>) -> Result {
        bar.try_write32(u32::from(self.cursor.head()), self.cq_doorbell)
    }
}
