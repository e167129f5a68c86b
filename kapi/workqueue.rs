// SPDX-License-Identifier: GPL-2.0

//! Workqueue helpers that 6.12's `kernel::workqueue` lacks: cancelling an `Arc` work item
//! ([`cancel_arc_work_sync`]) and delayed work ([`DelayedWork`]).
//!
//! C header: [`include/linux/workqueue.h`](srctree/include/linux/workqueue.h)

use core::{
    marker::PhantomData,
    ptr,
    sync::atomic::{AtomicU32, Ordering},
};

use kernel::{
    bindings, c_str,
    prelude::*,
    str::CStr,
    sync::{Arc, LockClassKey},
    types::Opaque,
    workqueue::{HasWork, Work, WorkItem, WorkItemPointer},
};

pub(crate) use kernel::time::{msecs_to_jiffies, Jiffies};

use super::delay::msleep;

/// Cancels the work item `ID` embedded in `this` if it is queued, and waits for it to
/// finish if it is running (`cancel_work_sync`). Returns whether it was pending.
///
/// Queueing an `Arc<T>` work item hands one reference to the workqueue, which `run`
/// gives back. A cancelled item never runs, so this function drops that reference
/// itself; calling `cancel_work_sync` on the bare `Work` would leak it (and with it
/// everything `T` owns, such as a mapped BAR).
pub(crate) fn cancel_arc_work_sync<T, const ID: u64>(this: &Arc<T>) -> bool
where
    T: HasWork<T, ID> + WorkItem<ID, Pointer = Arc<T>>,
{
    let ptr: *const T = &**this;
    // SAFETY: `ptr` points to a live `T` (borrowed from `this`), so `raw_get_work` gives
    // its initialised, embedded `Work<T, ID>`.
    let work = unsafe { T::raw_get_work(ptr.cast_mut()) };
    // SAFETY: `work` is a valid, initialised work item (see above).
    let pending = unsafe { bindings::cancel_work_sync(Work::raw_get(work)) };
    if pending {
        // SAFETY: The item was queued as an `Arc<T>`, for which the workqueue's
        // `__enqueue` turned one reference into the raw pointer `Arc::into_raw` gives,
        // which is `ptr`. `cancel_work_sync` returned true, so the item was dequeued
        // and `run` will never take that reference back: it is ours to drop.
        drop(unsafe { Arc::from_raw(ptr) });
    }
    pending
}

/// Creates a [`DelayedWork`] initialiser named `name` (by default the file and line) with
/// a lock class of its own, as [`kernel::workqueue::new_work!`] does for a `Work`.
macro_rules! new_delayed_work {
    ($($name:literal)?) => {
        $crate::kapi::workqueue::DelayedWork::new(
            ::kernel::optional_name!($($name)?),
            ::kernel::static_lock_class!(),
        )
    };
}
pub(crate) use new_delayed_work;

/// A work item that a workqueue runs once a delay has passed (`struct delayed_work`), for
/// a `T` shared through an [`Arc`]: the shape of upstream's later
/// `kernel::workqueue::DelayedWork` for 6.12, with the queueing and cancelling that `T`'s
/// driver needs.
///
/// `T` embeds it in a `#[pin_data]` field initialised with [`new_delayed_work!`], declares
/// the field with [`impl_has_delayed_work!`] and implements [`WorkItem`] with
/// `Pointer = Arc<T>`, whose `run` is what runs. [`DelayedWork::queue`] hands the workqueue
/// one reference to `T` for the run; [`DelayedWork::cancel_sync`] takes it back.
///
/// ```ignore
/// #[pin_data]
/// struct Poller {
///     #[pin]
///     poll: DelayedWork<Poller>,
/// }
///
/// impl_has_delayed_work! {
///     impl HasDelayedWork<Self> for Poller { self.poll }
/// }
///
/// impl WorkItem for Poller {
///     type Pointer = Arc<Poller>;
///
///     fn run(this: Arc<Poller>) {
///         // ... and again in 10 ms.
///         DelayedWork::queue(this, msecs_to_jiffies(10));
///     }
/// }
///
/// let poller = Arc::pin_init(pin_init!(Poller { poll <- new_delayed_work!("Poller::poll") }),
///                            GFP_KERNEL)?;
/// DelayedWork::queue(poller.clone(), msecs_to_jiffies(10));
/// // ...
/// DelayedWork::cancel_sync(&poller);
/// ```
///
/// # Invariants
///
/// `dwork` was initialised by [`DelayedWork::new`]: its work function is the `run` of
/// `T`'s [`WorkItem::Pointer`], its timer function `delayed_work_timer_fn`.
#[pin_data]
#[repr(transparent)]
pub(crate) struct DelayedWork<T: ?Sized, const ID: u64 = 0> {
    #[pin]
    dwork: Opaque<bindings::delayed_work>,
    _inner: PhantomData<T>,
}

