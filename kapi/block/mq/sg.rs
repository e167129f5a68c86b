// SPDX-License-Identifier: GPL-2.0

//! DMA mapping of a request's data: a single segment directly, more through a scatterlist.

use kernel::{bindings, prelude::*, types::ARef};

use super::{Operations, Request};
use crate::kapi::{bindings::sys, device::Device};

/// `DMA_TO_DEVICE`.
const DMA_TO_DEVICE: u32 = 1;
/// `DMA_FROM_DEVICE`.
const DMA_FROM_DEVICE: u32 = 2;
/// `DMA_MAPPING_ERROR`: the address a failed mapping returns.
const DMA_MAPPING_ERROR: u64 = u64::MAX;

/// What [`RequestSg::map`] mapped.
enum Mapped {
    /// The request's only segment, mapped directly (the scatterlist is not used).
    Single { addr: u64, len: u32 },
    /// `nents` scatterlist entries, `mapped` DMA segments.
    Sg { nents: i32, mapped: usize },
}

/// A mapping made by [`RequestSg::map`].
struct Mapping {
    mapped: Mapped,
    dir: u32,
}

/// A scatterlist of up to `N` segments for one request, and its DMA mapping for `dev`.
///
/// Kept in the request's driver data and used under the driver's own exclusion (`&mut`).
/// The device reference is taken once, when the request's data is initialised, so that
/// mapping and unmapping a request's data touch no reference count.
///
/// # Invariants
///
/// When `mapping` is `Some`, the request's data is mapped for `dev`: its single segment at
/// `addr` (`Mapped::Single`), or described by the first `nents` entries of `sg`, `mapped`
/// of them DMA segments (`Mapped::Sg`).
pub(crate) struct RequestSg<const N: usize> {
    dev: ARef<Device>,
    sg: [bindings::scatterlist; N],
    mapping: Option<Mapping>,
}

// SAFETY: the scatterlist is plain data owned by this object; its page pointers refer to
// the request's pages, which the block layer keeps alive while the request is in flight.
unsafe impl<const N: usize> Send for RequestSg<N> {}

impl<const N: usize> RequestSg<N> {
    /// An empty, unmapped scatterlist for mappings by `dev`.
    pub(crate) fn new(dev: ARef<Device>) -> Self {
        Self {
            dev,
            // SAFETY: all-zero is a valid (empty) scatterlist entry.
            sg: unsafe { core::mem::zeroed() },
            mapping: None,
        }
    }

    /// Maps the data of `rq` for DMA by the device; returns the number of DMA segments.
    /// Fails with `EINVAL` if the request has more than `N` segments or no data, `EBUSY` if
    /// a mapping exists, `ENOMEM` if the DMA mapping fails.
    ///
    /// Inline: most requests have one segment, which is mapped here without a call but
    /// the DMA API's; more go through [`Self::map_sg`].
    #[inline(always)]
    pub(crate) fn map<T: Operations>(&mut self, rq: &Request<T>) -> Result<usize> {
        if self.mapping.is_some() {
            return Err(EBUSY);
        }
        let dir = if rq.op().is_write() {
            DMA_TO_DEVICE
        } else {
            DMA_FROM_DEVICE
        };
        let Some((page, offset, len)) = rq.single_bvec() else {
            return self.map_sg(rq, dir);
        };
        let dev = self.dev.as_raw();
        // As the C driver maps small I/O (`dma_map_bvec`, `dma_mapping_error`), without a
        // scatterlist and, as both are inline in C, without a call into the glue.
        // SAFETY: `dev` is valid; the page range is the request's data, which the block
        // layer keeps alive until the request ends (and `unmap` runs before that).
        let addr = unsafe {
            bindings::dma_map_page_attrs(dev, page, offset as usize, len as usize, dir, 0)
        };
        // SAFETY: as above; DMA API debugging records that the result was checked.
        #[cfg(CONFIG_DMA_API_DEBUG)]
        unsafe {
            bindings::debug_dma_mapping_error(dev, addr)
        };
        if addr == DMA_MAPPING_ERROR {
            return Err(ENOMEM);
        }
        // INVARIANT: mapped above.
        self.mapping = Some(Mapping {
            mapped: Mapped::Single { addr, len },
            dir,
        });
        Ok(1)
    }

    /// Maps the data of `rq`, which does not have a single segment, through the
    /// scatterlist (direction `dir`); as [`Self::map`] otherwise.
    #[inline(never)]
    fn map_sg<T: Operations>(&mut self, rq: &Request<T>, dir: u32) -> Result<usize> {
        let dev = self.dev.as_raw();
        let n = u32::try_from(N).map_err(|_| EINVAL)?;
        // SAFETY: the request is valid and owned by the driver; `sg` has room for `N`
        // entries, which the helper checks against the request's segment count.
        let nents = unsafe { sys::rnvme_blk_rq_map_sg(rq.as_raw(), self.sg.as_mut_ptr(), n) };
        if nents <= 0 {
            return Err(EINVAL);
        }
        // SAFETY: the first `nents` entries describe the request's pages; `dev` is valid.
        let mapped =
            unsafe { bindings::dma_map_sg_attrs(dev, self.sg.as_mut_ptr(), nents, dir, 0) };
        if mapped == 0 {
            return Err(ENOMEM);
        }
        // INVARIANT: mapped above.
        self.mapping = Some(Mapping {
            mapped: Mapped::Sg {
                nents,
                mapped: mapped as usize,
            },
            dir,
        });
        Ok(mapped as usize)
    }

    /// The DMA segments of the current mapping as (bus address, length) pairs.
    pub(crate) fn segments(&self) -> impl Iterator<Item = (u64, u32)> + '_ {
        let (single, mapped) = match self.mapping.as_ref().map(|m| &m.mapped) {
            Some(Mapped::Single { addr, len }) => (Some((*addr, *len)), 0),
            Some(Mapped::Sg { mapped, .. }) => (None, *mapped),
            None => (None, 0),
        };
        Iterator::chain(
            single.into_iter(),
            self.sg[..mapped].iter().map(|sg| {
                let sg = core::ptr::from_ref(sg).cast_mut();
                // SAFETY: `sg` is a mapped entry (type invariant); the helpers only read it.
                unsafe { (sys::rnvme_sg_dma_address(sg), sys::rnvme_sg_dma_len(sg)) }
            }),
        )
    }

    /// Unmaps the data, if mapped.
    pub(crate) fn unmap(&mut self) {
        let Some(m) = self.mapping.take() else {
            return;
        };
        match m.mapped {
            // SAFETY: mapped with these arguments (type invariant).
            Mapped::Single { addr, len } => unsafe {
                bindings::dma_unmap_page_attrs(self.dev.as_raw(), addr, len as usize, m.dir, 0)
            },
            // SAFETY: the entries were mapped with these arguments (type invariant).
            Mapped::Sg { nents, .. } => unsafe {
                bindings::dma_unmap_sg_attrs(
                    self.dev.as_raw(),
                    self.sg.as_mut_ptr(),
                    nents,
                    m.dir,
                    0,
                )
            },
        }
    }
}

impl<const N: usize> Drop for RequestSg<N> {
    fn drop(&mut self) {
        self.unmap();
    }
}
