// SPDX-License-Identifier: GPL-2.0

//! CPU topology facts.

use kernel::bindings;

/// The number of possible CPU IDs (`nr_cpu_ids`): every CPU number is below it.
pub(crate) fn nr_cpu_ids() -> u32 {
    // SAFETY: `nr_cpu_ids` is set during early boot and only read afterwards.
    unsafe { bindings::nr_cpu_ids }
}
