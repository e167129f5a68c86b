// SPDX-License-Identifier: GPL-2.0

//! Tag sets: the hardware queues, their depth and the per-request data of a driver.
//!
//! A tag set's constructor, [`TagSet::new`], is in `vtable.rs`, which gives it its callbacks
//! (`blk_mq_ops`); this file knows them only as the table it stores.

use core::{marker::PhantomData, mem, ptr};

use kernel::{
    bindings,
    error::to_result,
    ffi,
    init::pin_init_from_closure,
    prelude::*,
    types::{ForeignOwnable, Opaque},
};

use super::{batch::BatchTarget, CompleteAction, Operations, Request};

/// Returns the data of the tag set `set`.
///
/// # Safety
///
/// `set` must be a tag set built by [`TagSet::new`] for `T` that stays alive for `'a`.
pub(super) unsafe fn tag_set_data<'a, T: Operations>(
    set: *mut bindings::blk_mq_tag_set,
) -> <T::TagSetData as ForeignOwnable>::Borrowed<'a> {
    // SAFETY: `driver_data` came from `into_foreign` in `TagSet::new` and is released only
    // when the tag set is dropped, after which blk-mq makes no more callbacks.
    unsafe { T::TagSetData::borrow((*set).driver_data) }
}

/// Finishes a completed request of a tag set for `T` (the `complete` callback of
/// `blk_mq_ops`, and the end of [`TagSet::complete_tag`]): ends or requeues it as
/// [`Operations::complete`] says.
///
/// # Safety
///
/// Called by blk-mq for a request that was completed through `blk_mq_complete_request`.
pub(super) unsafe extern "C" fn complete_callback<T: Operations>(rq: *mut bindings::request) {
    // SAFETY: the request is valid and completed, owned by the driver until ended.
    let action = T::complete(unsafe { Request::<T>::from_raw(rq) });
    match action {
        // SAFETY: the request is valid; nothing uses it after it is ended.
        CompleteAction::End(status) => unsafe { bindings::blk_mq_end_request(rq, status.raw()) },
        // SAFETY: as above; blk-mq owns it again and dispatches it later.
        CompleteAction::Requeue => unsafe { bindings::blk_mq_requeue_request(rq, true) },
    }
}

/// Whether `rq` is in flight (`blk_mq_rq_state`, inline in C).
///
/// # Safety
///
/// `rq` must be a valid request.
#[inline]
unsafe fn is_in_flight(rq: *mut bindings::request) -> bool {
    // SAFETY: `rq` is valid (the caller's guarantee); the state is read once
    // (`READ_ONCE`), as blk-mq changes it concurrently.
    let state = unsafe { ptr::read_volatile(ptr::addr_of!((*rq).state)) };
    state == bindings::mq_rq_state_MQ_RQ_IN_FLIGHT
}

/// Whether timeout fault injection (`fail_io_timeout`) wants the completion of `rq`
/// dropped: `blk_should_fake_timeout`, inline in C, whose flag test costs no call.
///
/// # Safety
///
/// `rq` must be a valid request of a live request queue.
#[inline]
unsafe fn should_fake_timeout(rq: *mut bindings::request) -> bool {
    #[cfg(CONFIG_FAIL_IO_TIMEOUT)]
    {
        // SAFETY: `rq` and its queue are valid (the caller's guarantee); the flags are read
        // once (`test_bit`), as blk-mq sets and clears them concurrently.
        unsafe {
            let q = (*rq).q;
            let flags = ptr::read_volatile(ptr::addr_of!((*q).queue_flags));
            flags & (1 << bindings::QUEUE_FLAG_FAIL_IO) != 0
                && bindings::__blk_should_fake_timeout(q)
        }
    }
    #[cfg(not(CONFIG_FAIL_IO_TIMEOUT))]
    {
        let _ = rq;
        false
    }
}

/// A blk-mq tag set for driver `T`.
///
/// # Invariants
///
/// `inner` was allocated with `blk_mq_alloc_tag_set`, with the callbacks of a tag set for
/// `T`, and its `driver_data` holds a `T::TagSetData` from `into_foreign`, until drop.
#[pin_data(PinnedDrop)]
pub(crate) struct TagSet<T: Operations> {
    #[pin]
    inner: Opaque<bindings::blk_mq_tag_set>,
    _p: PhantomData<T>,
}

// SAFETY: blk-mq synchronises access to the tag set; `T::TagSetData` is `Send + Sync`.
unsafe impl<T: Operations> Send for TagSet<T> {}
// SAFETY: see `Send`.
unsafe impl<T: Operations> Sync for TagSet<T> {}

