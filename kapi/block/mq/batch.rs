// SPDX-License-Identifier: GPL-2.0

//! Completion batches: requests that one pass over a completion queue finished
//! successfully, ended together (`blk_mq_end_request_batch`) instead of one by one.

use core::marker::PhantomData;

use kernel::bindings;

use super::{Operations, ReqOp, Request};

/// `RQF_SCHED_TAGS`: the request has an I/O scheduler's tag, which a batch cannot end.
const RQF_SCHED_TAGS: u32 = 1 << bindings::__RQF_SCHED_TAGS;
/// The flags for which ending a request needs the time (`blk_mq_need_time_stamp`).
const RQF_NEED_TIME_STAMP: u32 = (1 << bindings::__RQF_IO_STAT)
    | (1 << bindings::__RQF_STATS)
    | (1 << bindings::__RQF_USE_SCHED);

/// A batch of successfully completed requests of a tag set for `T`; dropping it releases
/// each ([`Operations::complete_batched`]) and ends them all.
///
/// # Invariants
///
/// Every request on `iob`'s list is a completed request of a tag set for `T` that nothing
/// else ends, and `iob.complete` is null or `complete_batch_callback::<T>`.
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
        unsafe { complete_batch_callback::<T>(&mut self.iob) };
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
/// request to it when that callback is null or `complete_batch_callback::<T>`.
pub(crate) struct BatchTarget<'a, T: Operations> {
    pub(super) iob: *mut bindings::io_comp_batch,
    _p: PhantomData<(&'a mut bindings::io_comp_batch, T)>,
}

impl<T: Operations> BatchTarget<'_, T> {
    /// Adds `rq`, a request that completed successfully, to the batch if it can be ended
    /// with the others; returns whether it was added (else the caller completes it). This
    /// is `blk_mq_add_to_batch`, an inline function in C, so a completion costs no call
    /// for it.
    ///
    /// # Safety
    ///
    /// `rq` must be a completed request of a tag set for `T`, owned by the caller, on no
    /// list; once added, only the batch's owner ends it.
    pub(super) unsafe fn add(&mut self, rq: *mut bindings::request) -> bool {
        if self.iob.is_null() {
            return false;
        }
        let callback: unsafe extern "C" fn(*mut bindings::io_comp_batch) =
            complete_batch_callback::<T>;
        // SAFETY: `rq` is valid and the caller's, so are its link and flags; `iob` is a
        // valid batch for the borrow (type invariant). The request joins it only when its
        // callback is ours (or unset, then it becomes ours), as the invariant requires.
        unsafe {
            let flags = (*rq).rq_flags;
            if flags & RQF_SCHED_TAGS != 0 {
                return false;
            }
            let passthrough = ReqOp::from_opf((*rq).cmd_flags).is_passthrough();
            if !passthrough && (*rq).end_io.is_some() {
                return false;
            }
            let iob = &mut *self.iob;
            match iob.complete {
                None => iob.complete = Some(callback),
                Some(other) if other as usize == callback as usize => {}
                Some(_) => return false,
            }
            if !passthrough && flags & RQF_NEED_TIME_STAMP != 0 {
                iob.need_ts = true;
            }
            // `rq_list_add_head`.
            (*rq).__bindgen_anon_1.rq_next = iob.req_list.head;
            iob.req_list.head = rq;
            if iob.req_list.tail.is_null() {
                iob.req_list.tail = rq;
            }
        }
        true
    }

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

/// Ends a batch of completed requests (`io_comp_batch.complete`): releases each
/// ([`Operations::complete_batched`]) and ends them all with success. Called when a
/// [`CompletionBatch`] is dropped, or by the owner of a batch blk-mq handed to
/// [`Operations::poll`].
///
/// # Safety
///
/// Called by `blk_mq_end_request_batch`'s caller with a batch whose requests are all
/// completed requests of a tag set for `T`.
unsafe extern "C" fn complete_batch_callback<T: Operations>(iob: *mut bindings::io_comp_batch) {
    // The batch's list is walked here rather than by a C helper with a callback: one
    // indirect call per request less (`rq_list_for_each` is inline in C).
    // SAFETY: `iob` is valid and its list links completed requests of our tag set.
    let mut rq = unsafe { (*iob).req_list.head };
    while !rq.is_null() {
        // SAFETY: `rq` is on the list, hence a valid completed request, owned by the
        // driver until the batch is ended below; its link is read before it is used.
        let next = unsafe { (*rq).__bindgen_anon_1.rq_next };
        // SAFETY: as above.
        T::complete_batched(unsafe { Request::<T>::from_raw(rq) });
        rq = next;
    }
    // SAFETY: every request was released above; all are ended exactly once.
    unsafe { bindings::blk_mq_end_request_batch(iob) };
}
