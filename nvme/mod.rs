// SPDX-License-Identifier: GPL-2.0

//! Block mode: the `rnvme` PCI driver, which runs an NVMe controller's admin and I/O
//! queues and gives each namespace a disk, and the physical function's services for its VFs.
//!
//! From the bottom up (each uses only those above it in this list; the picture is at the
//! top of `Documentation/architecture.rst`):
//!
//! - [`spec`]: the pure logic (also the host crate `rnvme-spec`); [`reg_io`]: its typed
//!   registers over the kernel's MMIO.
//! - [`io`]: the rings, I/O queue pairs, shadow doorbells and the data of each request.
//! - [`admin`], [`ctrl_base`]: a controller's basics: registers, state, admin queue.
//! - [`pf`]: what only a physical function has: SR-IOV, its VFs' modes and drivers, and the
//!   live migration commands (TP4159) it sends for them. Beside it, [`namespace`] and
//!   [`disks`]: the disks of the namespaces.
//! - [`ctrl_core`]: the controller of a function in block mode, shared by probe, I/O and
//!   recovery; [`recovery`] above it: reset, giving up, function reset, PCI error recovery.
//! - [`block_ops`], [`events`], [`user_cmd`], [`chardev`], [`ctrl_attrs`]: the blk-mq
//!   operations, asynchronous events and what users reach (ioctls, sysfs).
//! - [`controller`], [`driver`]: binding a function: probe and teardown, the PCI driver.

#[allow(dead_code, unreachable_pub)]
pub(crate) mod spec;

pub(crate) mod admin;
pub(crate) mod block_ops;
pub(crate) mod chardev;
pub(crate) mod controller;
pub(crate) mod ctrl_attrs;
pub(crate) mod ctrl_base;
pub(crate) mod ctrl_core;
pub(crate) mod disks;
pub(crate) mod driver;
pub(crate) mod events;
pub(crate) mod io;
pub(crate) mod namespace;
pub(crate) mod nvme_error;
pub(crate) mod pf;
pub(crate) mod recovery;
pub(crate) mod reg_io;
pub(crate) mod user_cmd;

#[cfg(CONFIG_KUNIT)]
mod kunit_tests;