impl<T: Operations> TagSet<T> {
    /// Allocates a tag set as [`TagSet::new`] describes, whose callbacks are those `ops`
    /// returns (a function rather than the table itself, so that the table's address is a
    /// constant of the code rather than a value the initialiser carries).
    ///
    /// # Safety
    ///
    /// `ops` returns the callbacks of a tag set for `T` ([`TagSet::new`] passes
    /// `OperationsVTable::<T>`'s): they take its `driver_data` for a `T::TagSetData` and
    /// its requests' driver data for a `T::RequestData`.
    pub(super) unsafe fn with_ops(
        ops: impl FnOnce() -> &'static bindings::blk_mq_ops,
        nr_hw_queues: u32,
        queue_depth: u16,
        num_maps: u32,
        timeout_ms: u32,
        data: T::TagSetData,
    ) -> impl PinInit<Self, Error> {
        const {
            assert!(
                mem::align_of::<T::RequestData>() <= mem::align_of::<bindings::request>(),
                "request data must not need more alignment than struct request"
            )
        };
        let init = move |slot: *mut Opaque<bindings::blk_mq_tag_set>| {
            let cmd_size = u32::try_from(mem::size_of::<T::RequestData>()).map_err(|_| EINVAL)?;
            if !(1..=bindings::hctx_type_HCTX_MAX_TYPES).contains(&num_maps) {
                return Err(EINVAL);
            }
            let set = Opaque::raw_get(slot);
            let driver_data = data.into_foreign();
            // SAFETY: `set` is valid for writes; all-zero is a valid initial tag set, and
            // the fields set here are the ones `blk_mq_alloc_tag_set` reads.
            unsafe {
                core::ptr::write_bytes(set, 0, 1);
                // INVARIANT: callbacks for `T` (the caller's guarantee).
                (*set).ops = ops();
                (*set).nr_hw_queues = nr_hw_queues;
                (*set).nr_maps = num_maps;
                (*set).queue_depth = u32::from(queue_depth);
                (*set).cmd_size = cmd_size;
                (*set).numa_node = bindings::NUMA_NO_NODE;
                (*set).timeout = kernel::time::msecs_to_jiffies(timeout_ms) as ffi::c_uint;
                (*set).flags = bindings::BLK_MQ_F_SHOULD_MERGE;
                (*set).driver_data = driver_data.cast_mut();
            }
            // SAFETY: `set` is initialised and pinned (it lives in the pinned `inner`).
            let ret = to_result(unsafe { bindings::blk_mq_alloc_tag_set(set) });
            if ret.is_err() {
                // SAFETY: allocation failed, so blk-mq holds no reference to the data.
                drop(unsafe { T::TagSetData::from_foreign(driver_data) });
            }
            ret
        };
        try_pin_init!(Self {
            // SAFETY: the closure initialises the tag set or cleans up and fails.
            inner <- unsafe { pin_init_from_closure(init) },
            _p: PhantomData,
        })
    }

    /// The tag set whose C object is `set`.
    ///
    /// # Safety
    ///
    /// `set` must be the `inner` object of a `TagSet<T>` that stays alive for `'a`.
    pub(super) unsafe fn from_raw<'a>(set: *mut bindings::blk_mq_tag_set) -> &'a Self {
        // SAFETY: `set` points to the `inner` field of a live `TagSet<T>` (caller), so
        // going back by that field's offset gives the whole object.
        unsafe {
            &*set
                .cast::<u8>()
                .sub(mem::offset_of!(Self, inner))
                .cast::<Self>()
        }
    }

    pub(super) fn as_raw(&self) -> *mut bindings::blk_mq_tag_set {
        self.inner.get()
    }

