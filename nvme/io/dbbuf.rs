// SPDX-License-Identifier: GPL-2.0

//! Shadow doorbells (Doorbell Buffer Config): the host writes doorbell values to memory and
//! writes the MMIO doorbell only when the controller's event index asks for it. For an
//! emulated or virtualised controller this saves most doorbell exits.

use kernel::{prelude::*, sync::Arc};

use crate::{
    kapi::{
        device::{Bound, Device},
        dma::{dma_wmb, mb, CoherentAllocation},
    },
    nvme::spec::command::dbbuf_need_event,
};

/// Dwords of each buffer (one page).
const DWORDS: usize = 1024;

/// The shadow doorbell and event index pages.
pub(crate) struct DbBuf {
    db: CoherentAllocation<u32>,
    ei: CoherentAllocation<u32>,
}

impl DbBuf {
    /// Allocates both pages (zeroed).
    pub(crate) fn new(dev: &Device<Bound>) -> Result<Arc<Self>> {
        Ok(Arc::new(
            Self {
                db: CoherentAllocation::alloc_coherent(dev, DWORDS)?,
                ei: CoherentAllocation::alloc_coherent(dev, DWORDS)?,
            },
            GFP_KERNEL,
        )?)
    }

    /// Bus addresses of the shadow doorbell and event index pages.
    pub(crate) fn dma(&self) -> (u64, u64) {
        (self.db.dma_handle(), self.ei.dma_handle())
    }

    /// Zeroes both pages, as newly created queues start; only while the controller is
    /// disabled.
    pub(crate) fn clear(&self) -> Result {
        for i in 0..DWORDS {
            self.db.write(i, 0)?;
            self.ei.write(i, 0)?;
        }
        Ok(())
    }

    /// Publishes doorbell `index` (in dwords) as `value`; returns whether the MMIO doorbell
    /// must still be written.
    pub(crate) fn update(&self, index: usize, value: u16) -> Result<bool> {
        // Queue entries before the shadow value that announces them.
        dma_wmb();
        let old = self.db.read(index)? as u16;
        self.db.write(index, u32::from(value).to_le())?;
        // The shadow value before reading the event index (full barrier, as in C).
        mb();
        let event = u32::from_le(self.ei.read(index)?) as u16;
        Ok(dbbuf_need_event(event, value, old))
    }
}

/// A doorbell's place in the shadow pages.
#[derive(Clone)]
pub(crate) struct Shadow {
    /// The pages.
    pub(crate) buf: Arc<DbBuf>,
    /// Index in dwords: `2 * qid * (1 << DSTRD)`, plus `1 << DSTRD` for a completion head.
    pub(crate) index: usize,
}
