// SPDX-License-Identifier: GPL-2.0

//! Spinlocks that call the kernel's out-of-line `_raw_spin_*` functions directly:
//! [`SpinLock`] (`spin_lock`) and [`IrqSpinLock`] (`spin_lock_irqsave`).
//!
//! 6.12's `kernel::sync::SpinLock` takes its lock through `rust_helper_spin_lock`, a C
//! function that calls `_raw_spin_lock`: one call more than C's `spin_lock`, on every
//! submission of every I/O for the submission-ring lock. 6.12 has no interrupt-safe
//! spinlock at all (upstream later added `SpinLockIrq`): its `SpinLock` must not be taken
//! in interrupt context.
//!
//! C header: [`include/linux/spinlock.h`](srctree/include/linux/spinlock.h)

use core::{
    cell::UnsafeCell,
    marker::{PhantomData, PhantomPinned},
    ops::{Deref, DerefMut},
};

use kernel::{bindings, ffi, init::PinInit, pin_init, prelude::*, types::Opaque};

use crate::kapi::bindings::sys;

/// How a [`Lock`] takes and releases its spinlock.
///
/// # Safety
///
/// `lock` and `unlock` take and release the `spinlock_t` they are given, which `init`
/// initialised, as C's `spin_lock` and `spin_unlock` (or their variants) do.
pub(crate) unsafe trait Backend {
    /// What taking the lock hands to releasing it (the saved interrupt flags).
    type State: Copy;

    /// Initialises `lock` (every lock of a backend shares one lockdep class).
    ///
    /// # Safety
    ///
    /// `lock` is valid for writes and not in use.
    unsafe fn init(lock: *mut bindings::spinlock_t);

    /// Takes `lock`.
    ///
    /// # Safety
    ///
    /// `lock` is initialised.
    unsafe fn lock(lock: *mut bindings::spinlock_t) -> Self::State;

    /// Releases `lock`.
    ///
    /// # Safety
    ///
    /// The caller took `lock` with [`Self::lock`], which returned `state`.
    unsafe fn unlock(lock: *mut bindings::spinlock_t, state: Self::State);
}

/// `spin_lock`: interrupts stay as they are, so the data must not be used by a hard
/// interrupt handler.
pub(crate) struct Plain;

// SAFETY: `_raw_spin_lock` on the raw spinlock a `spinlock_t` starts with is what
// `spin_lock` expands to (the glue checks the layout and that the function is out of
// line); `spin_unlock` is inline in C (unless the kernel debugs or preempts spinlocks), so
// it is reached through the kernel's helper.
unsafe impl Backend for Plain {
    type State = ();

    unsafe fn init(lock: *mut bindings::spinlock_t) {
        // SAFETY: the caller's guarantee.
        unsafe { sys::rnvme_plain_spin_lock_init(lock) }
    }

    unsafe fn lock(lock: *mut bindings::spinlock_t) {
        // SAFETY: the lock is initialised (the caller's guarantee).
        unsafe { bindings::_raw_spin_lock(lock.cast()) }
    }

    unsafe fn unlock(lock: *mut bindings::spinlock_t, (): ()) {
        // SAFETY: the caller holds the lock.
        unsafe { bindings::spin_unlock(lock) }
    }
}

/// `spin_lock_irqsave`: local interrupts are disabled while the lock is held, so the data
/// can be used both in process context and in interrupt handlers.
pub(crate) struct IrqSave;

// SAFETY: `_raw_spin_lock_irqsave` and `_raw_spin_unlock_irqrestore` on the raw spinlock
// a `spinlock_t` starts with are what `spin_lock_irqsave` and `spin_unlock_irqrestore`
// expand to (the glue checks the layout and that they are out of line).
unsafe impl Backend for IrqSave {
    type State = ffi::c_ulong;

    unsafe fn init(lock: *mut bindings::spinlock_t) {
        // SAFETY: the caller's guarantee.
        unsafe { sys::rnvme_spin_lock_init(lock) }
    }

    unsafe fn lock(lock: *mut bindings::spinlock_t) -> ffi::c_ulong {
        // SAFETY: the lock is initialised (the caller's guarantee).
        unsafe { bindings::_raw_spin_lock_irqsave(lock.cast()) }
    }

