// SPDX-License-Identifier: GPL-2.0

//! A mutex whose holder runs work deferred by contexts that must not wait for it.
//!
//! The VFIO migration drivers (`drivers/vfio/pci/mlx5/main.c`) need this for the PCI
//! `reset_done` callback: it runs under locks that the holders of the migration state
//! mutex take in turn (the mm lock through the VFIO core), so it must not wait for that
//! mutex. It marks the reset pending instead; whoever holds the mutex applies it before
//! releasing it, or the callback itself does when the mutex is free.
//!
//! The locking is in the C glue (`rnvme_dmutex_*` in `kapi/glue/helpers.c`), which also
//! gives every such mutex one lockdep class.

use core::{
    cell::UnsafeCell,
    marker::PhantomPinned,
    ops::{Deref, DerefMut},
};

use kernel::{init::PinInit, pin_init, prelude::*, types::Opaque};

use crate::kapi::bindings::sys;

/// A mutex protecting a `T`, with work that others may defer to its holder: `pending`
/// runs on the data, under the mutex, before the mutex is released.
///
/// # Invariants
///
/// `lock` is an initialised `rnvme_deferring_mutex` that protects `data`.
#[pin_data]
pub(crate) struct DeferringMutex<T> {
    #[pin]
    lock: Opaque<sys::rnvme_deferring_mutex>,
    data: UnsafeCell<T>,
    pending: fn(&mut T),
    #[pin]
    _pin: PhantomPinned,
}

// SAFETY: the mutex hands `T` to one thread at a time.
unsafe impl<T: Send> Send for DeferringMutex<T> {}
// SAFETY: the mutex serialises all access to `T`.
unsafe impl<T: Send> Sync for DeferringMutex<T> {}

impl<T> DeferringMutex<T> {
    /// A mutex protecting `data`, whose deferred work is `pending`.
    pub(crate) fn new(data: T, pending: fn(&mut T)) -> impl PinInit<Self> {
        pin_init!(Self {
            // SAFETY: `rnvme_dmutex_init` initialises the mutex in place.
            lock <- Opaque::ffi_init(|slot| unsafe { sys::rnvme_dmutex_init(slot) }),
            data: UnsafeCell::new(data),
            pending,
            _pin: PhantomPinned,
        })
    }

    /// Takes the mutex, waiting for it. Must not be called from a context that holds
    /// locks a holder may wait for (use [`Self::defer`] there).
    pub(crate) fn lock(&self) -> DeferringMutexGuard<'_, T> {
        // SAFETY: the mutex is initialised (type invariant).
        unsafe { sys::rnvme_dmutex_lock(self.lock.get()) };
        DeferringMutexGuard { lock: self }
    }

    /// Marks the work pending without waiting: the current holder runs it before it
    /// releases the mutex; if the mutex is free, it runs now, in this context.
    pub(crate) fn defer(&self) {
        // SAFETY: the mutex is initialised (type invariant).
        if unsafe { sys::rnvme_dmutex_defer(self.lock.get()) } {
            // This context took the mutex; releasing it runs the work.
            drop(DeferringMutexGuard { lock: self });
        }
    }
}

/// Access to the data of a held [`DeferringMutex`]; runs pending work and releases the
/// mutex on drop.
pub(crate) struct DeferringMutexGuard<'a, T> {
    lock: &'a DeferringMutex<T>,
}

impl<T> Deref for DeferringMutexGuard<'_, T> {
    type Target = T;

    fn deref(&self) -> &T {
        // SAFETY: the mutex is held, so no one else accesses the data.
        unsafe { &*self.lock.data.get() }
    }
}

impl<T> DerefMut for DeferringMutexGuard<'_, T> {
    fn deref_mut(&mut self) -> &mut T {
        // SAFETY: the mutex is held, so no one else accesses the data.
        unsafe { &mut *self.lock.data.get() }
    }
}

impl<T> Drop for DeferringMutexGuard<'_, T> {
    fn drop(&mut self) {
        // SAFETY: the mutex is held by this guard; `rnvme_dmutex_unlock` either releases it
        // or keeps it held and reports pending work, which runs with the mutex still held.
        while !unsafe { sys::rnvme_dmutex_unlock(self.lock.lock.get()) } {
            // SAFETY: the mutex is still held, so no one else accesses the data.
            (self.lock.pending)(unsafe { &mut *self.lock.data.get() });
        }
    }
}
