// SPDX-License-Identifier: GPL-2.0

//! DMA mapping of a request's data through a scatterlist.

use kernel::{bindings, prelude::*, types::ARef};

use super::{Operations, Request};
use crate::kapi::{bindings::sys, device::Device};

/// `DMA_TO_DEVICE`.
const DMA_TO_DEVICE: u32 = 1;
/// `DMA_FROM_DEVICE`.
const DMA_FROM_DEVICE: u32 = 2;

/// A mapping made by [`RequestSg::map`].
struct Mapping {
    dev: ARef<Device>,
    nents: i32,
    mapped: usize,
    dir: u32,
}

/// A scatterlist of up to `N` segments for one request, and its DMA mapping.
///
/// Kept in the request's driver data and used under the driver's own exclusion (`&mut`).
///
/// # Invariants
///
/// When `mapping` is `Some`, the first `mapping.nents` entries of `sg` describe the
/// request's data and are mapped for `mapping.dev`, `mapping.mapped` of them as DMA
/// segments.
pub(crate) struct RequestSg<const N: usize> {
    sg: [bindings::scatterlist; N],
    mapping: Option<Mapping>,
}

// SAFETY: the scatterlist is plain data owned by this object; its page pointers refer to
// the request's pages, which the block layer keeps alive while the request is in flight.
unsafe impl<const N: usize> Send for RequestSg<N> {}

impl<const N: usize> RequestSg<N> {
    /// An empty, unmapped scatterlist.
    pub(crate) fn new() -> Self {
        Self {
            // SAFETY: all-zero is a valid (empty) scatterlist entry.
            sg: unsafe { core::mem::zeroed() },
            mapping: None,
        }
    }

    /// Maps the data of `rq` for DMA by `dev`; returns the number of DMA segments. Fails
    /// with `EINVAL` if the request has more than `N` segments or no data, `EBUSY` if a
    /// mapping exists, `ENOMEM` if the DMA mapping fails.
    pub(crate) fn map<T: Operations>(&mut self, dev: &Device, rq: &Request<T>) -> Result<usize> {
        if self.mapping.is_some() {
            return Err(EBUSY);
        }
        let n = u32::try_from(N).map_err(|_| EINVAL)?;
        // SAFETY: the request is valid and owned by the driver; `sg` has room for `N`
        // entries, which the helper checks against the request's segment count.
        let nents = unsafe { sys::rnvme_blk_rq_map_sg(rq.as_raw(), self.sg.as_mut_ptr(), n) };
        if nents <= 0 {
            return Err(EINVAL);
        }
        let dir = if rq.op().is_write() {
            DMA_TO_DEVICE
        } else {
            DMA_FROM_DEVICE
        };
        // SAFETY: the first `nents` entries describe the request's pages; `dev` is valid.
        let mapped = unsafe {
            bindings::dma_map_sg_attrs(dev.as_raw(), self.sg.as_mut_ptr(), nents, dir, 0)
        };
        if mapped == 0 {
            return Err(ENOMEM);
        }
        // INVARIANT: mapped above.
        self.mapping = Some(Mapping {
            dev: dev.into(),
            nents,
            mapped: mapped as usize,
            dir,
        });
        Ok(mapped as usize)
    }

    /// The DMA segments of the current mapping as (bus address, length) pairs.
    pub(crate) fn segments(&self) -> impl Iterator<Item = (u64, u32)> + '_ {
        let mapped = self.mapping.as_ref().map_or(0, |m| m.mapped);
        self.sg[..mapped].iter().map(|sg| {
            let sg = core::ptr::from_ref(sg).cast_mut();
            // SAFETY: `sg` is a mapped entry (type invariant); the helpers only read it.
            unsafe { (sys::rnvme_sg_dma_address(sg), sys::rnvme_sg_dma_len(sg)) }
        })
    }

    /// Unmaps the data, if mapped.
    pub(crate) fn unmap(&mut self) {
        if let Some(m) = self.mapping.take() {
            // SAFETY: the entries were mapped with these arguments (type invariant).
            unsafe {
                bindings::dma_unmap_sg_attrs(
                    m.dev.as_raw(),
                    self.sg.as_mut_ptr(),
                    m.nents,
                    m.dir,
                    0,
                )
            };
        }
    }
}

impl<const N: usize> Drop for RequestSg<N> {
    fn drop(&mut self) {
        self.unmap();
    }
}