    unsafe fn unlock(lock: *mut bindings::spinlock_t, flags: ffi::c_ulong) {
        // SAFETY: the caller holds the lock, taken with these flags saved.
        unsafe { bindings::_raw_spin_unlock_irqrestore(lock.cast(), flags) }
    }
}

/// A spinlock protecting a `T`, taken as backend `B` says.
///
/// # Invariants
///
/// `lock` is a `spinlock_t` that `B::init` initialised and that protects `data`.
#[pin_data]
pub(crate) struct Lock<T, B: Backend> {
    #[pin]
    lock: Opaque<bindings::spinlock_t>,
    data: UnsafeCell<T>,
    #[pin]
    _pin: PhantomPinned,
    _backend: PhantomData<B>,
}

/// A spinlock taken with interrupts left as they are (`spin_lock`): for data that no hard
/// interrupt handler uses.
pub(crate) type SpinLock<T> = Lock<T, Plain>;

/// A spinlock taken with local interrupts disabled (`spin_lock_irqsave`), for data used
/// both in process context and in interrupt handlers.
pub(crate) type IrqSpinLock<T> = Lock<T, IrqSave>;

// SAFETY: the lock hands `T` to one thread at a time.
unsafe impl<T: Send, B: Backend> Send for Lock<T, B> {}
// SAFETY: the lock serialises all access to `T`.
unsafe impl<T: Send, B: Backend> Sync for Lock<T, B> {}

impl<T, B: Backend> Lock<T, B> {
    /// A lock protecting `data`.
    pub(crate) fn new(data: T) -> impl PinInit<Self> {
        pin_init!(Self {
            // SAFETY: `B::init` initialises the lock in place, which is not in use yet.
            lock <- Opaque::ffi_init(|slot| unsafe { B::init(slot) }),
            data: UnsafeCell::new(data),
            _pin: PhantomPinned,
            _backend: PhantomData,
        })
    }

    /// Takes the lock.
    pub(crate) fn lock(&self) -> LockGuard<'_, T, B> {
        // SAFETY: `B::init` initialised the lock (type invariant).
        let state = unsafe { B::lock(self.lock.get()) };
        LockGuard { lock: self, state }
    }
}

/// Access to the data of a held [`Lock`]; releases it on drop.
pub(crate) struct LockGuard<'a, T, B: Backend> {
    lock: &'a Lock<T, B>,
    state: B::State,
}

impl<T, B: Backend> Deref for LockGuard<'_, T, B> {
    type Target = T;

    fn deref(&self) -> &T {
        // SAFETY: the lock is held, so no one else accesses the data.
        unsafe { &*self.lock.data.get() }
    }
}

impl<T, B: Backend> DerefMut for LockGuard<'_, T, B> {
    fn deref_mut(&mut self) -> &mut T {
        // SAFETY: the lock is held, so no one else accesses the data.
        unsafe { &mut *self.lock.data.get() }
    }
}

impl<T, B: Backend> Drop for LockGuard<'_, T, B> {
    fn drop(&mut self) {
        // SAFETY: this guard holds the lock, taken with `state`.
        unsafe { B::unlock(self.lock.lock.get(), self.state) };
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

    fn irq_spinlock_disables_interrupts_while_held() {
        let Ok(lock) = KBox::pin_init(IrqSpinLock::new(1u32), GFP_KERNEL) else {
            crate::kapi::kunit::fail(
                kernel::c_str!(file!()),
                line!(),
                format_args!("cannot allocate the lock"),
            );
            return;
        };
        // SAFETY: `rnvme_irqs_disabled` only reads this CPU's interrupt state.
        let before = unsafe { sys::rnvme_irqs_disabled() };
        {
            let mut guard = lock.lock();
            // SAFETY: as above.
            assert!(unsafe { sys::rnvme_irqs_disabled() });
            *guard += 1;
        }
        // SAFETY: as above.
        assert_eq!(unsafe { sys::rnvme_irqs_disabled() }, before);
        assert_eq!(*lock.lock(), 2);
    }
});
