// SPDX-License-Identifier: GPL-2.0

//! Plugged request lists (`queue_rqs`): every request of a plug is prepared on its own,
//! then each hardware queue's prepared requests are handed to the hardware together, under
//! one submission lock hold and with one doorbell write.

use core::{marker::PhantomData, ptr};

use kernel::{bindings, types::ForeignOwnable};

use super::{request::Request, tag_set::tag_set_data, Operations};
use crate::kapi::bindings::sys;

/// Takes the first request off `list` (`rq_list_pop`, an inline function in C, here in
/// Rust so that each request of a plug costs no call); null when the list is empty.
///
/// # Safety
///
/// `list` is a valid request list: its requests are valid and linked through `rq_next`,
/// `tail` is the last of them (both null when it is empty).
unsafe fn rq_list_pop(list: &mut bindings::rq_list) -> *mut bindings::request {
    let rq = list.head;
    if !rq.is_null() {
        // SAFETY: `rq` is on the list, hence valid, and linked through `rq_next` (the
        // caller's guarantee).
        unsafe {
            list.head = (*rq).__bindgen_anon_1.rq_next;
            (*rq).__bindgen_anon_1.rq_next = ptr::null_mut();
        }
        if list.head.is_null() {
            list.tail = ptr::null_mut();
        }
    }
    rq
}

/// Appends `rq` to `list` (`rq_list_add_tail`, inline in C).
///
/// # Safety
///
/// `list` is a valid request list (as for [`rq_list_pop`]) and `rq` a valid request on no
/// list.
unsafe fn rq_list_add_tail(list: &mut bindings::rq_list, rq: *mut bindings::request) {
    // SAFETY: `rq` is valid and on no list, so its link is ours to set; a non-null `tail`
    // is the valid last request of the list (the caller's guarantee).
    unsafe {
        (*rq).__bindgen_anon_1.rq_next = ptr::null_mut();
        if list.tail.is_null() {
            list.head = rq;
        } else {
            (*list.tail).__bindgen_anon_1.rq_next = rq;
        }
    }
    list.tail = rq;
}

/// The prepared requests of one hardware context, for [`Operations::submit_rqs`].
///
/// # Invariants
///
/// Every request on `list` is a started request of a tag set for `T` that
/// [`Operations::prepare_rq`] prepared and that the driver owns; none has reached the
/// hardware yet.
pub(crate) struct PreparedRqs<'a, T: Operations> {
    list: bindings::rq_list,
    _p: PhantomData<(&'a Request<T>, T)>,
}

impl<T: Operations> PreparedRqs<'_, T> {
    /// Takes the next request off the list.
    fn pop(&mut self) -> Option<*mut bindings::request> {
        // SAFETY: `list` is a valid list of our requests (type invariant).
        let rq = unsafe { rq_list_pop(&mut self.list) };
        (!rq.is_null()).then_some(rq)
    }

    /// Hands every request, in order, to `submit`. A request for which it fails is given
    /// back to blk-mq, which dispatches it again later through [`Operations::queue_rq`];
    /// `submit` must first release whatever the request holds.
    pub(crate) fn for_each(mut self, mut submit: impl FnMut(&Request<T>) -> Result<(), ()>) {
        while let Some(rq) = self.pop() {
            // SAFETY: a started request of a tag set for `T` that the driver owns (type
            // invariant), no longer on the list.
            if submit(unsafe { Request::<T>::from_raw(rq) }).is_err() {
                // SAFETY: as above; it never reached the hardware, so nothing else ends
                // it. blk-mq owns it again.
                unsafe { sys::rnvme_blk_mq_requeue_started(rq) };
            }
        }
    }
}

impl<T: Operations> Drop for PreparedRqs<'_, T> {
    /// Requests never handed to [`Self::for_each`] go back to blk-mq as they are: nothing
    /// releases what the driver's `prepare_rq` gave them, so a driver hands every list to
    /// `for_each`.
    fn drop(&mut self) {
        while let Some(rq) = self.pop() {
            // SAFETY: a started request that never reached the hardware (type invariant).
            unsafe { sys::rnvme_blk_mq_requeue_started(rq) };
        }
    }
}

/// Hands the prepared requests `list` of hardware context `hctx` to the driver.
///
/// # Safety
///
/// `hctx` must be a valid hardware context of a tag set for `T` whose queue's
/// `queuedata` is `T::QueueData`, and `list` must satisfy [`PreparedRqs`]' invariants for
/// requests of `hctx`.
unsafe fn submit<T: Operations>(hctx: *mut bindings::blk_mq_hw_ctx, list: bindings::rq_list) {
    if list.head.is_null() {
        return;
    }
    // SAFETY: `hctx` is valid and its tag set is ours (the caller's guarantee).
    let (data, idx) = unsafe {
        (
            tag_set_data::<T>((*(*hctx).queue).tag_set),
            (*hctx).queue_num,
        )
    };
    // INVARIANT: guaranteed by the caller.
    T::submit_rqs(
        data,
        idx,
        PreparedRqs {
            list,
            _p: PhantomData,
        },
    );
}

