// SPDX-License-Identifier: GPL-2.0

//! An interrupt-safe spinlock (upstream later added `SpinLockIrq`; 6.12 has only
//! `SpinLock`, which must not be taken in interrupt context).
//!
//! C header: [`include/linux/spinlock.h`](srctree/include/linux/spinlock.h)

use core::{
    cell::UnsafeCell,
    marker::PhantomPinned,
    ops::{Deref, DerefMut},
};

use kernel::{bindings, ffi, init::PinInit, pin_init, prelude::*, types::Opaque};

use crate::kapi::bindings::sys;

/// A spinlock taken with local interrupts disabled (`spin_lock_irqsave`), so that it can
/// be used both in process context and in interrupt handlers.
///
/// Every `IrqSpinLock` shares one lockdep class, initialised in the C glue.
///
/// # Invariants
///
/// `lock` is an initialised `spinlock_t` that protects `data`.
#[pin_data]
pub(crate) struct IrqSpinLock<T> {
    #[pin]
    lock: Opaque<bindings::spinlock_t>,
    data: UnsafeCell<T>,
    #[pin]
    _pin: PhantomPinned,
}

// SAFETY: the lock hands `T` to one thread at a time.
unsafe impl<T: Send> Send for IrqSpinLock<T> {}
// SAFETY: the lock serialises all access to `T`.
unsafe impl<T: Send> Sync for IrqSpinLock<T> {}

impl<T> IrqSpinLock<T> {
    /// A lock protecting `data`.
    pub(crate) fn new(data: T) -> impl PinInit<Self> {
        pin_init!(Self {
            // SAFETY: `rnvme_spin_lock_init` initialises the lock in place.
            lock <- Opaque::ffi_init(|slot| unsafe { sys::rnvme_spin_lock_init(slot) }),
            data: UnsafeCell::new(data),
            _pin: PhantomPinned,
        })
    }

    /// The lock's `raw_spinlock_t`: a `spinlock_t` starts with it (the glue checks the
    /// offset at build time), so the out-of-line `_raw_spin_*` functions that
    /// `spin_lock_irqsave` and `spin_unlock_irqrestore` expand to are called directly,
    /// without a C helper around them (the completion path takes this lock for every
    /// interrupt).
    fn raw(&self) -> *mut bindings::raw_spinlock_t {
        self.lock.get().cast()
    }

    /// Disables local interrupts and takes the lock.
    pub(crate) fn lock(&self) -> IrqSpinLockGuard<'_, T> {
        // SAFETY: the lock is initialised (type invariant) and `raw` is its raw lock.
        let flags = unsafe { bindings::_raw_spin_lock_irqsave(self.raw()) };
        IrqSpinLockGuard { lock: self, flags }
    }
}

/// Access to the data of a held [`IrqSpinLock`]; unlocks and restores interrupts on drop.
pub(crate) struct IrqSpinLockGuard<'a, T> {
    lock: &'a IrqSpinLock<T>,
    flags: ffi::c_ulong,
}

impl<T> Deref for IrqSpinLockGuard<'_, T> {
    type Target = T;

    fn deref(&self) -> &T {
        // SAFETY: the lock is held, so no one else accesses the data.
        unsafe { &*self.lock.data.get() }
    }
}

impl<T> DerefMut for IrqSpinLockGuard<'_, T> {
    fn deref_mut(&mut self) -> &mut T {
        // SAFETY: the lock is held, so no one else accesses the data.
        unsafe { &mut *self.lock.data.get() }
    }
}

impl<T> Drop for IrqSpinLockGuard<'_, T> {
    fn drop(&mut self) {
        // SAFETY: the lock is held with these saved flags.
        unsafe { bindings::_raw_spin_unlock_irqrestore(self.lock.raw(), self.flags) };
    }
}
