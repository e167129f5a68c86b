// SPDX-License-Identifier: GPL-2.0

//! The mapping of CPUs to the hardware queues of a tag set.

use kernel::bindings;

use crate::kapi::{bindings::sys, pci};

/// A queue map of a tag set (`enum hctx_type`): which hardware queues serve which kind of
/// request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u32)]
pub(crate) enum HctxType {
    /// Every request not served by another map.
    Default = bindings::hctx_type_HCTX_TYPE_DEFAULT,
    /// Reads, when the driver gives them queues of their own.
    Read = bindings::hctx_type_HCTX_TYPE_READ,
    /// Polled requests (`REQ_POLLED`: io_uring with `IORING_SETUP_IOPOLL`, `RWF_HIPRI`):
    /// their queues are polled through [`super::Operations::poll`], without interrupts.
    Poll = bindings::hctx_type_HCTX_TYPE_POLL,
}

/// The CPU-to-hardware-queue maps of a tag set, while blk-mq asks the driver to fill them
/// in ([`super::Operations::map_queues`]).
///
/// # Invariants
///
/// `set` is a valid tag set whose maps blk-mq lets the driver write for the object's life.
pub(crate) struct QueueMap {
    set: *mut bindings::blk_mq_tag_set,
}

impl QueueMap {
    /// # Safety
    ///
    /// `set` must be valid, and its maps writable by the caller, for the object's life.
    pub(super) unsafe fn from_raw(set: *mut bindings::blk_mq_tag_set) -> Self {
        // INVARIANT: guaranteed by the caller.
        Self { set }
    }

    /// How many maps the tag set has (see [`super::TagSet::new`]).
    pub(crate) fn nr_maps(&self) -> u32 {
        // SAFETY: `set` is valid (type invariant).
        unsafe { (*self.set).nr_maps }
    }

    /// How many hardware queues the tag set has, over all its maps.
    pub(crate) fn nr_hw_queues(&self) -> u32 {
        // SAFETY: `set` is valid (type invariant).
        unsafe { (*self.set).nr_hw_queues }
    }

    /// Gives map `ty` the `nr_queues` hardware queues from `offset` on and spreads the CPUs
    /// evenly over them. Fails if the tag set has no such map or too few queues; a map of
    /// zero queues makes blk-mq use the default map instead (not allowed for the default
    /// map itself).
    pub(crate) fn spread(
        &self,
        ty: HctxType,
        nr_queues: u32,
        offset: u32,
    ) -> kernel::error::Result {
        self.map(ty, nr_queues, offset, None)
    }

    /// Like [`Self::spread`], but maps each of the queues, `i`, to the CPUs that interrupt
    /// vector `first_vector + i` of `pdev` is affine to, so that completions arrive on the
    /// submitting CPUs. Falls back to an even spread when the vectors have no managed
    /// affinity.
    pub(crate) fn follow_irqs(
        &self,
        ty: HctxType,
        nr_queues: u32,
        offset: u32,
        pdev: &pci::Device,
        first_vector: u32,
    ) -> kernel::error::Result {
        self.map(ty, nr_queues, offset, Some((pdev, first_vector)))
    }

    fn map(
        &self,
        ty: HctxType,
        nr_queues: u32,
        offset: u32,
        irqs: Option<(&pci::Device, u32)>,
    ) -> kernel::error::Result {
        let nr_hw_queues = self.nr_hw_queues();
        let end = offset
            .checked_add(nr_queues)
            .ok_or(kernel::error::code::EINVAL)?;
        if ty as u32 >= self.nr_maps()
            || end > nr_hw_queues
            || (nr_queues == 0 && ty == HctxType::Default)
        {
            return Err(kernel::error::code::EINVAL);
        }
        let (pdev, first_vector) = match irqs {
            Some((pdev, first)) => (pdev.as_raw(), first),
            None => (core::ptr::null_mut(), 0),
        };
        // SAFETY: `set` is valid and writable (type invariant); `ty` is one of its maps and
        // the queue range lies within its hardware queues (checked above); `pdev` is null
        // or a valid device.
        unsafe {
            sys::rnvme_blk_mq_map_queues(self.set, ty as u32, nr_queues, offset, pdev, first_vector)
        };
        Ok(())
    }
}
