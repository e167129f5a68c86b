// SPDX-License-Identifier: GPL-2.0

//! Submission and completion queues in coherent DMA memory, with their doorbells.

use kernel::{prelude::*, sync::Arc};

use crate::{
    kapi::{
        device::{Bound, Device},
        dma::{dma_rmb, CoherentAllocation},
        pci::{Bar, BarReg32},
    },
    nvme::{
        io::dbbuf::Shadow,
        spec::{
            command::{Command, SQE_SIZE},
            completion::{Completion, CQE_SIZE},
            ctrl_regs::{doorbell_offset, Doorbell, REGS_SIZE},
            queue::{CqCursor, SqRing},
        },
    },
};

/// Dwords per submission queue entry.
const SQE_DWORDS: usize = SQE_SIZE / 4;
/// Dwords per completion queue entry.
const CQE_DWORDS: usize = CQE_SIZE / 4;

/// Writes `value` to `doorbell`, through `shadow` if the queue has one: then the MMIO
/// write happens only when the controller's event index asks for it.
fn write_doorbell(doorbell: &BarReg32<REGS_SIZE>, shadow: Option<&Shadow>, value: u16) -> Result {
    if let Some(s) = shadow {
        if !s.buf.update(s.index, value)? {
            return Ok(());
        }
    }
    doorbell.write(u32::from(value));
    Ok(())
}

/// The doorbell register `which` of queue `qid` in `bar`, for a doorbell stride of
/// `stride` bytes.
fn doorbell(
    bar: &Arc<Bar<REGS_SIZE>>,
    qid: u16,
    which: Doorbell,
    stride: usize,
) -> Result<BarReg32<REGS_SIZE>> {
    BarReg32::new(bar, doorbell_offset(qid, which, stride).ok_or(EINVAL)?)
}

/// A submission queue: the ring the controller fetches commands from.
pub(crate) struct SubmissionQueue {
    mem: CoherentAllocation<u32>,
    ring: SqRing,
    doorbell: BarReg32<REGS_SIZE>,
    shadow: Option<Shadow>,
}

impl SubmissionQueue {
    /// Allocates submission queue `qid` of `depth` entries, whose doorbell is in `bar`;
    /// `stride` is the controller's doorbell stride in bytes.
    pub(crate) fn new(
        dev: &Device<Bound>,
        bar: &Arc<Bar<REGS_SIZE>>,
        qid: u16,
        depth: u16,
        stride: usize,
    ) -> Result<Self> {
        Ok(Self {
            mem: CoherentAllocation::alloc_coherent(dev, usize::from(depth) * SQE_DWORDS)?,
            ring: SqRing::new(depth).map_err(|_| EINVAL)?,
            doorbell: doorbell(bar, qid, Doorbell::SqTail, stride)?,
            shadow: None,
        })
    }

    /// Bus address of the ring.
    pub(crate) fn dma(&self) -> u64 {
        self.mem.dma_handle()
    }

    /// Copies `cmd` into the next slot; the controller sees it after
    /// [`SubmissionQueue::ring_doorbell`]. `EBUSY` if the ring is full.
    pub(crate) fn push(&mut self, cmd: &Command) -> Result {
        let slot = self.ring.push().map_err(|_| EBUSY)?;
        let at = usize::from(slot) * SQE_DWORDS;
        // Entries are little-endian, as the dwords already are on a little-endian CPU.
        #[cfg(target_endian = "little")]
        let dw = &cmd.dw;
        #[cfg(not(target_endian = "little"))]
        let dw = &cmd.dw.map(u32::to_le);
        // The slot is the controller's only once the doorbell announces it.
        self.mem.copy_from(at, dw)
    }

    /// Tells the controller about every command pushed so far. `writel` orders the doorbell
    /// after the entries' memory writes.
    pub(crate) fn ring_doorbell(&self) -> Result {
        write_doorbell(&self.doorbell, self.shadow.as_ref(), self.ring.tail())
    }

    /// Uses shadow doorbell `shadow` from now on.
    pub(crate) fn set_shadow(&mut self, shadow: Shadow) {
        self.shadow = Some(shadow);
    }

    /// Records how far the controller has consumed the ring (a completion's SQ head).
    pub(crate) fn set_head(&mut self, head: u16) -> Result {
        self.ring.set_head(head).map_err(|_| EIO)
    }

    /// Empties the ring, as a controller reset leaves it; only while the controller is
    /// disabled.
    pub(crate) fn reset(&mut self) -> Result {
        self.ring = SqRing::new(self.ring.depth()).map_err(|_| EINVAL)?;
        Ok(())
    }
}

/// A completion queue: the ring the controller posts completions to.
pub(crate) struct CompletionQueue {
    mem: CoherentAllocation<u32>,
    cursor: CqCursor,
    doorbell: BarReg32<REGS_SIZE>,
    shadow: Option<Shadow>,
}

impl CompletionQueue {
    /// Allocates completion queue `qid` of `depth` entries, whose doorbell is in `bar`.
    pub(crate) fn new(
        dev: &Device<Bound>,
        bar: &Arc<Bar<REGS_SIZE>>,
        qid: u16,
        depth: u16,
        stride: usize,
    ) -> Result<Self> {
        Ok(Self {
            mem: CoherentAllocation::alloc_coherent(dev, usize::from(depth) * CQE_DWORDS)?,
            cursor: CqCursor::new(depth).map_err(|_| EINVAL)?,
            doorbell: doorbell(bar, qid, Doorbell::CqHead, stride)?,
            shadow: None,
        })
    }

    /// Bus address of the ring.
    pub(crate) fn dma(&self) -> u64 {
        self.mem.dma_handle()
    }

    /// Returns and consumes the next new completion, if any.
    pub(crate) fn next(&mut self) -> Result<Option<Completion>> {
        let base = usize::from(self.cursor.head()) * CQE_DWORDS;
        let dw3 = u32::from_le(self.mem.read(base + 3)?);
        if !self.cursor.is_new((dw3 >> 16) & 1 != 0) {
            return Ok(None);
        }
        // The phase tag says the entry is complete; read the rest only after it.
        dma_rmb();
        let mut dw = [0u32; CQE_DWORDS];
        self.mem.read_into(base, &mut dw)?;
        self.cursor.advance();
        Ok(Some(Completion::from_dwords(dw.map(u32::from_le))))
    }

    /// Tells the controller which completions the host has consumed.
    pub(crate) fn ring_doorbell(&self) -> Result {
        write_doorbell(&self.doorbell, self.shadow.as_ref(), self.cursor.head())
    }

    /// Uses shadow doorbell `shadow` from now on.
    pub(crate) fn set_shadow(&mut self, shadow: Shadow) {
        self.shadow = Some(shadow);
    }

    /// Zeroes the ring and restarts at its head with phase 1, as a newly created queue;
    /// only while the controller is disabled.
    pub(crate) fn reset(&mut self) -> Result {
        for i in 0..self.mem.count() {
            self.mem.write(i, 0)?;
        }
        self.cursor = CqCursor::new(self.cursor.depth()).map_err(|_| EINVAL)?;
        Ok(())
    }
}
