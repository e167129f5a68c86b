// SPDX-License-Identifier: GPL-2.0

//! Pure NVMe logic: definitions from the NVM Express Base Specification and the arithmetic on
//! them.
//!
//! Everything below `spec` is `core`-only: no kernel APIs, no allocation, no `unsafe`. The
//! kernel module and the host test crate (`rnvme-spec`) compile the same files.

#[macro_use]
pub mod register;
pub mod cid;
pub mod command;
pub mod completion;
pub mod ctrl_regs;
pub mod event;
pub mod identify;
pub mod limits;
pub mod lm;
pub mod migration;
pub mod mode;
pub mod passthru;
pub mod prp;
pub mod queue;
pub mod recovery;
pub mod sgl;
pub mod sriov;
pub mod trigger;
pub mod wire;
