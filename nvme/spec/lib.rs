// SPDX-License-Identifier: GPL-2.0

//! `rnvme-spec`: the rnvme driver's pure logic, as a host crate.
//!
//! Everything in this folder is `core`-only code that follows a specification: the NVM
//! Express Base Specification and TP4159 (the registers, commands, queues and controller
//! state), the VFIO migration state machine and rnvme's own migration stream format
//! ([`spec::migration`]), and the words of the `mode` attributes ([`spec::mode`]).
//!
//! The kernel module compiles `mod.rs` of this folder as its `crate::nvme::spec` module; this
//! crate root compiles the very same files for `cargo test` on the host, so that most of the
//! driver's logic is tested in milliseconds without a VM. Paths inside the folder are
//! relative (`super::`), so the files do not care where they are mounted.

#![no_std]
#![forbid(unsafe_code)]

#[cfg(test)]
extern crate std;

// The crate's module is the folder's `mod.rs`, which the kernel module mounts too.
#[path = "mod.rs"]
pub mod spec;
