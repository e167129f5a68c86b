// SPDX-License-Identifier: GPL-2.0

//! The module's parameters. 6.12's `module!` macro has no parameters, so they are declared
//! in the C glue (`kapi/glue/helpers.c`), which validates every write; these functions read
//! their current values.

use crate::kapi::bindings::sys;

/// `rnvme.poll_queues`: polled I/O queues per controller (0 to 8), read at probe.
pub(crate) fn poll_queues() -> u32 {
    // SAFETY: reads a module variable with `READ_ONCE`; no preconditions.
    unsafe { sys::rnvme_param_poll_queues() }
}

/// `rnvme.sgls`: whether reads and writes whose data is one DMA segment are described with
/// an SGL descriptor when the controller supports SGLs (1, the default) or always with PRPs
/// (0).
pub(crate) fn sgls() -> bool {
    // SAFETY: reads a module variable with `READ_ONCE`; no preconditions.
    unsafe { sys::rnvme_param_sgls() != 0 }
}

/// `rnvme.vf_queues`: queue resources (admin queue included) per VF; 0 for an even split.
/// Never 1 (a secondary controller needs an I/O queue too).
pub(crate) fn vf_queues() -> u16 {
    // SAFETY: reads a module variable with `READ_ONCE`; no preconditions.
    unsafe { sys::rnvme_param_vf_queues() }
}

/// `rnvme.vf_vectors`: interrupt vectors per VF; 0 for an even split.
pub(crate) fn vf_vectors() -> u16 {
    // SAFETY: as for `vf_queues`.
    unsafe { sys::rnvme_param_vf_vectors() }
}

/// `rnvme.cdq_entries`: entries of the Controller Data Queue the PF keeps for each VF's
/// dirty page tracking, a power of two from 4 to 65536; read when VFs are enabled.
pub(crate) fn cdq_entries() -> u32 {
    // SAFETY: as for `vf_queues`.
    unsafe { sys::rnvme_param_cdq_entries() }
}