/// The `queue_rqs` callback: prepares every request of the plug list `rqlist`, submits
/// each hardware context's prepared requests at once, and leaves on `rqlist` the requests
/// that could not be prepared, which blk-mq then issues one by one (`queue_rq`).
///
/// # Safety
///
/// Called by blk-mq with a valid list of requests, none started, of one request queue of a
/// tag set built by [`super::TagSet::new`] for `T`.
pub(super) unsafe extern "C" fn queue_rqs_callback<T: Operations>(rqlist: *mut bindings::rq_list) {
    let mut requeue = bindings::rq_list::default();
    let mut batch = bindings::rq_list::default();
    let mut batch_hctx: *mut bindings::blk_mq_hw_ctx = ptr::null_mut();
    loop {
        // SAFETY: `rqlist` is valid (the caller's guarantee).
        let rq = unsafe { rq_list_pop(&mut *rqlist) };
        if rq.is_null() {
            break;
        }
        // SAFETY: the request is valid and has its hardware context.
        let hctx = unsafe { (*rq).mq_hctx };
        if hctx != batch_hctx {
            // SAFETY: `batch` holds prepared, started requests of `batch_hctx`.
            unsafe { submit::<T>(batch_hctx, core::mem::take(&mut batch)) };
            batch_hctx = hctx;
        }
        // SAFETY: as in `queue_rq_callback`: the queue's tag set is ours and its
        // `queuedata` is the disk's `T::QueueData`, alive while requests are dispatched.
        let (data, queue, idx) = unsafe {
            let q = (*hctx).queue;
            (
                tag_set_data::<T>((*q).tag_set),
                T::QueueData::borrow((*q).queuedata),
                (*hctx).queue_num,
            )
        };
        // SAFETY: a request of our tag set that blk-mq hands to the driver.
        let request = unsafe { Request::<T>::from_raw(rq) };
        match T::prepare_rq(data, queue, idx, request) {
            Ok(()) => {
                // Started only once prepared, as `queue_rq` expects for the others.
                request.start();
                // SAFETY: the request is off `rqlist`; `batch` is ours.
                unsafe { rq_list_add_tail(&mut batch, rq) };
            }
            // SAFETY: as above.
            Err(_) => unsafe { rq_list_add_tail(&mut requeue, rq) },
        }
    }
    // SAFETY: as above.
    unsafe {
        submit::<T>(batch_hctx, batch);
        *rqlist = requeue;
    }
}

crate::kapi::kunit::kunit_tests!(rnvme_kapi_blk_mq, {
    fn rq_list_hands_requests_back_in_order() {
        // SAFETY: all-zero is a valid `request` (null pointers, no flags) and a valid empty
        // `rq_list`; the requests are only linked and unlinked, never used as requests.
        let mut rqs: [bindings::request; 3] = unsafe { core::mem::zeroed() };
        let mut list = bindings::rq_list::default();
        let p: [*mut bindings::request; 3] = [
            &mut rqs[0] as *mut _,
            &mut rqs[1] as *mut _,
            &mut rqs[2] as *mut _,
        ];
        for rq in p {
            // SAFETY: `list` is valid; each request is valid and on no list.
            unsafe { rq_list_add_tail(&mut list, rq) };
        }
        assert!(list.head == p[0]);
        assert!(list.tail == p[2]);
        for rq in p {
            // SAFETY: `list` is valid and links the requests above.
            let got = unsafe { rq_list_pop(&mut list) };
            assert!(got == rq);
            // SAFETY: `got` is one of the requests above.
            assert!(unsafe { (*got).__bindgen_anon_1.rq_next }.is_null());
        }
        assert!(list.head.is_null());
        assert!(list.tail.is_null());
        // SAFETY: `list` is valid (empty).
        assert!(unsafe { rq_list_pop(&mut list) }.is_null());
    }

    fn rq_list_takes_requests_after_emptying() {
        // SAFETY: as above.
        let mut rqs: [bindings::request; 2] = unsafe { core::mem::zeroed() };
        let mut list = bindings::rq_list::default();
        let a: *mut bindings::request = &mut rqs[0];
        let b: *mut bindings::request = &mut rqs[1];
        // SAFETY: `list` is valid; `a` and `b` are valid and on no list when added.
        unsafe {
            rq_list_add_tail(&mut list, a);
            assert!(rq_list_pop(&mut list) == a);
            rq_list_add_tail(&mut list, b);
        }
        assert!(list.head == b);
        assert!(list.tail == b);
    }
});
