// SPDX-License-Identifier: GPL-2.0

//! NVMe live migration (TP4159, "PCIe Infrastructure for Live Migration"): what a primary
//! controller offers to migrate its secondary controllers.
//!
//! - [`command`]: Migration Send (Suspend, Resume, Set Controller State) and Migration
//!   Receive (Get Controller State);
//! - [`formats`]: the Supported Controller State Formats list (Identify CNS 0x20);
//! - [`state`]: the controller state those commands move, decoded and checked;
//! - [`track`]: tracking the host memory a secondary controller writes, reported through a
//!   Controller Data Queue (partly provisional).
//!
//! A primary controller advertises the commands with OACS bit 11 (Host Managed Live
//! Migration Support, [`OACS_HMLMS`]).

pub mod command;
pub mod formats;
pub mod state;
pub mod track;

/// OACS bit 11: the controller supports Host Managed Live Migration.
pub const OACS_HMLMS: u16 = 1 << 11;
