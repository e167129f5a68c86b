// SPDX-License-Identifier: GPL-2.0

//! Locks 6.12's `kernel::sync` lacks.
//!
//! - [`IrqSpinLock`]: a spinlock taken with interrupts disabled (upstream later added
//!   `SpinLockIrq`), and [`SpinLock`], one taken without the C helper 6.12's `SpinLock`
//!   calls: both call the kernel's `_raw_spin_*` functions directly.
//! - [`Exclusive`]: a value lent to one user at a time that refuses, rather than waits for,
//!   a second one (no interrupt-flag changes).
//! - [`DeferringMutex`]: a mutex whose holder runs work that a context unable to wait for
//!   it deferred (the reset-deferral scheme of the VFIO migration drivers).

mod deferring_mutex;
mod exclusive;
mod spinlock;

pub(crate) use deferring_mutex::DeferringMutex;
pub(crate) use exclusive::Exclusive;
pub(crate) use spinlock::{IrqSpinLock, SpinLock};
