// SPDX-License-Identifier: GPL-2.0

//! Small unique instance numbers (an IDA), e.g. for device names; freed for reuse on drop.

use kernel::prelude::*;

use super::bindings::sys;

/// A unique instance number, held until drop.
///
/// # Invariants
///
/// `id` was allocated from the module's IDA and is freed exactly once, on drop.
pub(crate) struct InstanceId(u32);

impl InstanceId {
    /// Allocates the smallest free number.
    pub(crate) fn new() -> Result<Self> {
        // SAFETY: allocating from the module's static IDA has no preconditions.
        let id = unsafe { sys::rnvme_instance_get() };
        // INVARIANT: allocated above.
        u32::try_from(id)
            .map(Self)
            .map_err(|_| Error::from_errno(id))
    }

    /// The number.
    pub(crate) fn get(&self) -> u32 {
        self.0
    }
}

impl Drop for InstanceId {
    fn drop(&mut self) {
        // SAFETY: allocated in `new` and freed only here (type invariant); the value fits
        // in `int` because the IDA returned it as one.
        unsafe { sys::rnvme_instance_put(self.0 as i32) }
    }
}
