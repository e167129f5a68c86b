// SPDX-License-Identifier: GPL-2.0

//! Workqueue helpers that 6.12's `kernel::workqueue` lacks.

use kernel::{
    bindings,
    sync::Arc,
    workqueue::{HasWork, Work, WorkItem},
};

/// Cancels the work item `ID` embedded in `this` if it is queued, and waits for it to
/// finish if it is running (`cancel_work_sync`). Returns whether it was pending.
///
/// Queueing an `Arc<T>` work item hands one reference to the workqueue, which `run`
/// gives back. A cancelled item never runs, so this function drops that reference
/// itself; calling `cancel_work_sync` on the bare `Work` would leak it (and with it
/// everything `T` owns, such as a mapped BAR).
pub(crate) fn cancel_arc_work_sync<T, const ID: u64>(this: &Arc<T>) -> bool
where
    T: HasWork<T, ID> + WorkItem<ID, Pointer = Arc<T>>,
{
    let ptr: *const T = &**this;
    // SAFETY: `ptr` points to a live `T` (borrowed from `this`), so `raw_get_work` gives
    // its initialised, embedded `Work<T, ID>`.
    let work = unsafe { T::raw_get_work(ptr.cast_mut()) };
    // SAFETY: `work` is a valid, initialised work item (see above).
    let pending = unsafe { bindings::cancel_work_sync(Work::raw_get(work)) };
    if pending {
        // SAFETY: The item was queued as an `Arc<T>`, for which the workqueue's
        // `__enqueue` turned one reference into the raw pointer `Arc::into_raw` gives,
        // which is `ptr`. `cancel_work_sync` returned true, so the item was dequeued
        // and `run` will never take that reference back: it is ours to drop.
        drop(unsafe { Arc::from_raw(ptr) });
    }
    pending
}
