// SPDX-License-Identifier: GPL-2.0

//! The C adapter of a multi-queue block driver: the `blk_mq_ops` that call an
//! [`Operations`] implementation, and [`TagSet::new`], which allocates a tag set with them.
//!
//! This file stands above the rest of the module: it takes the callbacks' pieces from the
//! files below it (the tag set's data and completion from `tag_set.rs`, `queue_rqs` from
//! `plug_list.rs`, poll batches from `batch.rs`), and none of them names it.

use core::{marker::PhantomData, ptr};

use kernel::{bindings, error::from_result, ffi, init::PinInit, prelude::*, types::ForeignOwnable};

use super::{
    batch::BatchTarget,
    plug_list,
    queue_map::QueueMap,
    request::Request,
    tag_set::{self, tag_set_data, TagSet},
    Operations, TimeoutAction,
};
use crate::kapi::block::BlkStatus;

/// The `blk_mq_ops` of an [`Operations`] implementation.
pub(crate) struct OperationsVTable<T: Operations>(PhantomData<T>);

impl<T: Operations> OperationsVTable<T> {
    /// # Safety
    ///
    /// Called by blk-mq with a valid hardware context of a tag set built by
    /// [`TagSet::new`] for `T`, and a valid request of it.
    unsafe extern "C" fn queue_rq_callback(
        hctx: *mut bindings::blk_mq_hw_ctx,
        bd: *const bindings::blk_mq_queue_data,
    ) -> bindings::blk_status_t {
        // SAFETY: blk-mq passes a valid `bd` whose `rq` is a request of our tag set.
        let (rq, last) = unsafe { ((*bd).rq, (*bd).last) };
        // SAFETY: as above; the request is owned by the driver for this call.
        let rq = unsafe { Request::<T>::from_raw(rq) };
        // SAFETY: `hctx` is valid; its queue's tag set is ours and its `queuedata` was set
        // by `GenDiskBuilder::build` from `T::QueueData::into_foreign`, released only after
        // the disk is gone.
        let (data, queue, idx) = unsafe {
            let q = (*hctx).queue;
            (
                tag_set_data::<T>((*q).tag_set),
                T::QueueData::borrow((*q).queuedata),
                (*hctx).queue_num,
            )
        };
        rq.start();
        match T::queue_rq(data, queue, idx, rq, last) {
            Ok(()) => BlkStatus::OK.raw(),
            Err(status) => status.raw(),
        }
    }

    /// # Safety
    ///
    /// As for `queue_rq_callback`.
    unsafe extern "C" fn commit_rqs_callback(hctx: *mut bindings::blk_mq_hw_ctx) {
        // SAFETY: `hctx` is valid; its queue's tag set is ours.
        let (data, idx) = unsafe {
            let set = (*(*hctx).queue).tag_set;
            (tag_set_data::<T>(set), (*hctx).queue_num)
        };
        T::commit_rqs(data, idx)
    }

    /// # Safety
    ///
    /// Called by blk-mq for a request of our tag set whose timer expired.
    unsafe extern "C" fn timeout_callback(
        rq: *mut bindings::request,
    ) -> bindings::blk_eh_timer_return {
        // SAFETY: the request is valid and in flight.
        let data = unsafe { tag_set_data::<T>((*(*rq).q).tag_set) };
        // SAFETY: as above.
        match T::timeout(data, unsafe { Request::<T>::from_raw(rq) }) {
            TimeoutAction::ResetTimer => bindings::blk_eh_timer_return_BLK_EH_RESET_TIMER,
            TimeoutAction::Done => bindings::blk_eh_timer_return_BLK_EH_DONE,
        }
    }

    /// # Safety
    ///
    /// Called by blk-mq with a tag set built by [`TagSet::new`] for `T`.
    unsafe extern "C" fn map_queues_callback(set: *mut bindings::blk_mq_tag_set) {
        // SAFETY: the tag set is ours and valid for the call.
        let data = unsafe { tag_set_data::<T>(set) };
        // SAFETY: as above; blk-mq holds the tag set's lock while mapping.
        let map = unsafe { QueueMap::from_raw(set) };
        T::map_queues(data, &map);
    }

