// SPDX-License-Identifier: GPL-2.0

//! A spinlock for data never touched in hard interrupt context, taken without a C helper
//! around `_raw_spin_lock`.
//!
//! 6.12's `kernel::sync::SpinLock` takes its lock through `rust_helper_spin_lock`, a C
//! function that calls `_raw_spin_lock`: one call more than C's `spin_lock`, on every
//! submission of every I/O for the submission-ring lock.
//!
//! C header: [`include/linux/spinlock.h`](srctree/include/linux/spinlock.h)

use core::{
    cell::UnsafeCell,
    marker::PhantomPinned,
    ops::{Deref, DerefMut},
};

use kernel::{bindings, init::PinInit, pin_init, prelude::*, types::Opaque};

use crate::kapi::bindings::sys;

/// A spinlock taken with interrupts left as they are (`spin_lock`): for data that no
/// hard interrupt handler uses.
///
/// Every `SpinLock` shares one lockdep class, initialised in the C glue (one other than
/// [`super::IrqSpinLock`]'s).
///
/// # Invariants
///
/// `lock` is an initialised `spinlock_t` that protects `data`.
#[pin_data]
pub(crate) struct SpinLock<T> {
    #[pin]
    lock: Opaque<bindings::spinlock_t>,
    data: UnsafeCell<T>,
    #[pin]
    _pin: PhantomPinned,
}

// SAFETY: the lock hands `T` to one thread at a time.
unsafe impl<T: Send> Send for SpinLock<T> {}
// SAFETY: the lock serialises all access to `T`.
unsafe impl<T: Send> Sync for SpinLock<T> {}

impl<T> SpinLock<T> {
    /// A lock protecting `data`.
    pub(crate) fn new(data: T) -> impl PinInit<Self> {
        pin_init!(Self {
            // SAFETY: `rnvme_plain_spin_lock_init` initialises the lock in place.
            lock <- Opaque::ffi_init(|slot| unsafe { sys::rnvme_plain_spin_lock_init(slot) }),
            data: UnsafeCell::new(data),
            _pin: PhantomPinned,
        })
    }

    /// Takes the lock: `_raw_spin_lock` on the lock's raw spinlock, which is what
    /// `spin_lock` expands to (the glue checks that a `spinlock_t` starts with it and
    /// that `_raw_spin_lock` is out of line).
    pub(crate) fn lock(&self) -> SpinLockGuard<'_, T> {
        // SAFETY: the lock is initialised (type invariant) and starts with its raw lock.
        unsafe { bindings::_raw_spin_lock(self.lock.get().cast()) };
        SpinLockGuard { lock: self }
    }
}

/// Access to the data of a held [`SpinLock`]; unlocks on drop.
pub(crate) struct SpinLockGuard<'a, T> {
    lock: &'a SpinLock<T>,
}

impl<T> Deref for SpinLockGuard<'_, T> {
    type Target = T;

    fn deref(&self) -> &T {
        // SAFETY: the lock is held, so no one else accesses the data.
        unsafe { &*self.lock.data.get() }
    }
}

impl<T> DerefMut for SpinLockGuard<'_, T> {
    fn deref_mut(&mut self) -> &mut T {
        // SAFETY: the lock is held, so no one else accesses the data.
        unsafe { &mut *self.lock.data.get() }
    }
}

impl<T> Drop for SpinLockGuard<'_, T> {
    fn drop(&mut self) {
        // `spin_unlock` is inline in C (unless the kernel debugs or preempts spinlocks),
        // so it is reached through the kernel's helper.
        // SAFETY: the lock is held by this guard.
        unsafe { bindings::spin_unlock(self.lock.lock.get()) };
    }
}

crate::kapi::kunit::kunit_tests!(rnvme_kapi_spinlock, {
    fn spinlock_guards_its_data_and_unlocks_on_drop() {
        let Ok(lock) = KBox::pin_init(SpinLock::new(5u32), GFP_KERNEL) else {
            crate::kapi::kunit::fail(
                kernel::c_str!(file!()),
                line!(),
                format_args!("cannot allocate the lock"),
            );
            return;
        };
        {
            let mut guard = lock.lock();
            *guard += 1;
        }
        // Taken again after the guard dropped: the drop released it (else this spins
        // for good and the suite never reports).
        assert_eq!(*lock.lock(), 6);
    }
});
