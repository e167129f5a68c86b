// SPDX-License-Identifier: GPL-2.0

//! Completion batches: requests that one pass over a completion queue finished
//! successfully, ended together (`blk_mq_end_request_batch`) instead of one by one.

use core::marker::PhantomData;

use kernel::bindings;

use super::{operations::OperationsVTable, Operations};

/// A batch of successfully completed requests of a tag set for `T`; dropping it releases
/// each ([`Operations::complete_batched`]) and ends them all.
///
/// # Invariants
///
/// Every request on `iob`'s list is a completed request of a tag set for `T` that nothing
/// else ends, and `iob.complete` is null or `OperationsVTable::<T>::complete_batch_callback`.
pub(crate) struct CompletionBatch<T: Operations> {
    pub(super) iob: bindings::io_comp_batch,
    _p: PhantomData<T>,
}

impl<T: Operations> CompletionBatch<T> {
    /// An empty batch.
    pub(crate) fn new() -> Self {
        // INVARIANT: empty.
        Self {
            iob: bindings::io_comp_batch::default(),
            _p: PhantomData,
        }
    }

    /// The batch as the target of [`super::TagSet::complete_tag`].
    pub(crate) fn as_target(&mut self) -> BatchTarget<'_, T> {
        // INVARIANT: our own batch, valid for the borrow, with the invariants above.
        BatchTarget {
            iob: &mut self.iob,
            _p: PhantomData,
        }
    }
}

impl<T: Operations> Drop for CompletionBatch<T> {
    fn drop(&mut self) {
        if self.iob.req_list.head.is_null() {
            return;
        }
        // SAFETY: the batch holds completed requests of a tag set for `T` (type
        // invariant); they are released and ended exactly once here.
        unsafe { OperationsVTable::<T>::complete_batch_callback(&mut self.iob) };
    }
}

/// Where [`super::TagSet::complete_tag`] puts successfully completed requests: the
/// driver's own [`CompletionBatch`], or the batch blk-mq hands to
/// [`Operations::poll`] (which its caller ends, e.g. io_uring after a polling pass), or
/// none (each request is then completed on its own).
///
/// # Invariants
///
/// `iob` is null or a valid `io_comp_batch` for the lifetime `'a`, whose owner ends every
/// request on it through its `complete` callback; `blk_mq_add_to_batch` only adds a
/// request to it when that callback is null or `OperationsVTable::<T>`'s.
pub(crate) struct BatchTarget<'a, T: Operations> {
    pub(super) iob: *mut bindings::io_comp_batch,
    _p: PhantomData<(&'a mut bindings::io_comp_batch, T)>,
}

impl<T: Operations> BatchTarget<'_, T> {
    /// # Safety
    ///
    /// `iob` must be null or a batch blk-mq passed to the `poll` callback of a tag set for
    /// `T`, valid for the lifetime `'a`.
    pub(super) unsafe fn from_raw<'a>(iob: *mut bindings::io_comp_batch) -> BatchTarget<'a, T> {
        // INVARIANT: guaranteed by the caller; blk-mq's poll callers end their batch.
        BatchTarget {
            iob,
            _p: PhantomData,
        }
    }
}
