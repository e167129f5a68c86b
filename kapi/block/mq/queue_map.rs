// SPDX-License-Identifier: GPL-2.0

//! The mapping of CPUs to the hardware queues of a tag set.

use kernel::bindings;

use crate::kapi::{bindings::sys, pci};

/// The default CPU-to-hardware-queue map of a tag set, while blk-mq asks the driver to
/// fill it in ([`super::Operations::map_queues`]).
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

    /// Spreads the CPUs evenly over the hardware queues.
    pub(crate) fn spread(&self) {
        // SAFETY: `set` is valid and writable (type invariant); a null device spreads.
        unsafe { sys::rnvme_blk_mq_map_queues(self.set, core::ptr::null_mut(), 0) };
    }

    /// Maps each hardware queue `i` to the CPUs that interrupt vector `first_vector + i`
    /// of `pdev` is affine to, so that completions arrive on the submitting CPUs. Falls
    /// back to [`Self::spread`] when the vectors have no managed affinity.
    pub(crate) fn follow_irqs(&self, pdev: &pci::Device, first_vector: u32) {
        // SAFETY: `set` is valid and writable (type invariant); `pdev` is a valid device.
        unsafe { sys::rnvme_blk_mq_map_queues(self.set, pdev.as_raw(), first_vector) };
    }
}