// SAFETY: a delayed work item is usable from any thread; it holds no `T`, so `T` needs no
// bound (as for `Work`).
unsafe impl<T: ?Sized, const ID: u64> Send for DelayedWork<T, ID> {}
// SAFETY: as for `Send`: the C functions that use it synchronise themselves.
unsafe impl<T: ?Sized, const ID: u64> Sync for DelayedWork<T, ID> {}

// The `work_struct` of a `delayed_work` is its first field: a pointer to a `DelayedWork` is
// one to the `Work` inside it (`raw_as_work`), which is how `WorkItemPointer::run` finds
// `T` again.
const _: () = assert!(core::mem::offset_of!(bindings::delayed_work, work) == 0);

// 6.12's `LockClassKey` is a struct whose only field is an `Opaque<lock_class_key>`, but
// neither `repr(transparent)` nor with a public `as_ptr`. Equal sizes leave that field no
// other offset than 0 (`lock_class_ptr`).
const _: () = assert!(
    core::mem::size_of::<LockClassKey>() == core::mem::size_of::<bindings::lock_class_key>()
);

/// The C pointer of a lock class key.
fn lock_class_ptr(key: &'static LockClassKey) -> *mut bindings::lock_class_key {
    // The key is the struct's only field, at offset 0 (checked above). Lockdep writes it
    // through this pointer: it lies inside the `Opaque`, an `UnsafeCell`.
    ptr::from_ref(key)
        .cast::<bindings::lock_class_key>()
        .cast_mut()
}

impl<T: ?Sized, const ID: u64> DelayedWork<T, ID> {
    /// A delayed work item running `T`'s [`WorkItem::run`], its work named `name` in lock
    /// class `key` for lockdep (as `Work::new`). The timers of all delayed work items share
    /// one lock class, as those of a C `INIT_DELAYED_WORK` site do: they all run
    /// `delayed_work_timer_fn`.
    pub(crate) fn new(name: &'static CStr, key: &'static LockClassKey) -> impl PinInit<Self>
    where
        T: WorkItem<ID>,
    {
        let work_key = lock_class_ptr(key);
        let timer_key = lock_class_ptr(kernel::static_lock_class!());
        // INVARIANT: the work and the timer are initialised with those functions.
        pin_init!(Self {
            dwork <- Opaque::ffi_init(move |slot: *mut bindings::delayed_work| {
                // SAFETY: `slot` is valid for writes (`ffi_init`); the work and the timer are
                // initialised as `INIT_DELAYED_WORK` does, the work function being the `run`
                // that the `WorkItemPointer` implementation promises is one; names and keys
                // are static.
                unsafe {
                    bindings::init_work_with_key(
                        ptr::addr_of_mut!((*slot).work),
                        Some(T::Pointer::run),
                        false,
                        name.as_char_ptr(),
                        work_key,
                    );
                    bindings::init_timer_key(
                        ptr::addr_of_mut!((*slot).timer),
                        Some(bindings::delayed_work_timer_fn),
                        bindings::TIMER_IRQSAFE,
                        c_str!("DelayedWork::timer").as_char_ptr(),
                        timer_key,
                    );
                }
            }),
            _inner: PhantomData,
        })
    }

