// SPDX-License-Identifier: GPL-2.0

//! The scenario tests, in the order they run.

mod block;
mod chardev;
pub(crate) mod concurrency;
mod ctrl_attrs;
mod debug;
mod dirty_tracking;
mod hardening;
mod hardening_cancel;
mod hardening_corpus;
mod hardening_datafd;
mod hardening_ioctls;
mod hardening_params;
mod hardening_removal;
mod hardening_reset;
mod hardening_sysfs;
mod identify;
pub mod kunit;
mod lifecycle;
mod lm_device;
pub(crate) mod migration;
pub(crate) mod migration_qemu;
mod namespaces;
mod nvme_class;
mod passthru;
mod poll;
mod recovery;
mod recovery_aer;
mod recovery_reset;
mod smoke;
mod sriov;
pub(crate) mod vfio;
pub(crate) mod vfio_qemu;

use crate::harness::Test;

/// Every test, in run order. Each test leaves the rnvme module unloaded.
pub fn all() -> Vec<Test> {
    let mut v = Vec::new();
    v.extend(smoke::tests());
    v.extend(identify::tests());
    v.extend(kunit::tests());
    v.extend(chardev::tests());
    v.extend(block::tests());
    v.extend(poll::tests());
    v.extend(namespaces::tests());
    v.extend(nvme_class::tests());
    v.extend(passthru::tests());
    v.extend(sriov::tests());
    v.extend(vfio::tests());
    v.extend(vfio_qemu::tests());
    v.extend(lm_device::tests());
    v.extend(migration::tests());
    v.extend(dirty_tracking::tests());
    v.extend(migration_qemu::tests());
    v.extend(recovery::tests());
    v.extend(recovery_reset::tests());
    v.extend(recovery_aer::tests());
    v.extend(ctrl_attrs::tests());
    v.extend(lifecycle::tests());
    // In a boot of their own (`cargo xtask test`): many VFs.
    v.extend(concurrency::tests());
    // Before the leak scan, so that it covers the campaigns too.
    v.extend(hardening::tests());
    // Last: the leak scan covers everything the other tests did.
    v.extend(debug::tests());
    // After the leak scan: leaves rnvme bound for the reboot's shutdown check.
    v.extend(lifecycle::shutdown_tests());
    v
}