    /// The tag set's shared data.
    pub(crate) fn data(&self) -> <T::TagSetData as ForeignOwnable>::Borrowed<'_> {
        // SAFETY: the set is ours and alive for the borrow.
        unsafe { tag_set_data::<T>(self.as_raw()) }
    }

    /// The request with tag `tag` on hardware queue `hctx_idx` if it is in flight; `None`
    /// when either index is out of range (both can come from a device's completion entry)
    /// or the request is not in flight (a bogus or duplicate completion). This is
    /// `blk_mq_tag_to_rq` and `blk_mq_rq_state`, inline functions in C, so a completion
    /// costs no call for them.
    fn in_flight_rq(&self, hctx_idx: u32, tag: u16) -> Option<*mut bindings::request> {
        let set = self.as_raw();
        // SAFETY: the tag set is allocated (type invariant): `tags` is null or has an
        // entry, null or a valid tag map, for each of the `nr_hw_queues` hardware queues,
        // and a tag map's `rqs` has `nr_tags` entries, each null or a valid request. They
        // change only when the hardware queues are reallocated, which the driver never
        // does while completions run.
        unsafe {
            if hctx_idx >= (*set).nr_hw_queues || (*set).tags.is_null() {
                return None;
            }
            let tags = *(*set).tags.add(hctx_idx as usize);
            if tags.is_null() || u32::from(tag) >= (*tags).nr_tags {
                return None;
            }
            let rq = *(*tags).rqs.add(usize::from(tag));
            (!rq.is_null() && is_in_flight(rq)).then_some(rq)
        }
    }

    /// Completes the in-flight request with tag `tag` on hardware queue `hctx_idx`: `f`
    /// checks that the completion belongs to the request's current submission (else it
    /// returns `None` and the request is left alone), records the result in the request's
    /// data and returns whether the request succeeded; then the request is completed (and
    /// later ended by [`Operations::complete`]), or, if it succeeded and is completed on
    /// this CPU, added to `batch` to be ended with the others (a polled request is always
    /// completed on the polling CPU). Returns `false`, without calling `f`, when no request
    /// with that tag is in flight, and `false` when `f` refuses the completion: as for a
    /// bogus, stale or duplicate completion.
    pub(crate) fn complete_tag(
        &self,
        hctx_idx: u32,
        tag: u16,
        batch: &mut BatchTarget<'_, T>,
        f: impl FnOnce(&Request<T>) -> Option<bool>,
    ) -> bool {
        let Some(rq) = self.in_flight_rq(hctx_idx, tag) else {
            return false;
        };
        // SAFETY: the request is in flight, hence owned by the driver until completed.
        let Some(ok) = f(unsafe { Request::from_raw(rq) }) else {
            return false;
        };
        // Timeout fault injection (`fail_io_timeout`): drop the completion, as if it never
        // came, so that the request times out.
        // SAFETY: the request is valid (above).
        if unsafe { should_fake_timeout(rq) } {
            return true;
        }
        // SAFETY: as above. Exactly one of the three paths completes it: on its submitting
        // CPU (remote), in the batch, or here (`blk_mq_complete_request` split open, and
        // `blk_mq_add_to_batch` in Rust, as both are inline in C).
        unsafe {
            if bindings::blk_mq_complete_request_remote(rq) {
                return true;
            }
            if !(ok && batch.add(rq)) {
                complete_callback::<T>(rq);
            }
        }
        true
    }
}

impl<T: Operations> TagSet<T> {
    /// Stops dispatching requests to every queue of the tag set and waits for running
    /// `queue_rq` calls to return.
    pub(crate) fn quiesce(&self) {
        // SAFETY: the tag set is allocated (type invariant).
        unsafe { bindings::blk_mq_quiesce_tagset(self.as_raw()) }
    }

    /// Resumes dispatching after [`TagSet::quiesce`].
    pub(crate) fn unquiesce(&self) {
        // SAFETY: the tag set is allocated (type invariant).
        unsafe { bindings::blk_mq_unquiesce_tagset(self.as_raw()) }
    }

    /// Completes every in-flight request of the tag set: `f` records the outcome in the
    /// request's data, then the request is completed (and [`Operations::complete`] decides
    /// whether it ends or is requeued). Waits until all those completions have run.
    ///
    /// Only call this when the device can no longer access the requests' memory (it is
    /// disabled or gone) and no completion path runs concurrently (interrupts synchronised).
    pub(crate) fn cancel_in_flight(&self, f: &mut dyn FnMut(&Request<T>)) {
        /// # Safety
        ///
        /// Called by `blk_mq_tagset_busy_iter` with a started request of this tag set and
        /// the closure pointer passed below.
        unsafe extern "C" fn cancel_one<T: Operations>(
            rq: *mut bindings::request,
            data: *mut ffi::c_void,
        ) -> bool {
            // SAFETY: `data` is the `&mut dyn FnMut` passed below, live for the iteration.
            let f = unsafe { &mut *data.cast::<&mut dyn FnMut(&Request<T>)>() };
            // SAFETY: blk-mq passes started requests of our tag set.
            if unsafe { is_in_flight(rq) } {
                // SAFETY: the request is in flight, hence owned by the driver.
                f(unsafe { Request::from_raw(rq) });
                // SAFETY: as above; completed exactly once (it is no longer in flight
                // afterwards).
                unsafe { bindings::blk_mq_complete_request(rq) };
            }
            true
        }
        let mut f = f;
        // SAFETY: the tag set is allocated; `cancel_one` gets `&mut f` for the duration of
        // the call.
        unsafe {
            bindings::blk_mq_tagset_busy_iter(
                self.as_raw(),
                Some(cancel_one::<T>),
                core::ptr::from_mut(&mut f).cast(),
            );
            bindings::blk_mq_tagset_wait_completed_request(self.as_raw());
        }
    }
}

#[pinned_drop]
impl<T: Operations> PinnedDrop for TagSet<T> {
    fn drop(self: Pin<&mut Self>) {
        let set = self.inner.get();
        // SAFETY: by the type invariant the set was allocated; no queue uses it any more
        // (the disks holding it are gone), so its requests are freed here.
        unsafe { bindings::blk_mq_free_tag_set(set) };
        // SAFETY: `driver_data` came from `into_foreign` (type invariant) and blk-mq makes
        // no more callbacks.
        drop(unsafe { T::TagSetData::from_foreign((*set).driver_data) });
    }
}