    /// A pointer to the `delayed_work`.
    ///
    /// # Safety
    ///
    /// `ptr` is aligned and not dangling (the memory need not be initialised).
    #[inline]
    pub(crate) unsafe fn raw_get(ptr: *const Self) -> *mut bindings::delayed_work {
        // SAFETY: `ptr` is aligned and not dangling (caller).
        unsafe { Opaque::raw_get(ptr::addr_of!((*ptr).dwork)) }
    }

    /// The [`Work`] inside the delayed work item `ptr` points to: the same address, as the
    /// `work_struct` is the first field of a `delayed_work` and both wrappers are
    /// transparent.
    #[inline]
    pub(crate) fn raw_as_work(ptr: *mut Self) -> *mut Work<T, ID> {
        ptr.cast()
    }
}

impl<T, const ID: u64> DelayedWork<T, ID>
where
    T: HasDelayedWork<T, ID> + WorkItem<ID, Pointer = Arc<T>> + Send + Sync + 'static,
{
    /// Queues `this`'s delayed work item on the system workqueue (`system_wq`) to run
    /// after `delay` jiffies (0: now; see [`msecs_to_jiffies`]). Returns whether it was
    /// queued: `false` if it is pending already (its timer running or it waiting to run),
    /// and then `this` is dropped here, as the pending run holds a reference of its own.
    pub(crate) fn queue(this: Arc<T>, delay: Jiffies) -> bool {
        let ptr = Arc::into_raw(this).cast_mut();
        // SAFETY: `ptr` points to a live `T`: the reference just given up keeps it alive.
        let dwork = unsafe { T::raw_get_delayed_work(ptr) };
        // SAFETY: `dwork` is an initialised delayed work item (type invariant) in `*ptr`,
        // and `system_wq` is always valid. Once queued, the item stays valid until it runs
        // or is cancelled: the reference given up above keeps `T` alive until then,
        // `run` (`WorkItemPointer` for `Arc<T>`) or `cancel_sync` takes it back.
        let queued = unsafe {
            bindings::queue_delayed_work_on(
                bindings::wq_misc_consts_WORK_CPU_UNBOUND as _,
                bindings::system_wq,
                Self::raw_get(dwork),
                delay,
            )
        };
        if !queued {
            // SAFETY: the item was pending already, so the workqueue took nothing: the
            // reference from `Arc::into_raw` above is ours again.
            drop(unsafe { Arc::from_raw(ptr) });
        }
        queued
    }

    /// Cancels `this`'s delayed work item if it is pending and waits for it to finish if
    /// it is running (`cancel_delayed_work_sync`). Returns whether it was pending.
    ///
    /// A cancelled item never runs, so this drops the reference to `T` its queueing handed
    /// over (as [`cancel_arc_work_sync`] does for a [`Work`]). The item may be queued again
    /// afterwards; to keep a running item from re-queueing itself, the caller stops it
    /// first (a flag it checks).
    pub(crate) fn cancel_sync(this: &Arc<T>) -> bool {
        let ptr: *const T = &**this;
        // SAFETY: `ptr` points to a live `T` (borrowed from `this`).
        let dwork = unsafe { T::raw_get_delayed_work(ptr.cast_mut()) };
        // SAFETY: `dwork` is an initialised delayed work item (type invariant).
        let pending = unsafe { bindings::cancel_delayed_work_sync(Self::raw_get(dwork)) };
        if pending {
            // SAFETY: a pending item was queued as an `Arc<T>` (by `queue`, or by
            // `Queue::enqueue` through its `Work`), which gave up the reference whose
            // `Arc::into_raw` pointer is `ptr`; dequeued, it never runs to take it back.
            drop(unsafe { Arc::from_raw(ptr) });
        }
        pending
    }
}

