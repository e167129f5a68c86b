// SPDX-License-Identifier: GPL-2.0

//! What only a physical function has: SR-IOV (its VFs' secondary controllers and modes) and
//! the live-migration commands (TP4159) it sends for them.

pub(crate) mod lm;
pub(crate) mod sriov;
