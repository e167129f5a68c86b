// SPDX-License-Identifier: GPL-2.0

//! A value used by one context at a time that never waits: a second user at the same time
//! is refused instead of spinning, and interrupts stay enabled.
//!
//! For state that a protocol already hands from one owner to the next (a block request's
//! DMA state goes from `queue_rq` to its completion), where overlap only happens if a
//! device misbehaves: an [`IrqSpinLock`] would cost two interrupt-flag changes per use,
//! and a plain spinlock could deadlock against an interrupt handler on the same CPU.
//!
//! [`IrqSpinLock`]: super::IrqSpinLock

use core::{
    cell::UnsafeCell,
    sync::atomic::{AtomicBool, Ordering},
};

/// A `T` that [`Exclusive::try_with`] lends to one user at a time.
///
/// # Invariants
///
/// `data` is only accessed while `busy` is true, by the one caller that set it.
pub(crate) struct Exclusive<T> {
    busy: AtomicBool,
    data: UnsafeCell<T>,
}

// SAFETY: `try_with` hands `T` to one thread at a time.
unsafe impl<T: Send> Send for Exclusive<T> {}
// SAFETY: `try_with` serialises all access to `T`.
unsafe impl<T: Send> Sync for Exclusive<T> {}

impl<T> Exclusive<T> {
    /// A cell holding `data`.
    pub(crate) const fn new(data: T) -> Self {
        Self {
            busy: AtomicBool::new(false),
            data: UnsafeCell::new(data),
        }
    }

    /// Runs `f` on the value; `None` (and `f` not run) if someone else is using it right
    /// now, including a caller further up this CPU's stack.
    pub(crate) fn try_with<R>(&self, f: impl FnOnce(&mut T) -> R) -> Option<R> {
        if self.busy.swap(true, Ordering::Acquire) {
            return None;
        }
        // SAFETY: `busy` was false and this call set it, so no one else accesses `data`
        // until it is cleared below (type invariant). Kernel Rust panics do not unwind,
        // so `f` cannot leave with the flag set.
        let r = f(unsafe { &mut *self.data.get() });
        self.busy.store(false, Ordering::Release);
        Some(r)
    }

    /// Runs `f` on the value, spinning first while someone else uses it.
    ///
    /// Only where no user of the value can be stopped by this wait: in process context,
    /// with preemption as the caller found it, and only for values whose users never
    /// wait themselves (they all use [`Self::try_with`] but this caller). A user in
    /// interrupt context, for one, cannot hold it across this caller on the same CPU:
    /// it runs to its end before the interrupted waiter spins again.
    pub(crate) fn wait_with<R>(&self, f: impl FnOnce(&mut T) -> R) -> R {
        while self.busy.swap(true, Ordering::Acquire) {
            core::hint::spin_loop();
        }
        // SAFETY: as in `try_with`: this call set `busy`.
        let r = f(unsafe { &mut *self.data.get() });
        self.busy.store(false, Ordering::Release);
        r
    }
}

crate::kapi::kunit::kunit_tests!(rnvme_kapi_sync, {
    fn exclusive_lends_and_takes_back() {
        let cell = Exclusive::new(1u32);
        assert_eq!(
            cell.try_with(|v| {
                *v += 1;
                *v
            }),
            Some(2)
        );
        assert_eq!(cell.try_with(|v| *v), Some(2));
    }

    fn exclusive_refuses_a_second_user() {
        let cell = Exclusive::new(0u32);
        let inner = cell.try_with(|v| {
            *v = 7;
            // The value is lent out: a nested user is refused and its closure never runs.
            cell.try_with(|w| *w = 99)
        });
        assert_eq!(inner, Some(None));
        assert_eq!(cell.try_with(|v| *v), Some(7));
    }

    fn exclusive_wait_with_lends_a_free_value() {
        let cell = Exclusive::new(3u32);
        assert_eq!(
            cell.wait_with(|v| {
                *v *= 2;
                *v
            }),
            6
        );
        // Lent back: both kinds of user get it again.
        assert_eq!(cell.try_with(|v| *v), Some(6));
        assert_eq!(cell.wait_with(|v| *v), 6);
    }
});