/// Declares that a type has a [`DelayedWork<T, ID>`] field. Implemented with
/// [`impl_has_delayed_work!`], which also implements [`HasWork<T, ID>`] for the
/// `work_struct` inside it, so that `Arc<T>`'s [`WorkItemPointer`] runs it (as upstream's
/// `HasDelayedWork` does).
///
/// # Safety
///
/// [`HasDelayedWork::raw_get_delayed_work`] returns a pointer to a field of type
/// [`DelayedWork<T, ID>`] of `*ptr`, and `Self`'s [`HasWork<T, ID>`] designates the work
/// inside that same field.
pub(crate) unsafe trait HasDelayedWork<T, const ID: u64 = 0>: HasWork<T, ID> {
    /// A pointer to the [`DelayedWork<T, ID>`] field.
    ///
    /// # Safety
    ///
    /// `ptr` points to a valid `Self`.
    unsafe fn raw_get_delayed_work(ptr: *mut Self) -> *mut DelayedWork<T, ID>;
}

/// Implements [`HasDelayedWork<T, ID>`] (and with it [`HasWork<T, ID>`]) for a field of
/// type [`DelayedWork<T, ID>`], in the syntax of `impl_has_work!`:
///
/// ```ignore
/// impl_has_delayed_work! {
///     impl HasDelayedWork<Self> for Poller { self.poll }
/// }
/// ```
macro_rules! impl_has_delayed_work {
    ($(impl$({$($generics:tt)*})?
       HasDelayedWork<$work_type:ty $(, $id:tt)?>
       for $self:ty
       { self.$field:ident }
    )*) => {$(
        // SAFETY: `OFFSET` is the offset of the field, whose type `raw_get_delayed_work`
        // fixes as `DelayedWork<T, ID>`; its work is at its start (`raw_as_work`), so
        // `raw_get_work` returns the work at `OFFSET`. Expanded in driver code, whose crate
        // denies `unsafe_code`, so the macro allows its own implementations.
        #[allow(unsafe_code)]
        unsafe impl$(<$($generics)+>)? ::kernel::workqueue::HasWork<$work_type $(, $id)?>
            for $self
        {
            const OFFSET: usize = ::core::mem::offset_of!(Self, $field) as usize;

            #[inline]
            unsafe fn raw_get_work(
                ptr: *mut Self,
            ) -> *mut ::kernel::workqueue::Work<$work_type $(, $id)?> {
                // SAFETY: `ptr` points to a valid `Self` (caller).
                let dwork = unsafe {
                    <Self as $crate::kapi::workqueue::HasDelayedWork<$work_type $(, $id)?>>
                        ::raw_get_delayed_work(ptr)
                };
                $crate::kapi::workqueue::DelayedWork::raw_as_work(dwork)
            }
        }

        // SAFETY: the pointer is to the field, of type `DelayedWork<T, ID>` (else this does
        // not compile), and the `HasWork` implementation above designates its work.
        #[allow(unsafe_code)]
        unsafe impl$(<$($generics)+>)?
            $crate::kapi::workqueue::HasDelayedWork<$work_type $(, $id)?> for $self
        {
            #[inline]
            unsafe fn raw_get_delayed_work(
                ptr: *mut Self,
            ) -> *mut $crate::kapi::workqueue::DelayedWork<$work_type $(, $id)?> {
                // SAFETY: `ptr` points to a valid `Self` (caller); no reference is made.
                unsafe { ::core::ptr::addr_of_mut!((*ptr).$field) }
            }
        }
    )*};
}
pub(crate) use impl_has_delayed_work;

/// A `T` of the KUnit suite: counts its runs.
#[pin_data]
struct Probe {
    runs: AtomicU32,
    #[pin]
    dwork: DelayedWork<Probe>,
}

crate::kapi::workqueue::impl_has_delayed_work! {
    impl HasDelayedWork<Self> for Probe { self.dwork }
}

impl WorkItem for Probe {
    type Pointer = Arc<Probe>;

    fn run(this: Arc<Probe>) {
        this.runs.fetch_add(1, Ordering::SeqCst);
    }
}

