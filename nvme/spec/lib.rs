// SPDX-License-Identifier: GPL-2.0

//! Host build of the rnvme driver's pure logic.
//!
//! The kernel module compiles `mod.rs` of this folder as its `crate::spec` module; this crate
//! root compiles the very same files for `cargo test` on the host, under the same module path,
//! so that most of the driver's logic is tested in milliseconds without a VM.

#![no_std]
#![forbid(unsafe_code)]

#[cfg(test)]
extern crate std;

#[path = "mod.rs"]
pub mod spec;

/// The modes of a function (`vfio-mode/mode.rs`), also compiled by the module.
#[path = "../../vfio-mode/mode.rs"]
pub mod mode;

/// The pure logic of VFIO live migration (`vfio-mode/mig/`), also compiled by the module.
#[path = "../../vfio-mode/mig/mod.rs"]
pub mod mig;
