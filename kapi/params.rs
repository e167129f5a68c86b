// SPDX-License-Identifier: GPL-2.0

//! The module's parameters. 6.12's `module!` macro has no parameters, so they are declared
//! in the C glue (`kapi/glue/helpers.c`), which parses every write with the kernel's
//! `kstrtou16`/`kstrtouint` and asks the `rnvme_param_valid_*` functions below whether the
//! number is valid: the rules are the pure ones of [`crate::nvme::spec::params`]. The other
//! functions read the parameters' current values.

use crate::kapi::bindings::sys;
use crate::nvme::spec::params::Param;

/// Defines `extern "C" fn $name(value: u32) -> bool`, the rule of `$param` for the C glue.
macro_rules! param_rule {
    ($name:ident, $param:expr) => {
        /// Whether the module parameter takes `value` (called by its `set` callback in
        /// `kapi/glue/helpers.c`, after the kernel's parser).
        #[no_mangle]
        extern "C" fn $name(value: u32) -> bool {
            $param.valid(value)
        }
    };
}

param_rule!(rnvme_param_valid_vf_queues, Param::VfQueues);
param_rule!(rnvme_param_valid_vf_vectors, Param::VfVectors);
param_rule!(rnvme_param_valid_cdq_entries, Param::CdqEntries);
param_rule!(rnvme_param_valid_poll_queues, Param::PollQueues);
param_rule!(rnvme_param_valid_sgls, Param::Sgls);

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