    /// # Safety
    ///
    /// Called by blk-mq with a valid hardware context of a poll map of a tag set built by
    /// [`TagSet::new`] for `T`, and a null or valid completion batch.
    unsafe extern "C" fn poll_callback(
        hctx: *mut bindings::blk_mq_hw_ctx,
        iob: *mut bindings::io_comp_batch,
    ) -> ffi::c_int {
        // SAFETY: `hctx` is valid; its queue's tag set is the `inner` field of a live
        // `TagSet<T>` (`TagSet::new`), which outlives every hardware context of it.
        let (tagset, idx) = unsafe {
            let set = (*(*hctx).queue).tag_set;
            (TagSet::<T>::from_raw(set), (*hctx).queue_num)
        };
        // SAFETY: `iob` is null or the caller's batch, valid for this call.
        let mut batch = unsafe { BatchTarget::<T>::from_raw(iob) };
        ffi::c_int::try_from(T::poll(tagset, idx, &mut batch)).unwrap_or(ffi::c_int::MAX)
    }

    /// # Safety
    ///
    /// Called by blk-mq once per request of the tag set, before it is used.
    unsafe extern "C" fn init_request_callback(
        set: *mut bindings::blk_mq_tag_set,
        rq: *mut bindings::request,
        _hctx_idx: ffi::c_uint,
        _numa_node: ffi::c_uint,
    ) -> ffi::c_int {
        from_result(|| {
            let pdu = super::request::pdu(rq).cast::<T::RequestData>();
            // SAFETY: `set` is our tag set, whose `driver_data` `TagSet::new` sets before
            // `blk_mq_alloc_tag_set` initialises the requests and frees only after
            // `blk_mq_free_tag_set`; blk-mq's later calls (flush and scheduler requests, a
            // new number of hardware queues) all fall in between.
            let data = unsafe { tag_set_data::<T>(set) };
            // SAFETY: the PDU of a request of our tag set has room for `T::RequestData`
            // (`cmd_size`) and is suitably aligned (checked in `TagSet::new`); it is valid
            // for writes and never moves while the request exists.
            unsafe { T::new_request_data(data).__pinned_init(pdu) }?;
            Ok(0)
        })
    }

    /// # Safety
    ///
    /// Called by blk-mq once per request when the tag set is freed.
    unsafe extern "C" fn exit_request_callback(
        _set: *mut bindings::blk_mq_tag_set,
        rq: *mut bindings::request,
        _hctx_idx: ffi::c_uint,
    ) {
        // SAFETY: `init_request_callback` initialised the PDU; it is not used any more.
        unsafe { ptr::drop_in_place(super::request::pdu(rq).cast::<T::RequestData>()) };
    }

    /// The table: one per driver type `T`, built at compile time.
    const VTABLE: bindings::blk_mq_ops = bindings::blk_mq_ops {
        queue_rq: Some(Self::queue_rq_callback),
        commit_rqs: Some(Self::commit_rqs_callback),
        queue_rqs: if T::QUEUE_RQS {
            Some(plug_list::queue_rqs_callback::<T>)
        } else {
            None
        },
        get_budget: None,
        put_budget: None,
        set_rq_budget_token: None,
        get_rq_budget_token: None,
        timeout: Some(Self::timeout_callback),
        poll: Some(Self::poll_callback),
        complete: Some(tag_set::complete_callback::<T>),
        init_hctx: None,
        exit_hctx: None,
        init_request: Some(Self::init_request_callback),
        exit_request: Some(Self::exit_request_callback),
        cleanup_rq: None,
        busy: None,
        map_queues: Some(Self::map_queues_callback),
        show_rq: None,
    };

    /// The vtable, with static lifetime.
    const fn build() -> &'static bindings::blk_mq_ops {
        &Self::VTABLE
    }
}

impl<T: Operations> TagSet<T> {
    /// Allocates a tag set of `nr_hw_queues` hardware queues of `queue_depth` requests in
    /// `num_maps` queue maps (1: the default map only; 3: default, read and poll, see
    /// [`super::HctxType`]), with request timeout `timeout_ms` and the shared `data`.
    pub(crate) fn new(
        nr_hw_queues: u32,
        queue_depth: u16,
        num_maps: u32,
        timeout_ms: u32,
        data: T::TagSetData,
    ) -> impl PinInit<Self, Error> {
        // SAFETY: `OperationsVTable::<T>`'s callbacks are those of a tag set for `T`.
        unsafe {
            Self::with_ops(
                OperationsVTable::<T>::build,
                nr_hw_queues,
                queue_depth,
                num_maps,
                timeout_ms,
                data,
            )
        }
    }
}
