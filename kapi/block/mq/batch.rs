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
