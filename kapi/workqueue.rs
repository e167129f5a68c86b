// SPDX-License-Identifier: GPL-2.0

//! Workqueue helpers that 6.12's `kernel::workqueue` lacks.

use kernel::{bindings, workqueue::Work};

/// Cancels `work` if it is queued and waits for it to finish if it is running
/// (`cancel_work_sync`). Returns whether it was pending.
pub(crate) fn cancel_work_sync<T: ?Sized, const ID: u64>(work: &Work<T, ID>) -> bool {
    // SAFETY: `work` is a valid, initialised work item (a `&Work` can only come from an
    // initialised one).
    unsafe { bindings::cancel_work_sync(Work::raw_get(work)) }
}
