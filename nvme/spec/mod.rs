// SPDX-License-Identifier: GPL-2.0

//! The driver's pure logic: definitions from the NVM Express Base Specification and TP4159
//! and the arithmetic on them, the VFIO migration state machine and rnvme's migration
//! stream ([`migration`]), the words of the `mode` attributes ([`mode`]) and the values
//! the numeric module parameters take ([`params`]).
//!
//! Everything below `spec` is `core`-only: no kernel APIs, no allocation, no `unsafe`. The
//! kernel module (as `crate::nvme::spec`) and the host test crate (`rnvme-spec`, as
//! `rnvme_spec::spec`) compile the same files; paths between them are relative.

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
pub mod params;
pub mod passthru;
pub mod prp;
pub mod queue;
pub mod recovery;
pub mod sgl;
pub mod sriov;
pub mod trigger;
pub mod wire;
