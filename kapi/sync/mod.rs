// SPDX-License-Identifier: GPL-2.0

//! Locks 6.12's `kernel::sync` lacks.
//!
//! - [`IrqSpinLock`]: a spinlock taken with interrupts disabled (upstream later added
//!   `SpinLockIrq`).
//! - [`DeferringMutex`]: a mutex whose holder runs work that a context unable to wait for
//!   it deferred (the reset-deferral scheme of the VFIO migration drivers).

mod deferring_mutex;
mod irq_spinlock;

pub(crate) use deferring_mutex::DeferringMutex;
pub(crate) use irq_spinlock::IrqSpinLock;