/// A [`Probe`] of a test, whose work is cancelled however the test ends (a failed check
/// returns early), so that nothing runs after the suite.
struct Armed(Option<Arc<Probe>>);

impl Armed {
    /// A new probe, or `None` (and the test failed) if it cannot be allocated.
    fn new() -> Option<Self> {
        let init = pin_init!(Probe {
            runs: AtomicU32::new(0),
            dwork <- crate::kapi::workqueue::new_delayed_work!("Probe::dwork"),
        });
        match Arc::pin_init(init, GFP_KERNEL) {
            Ok(p) => Some(Self(Some(p))),
            Err(_) => {
                crate::kapi::kunit::fail(
                    c_str!(file!()),
                    line!(),
                    format_args!("cannot allocate the probe"),
                );
                None
            }
        }
    }

    /// The probe (present until `finish`).
    fn probe(&self) -> Option<&Arc<Probe>> {
        self.0.as_ref()
    }

    /// How often the probe ran.
    fn runs(&self) -> u32 {
        self.probe().map_or(0, |p| p.runs.load(Ordering::SeqCst))
    }

    /// Queues the probe's work after `delay_ms`; whether it was queued.
    fn queue(&self, delay_ms: u32) -> bool {
        self.probe()
            .is_some_and(|p| DelayedWork::queue(p.clone(), msecs_to_jiffies(delay_ms)))
    }

    /// Waits up to 2 s for the probe to have run `n` times.
    fn wait_runs(&self, n: u32) {
        for _ in 0..200 {
            if self.runs() >= n {
                return;
            }
            msleep(10);
        }
    }

    /// Cancels the work and gives the probe up: whether the work was pending, and whether
    /// this was the last reference (no queueing or cancelling leaked one).
    fn finish(mut self) -> (bool, bool) {
        match self.0.take() {
            Some(p) => {
                let pending = DelayedWork::cancel_sync(&p);
                (pending, Arc::into_unique_or_drop(p).is_some())
            }
            None => (false, false),
        }
    }
}

impl Drop for Armed {
    fn drop(&mut self) {
        if let Some(p) = &self.0 {
            DelayedWork::cancel_sync(p);
        }
    }
}

crate::kapi::kunit::kunit_tests!(rnvme_kapi_workqueue, {
    fn delayed_work_runs_after_its_delay() {
        let Some(armed) = Armed::new() else {
            return;
        };
        assert!(armed.queue(20));
        armed.wait_runs(1);
        assert_eq!(armed.runs(), 1);
        // The run gave the queued reference back: only the test's is left.
        assert_eq!(armed.finish(), (false, true));
    }

    fn delayed_work_without_delay_runs_now() {
        let Some(armed) = Armed::new() else {
            return;
        };
        assert!(armed.queue(0));
        armed.wait_runs(1);
        assert_eq!(armed.runs(), 1);
        // Queued again once it ran, it runs again.
        assert!(armed.queue(0));
        armed.wait_runs(2);
        assert_eq!(armed.runs(), 2);
        assert_eq!(armed.finish(), (false, true));
    }

    fn pending_delayed_work_is_not_queued_twice() {
        let Some(armed) = Armed::new() else {
            return;
        };
        assert!(armed.queue(60_000));
        // Pending: the second queueing is refused and drops its reference.
        assert!(!armed.queue(60_000));
        // The cancel finds it pending and drops the queued reference: no leak of either.
        assert_eq!(armed.finish(), (true, true));
    }

    fn cancelled_delayed_work_does_not_run() {
        let Some(armed) = Armed::new() else {
            return;
        };
        // Ten seconds: the cancel must come while the item is pending, whatever the load.
        assert!(armed.queue(10_000));
        let cancelled = armed.probe().is_some_and(DelayedWork::cancel_sync);
        assert!(cancelled);
        msleep(100);
        assert_eq!(armed.runs(), 0);
        // Queued again after the cancel, it runs.
        assert!(armed.queue(0));
        armed.wait_runs(1);
        assert_eq!(armed.runs(), 1);
        assert_eq!(armed.finish(), (false, true));
    }
});
