// SPDX-License-Identifier: GPL-2.0

//! The callbacks of a multi-queue block driver and their C adapter.

use core::{marker::PhantomData, ptr};

use kernel::{bindings, error::from_result, ffi, init::PinInit, prelude::*, types::ForeignOwnable};

use super::{
    batch::BatchTarget, driver_request::DiskQueue, plug_list, plug_list::PreparedRqs,
    queue_map::QueueMap, request::Request, tag_set, tag_set::tag_set_data,
};
use crate::kapi::{bindings::sys, block::BlkStatus};

/// What to do with a request whose timer expired.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum TimeoutAction {
    /// The driver is handling it (e.g. an abort is under way): restart the timer.
    ResetTimer,
    /// The driver completed the request itself.
    Done,
}

/// How to finish a completed request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum CompleteAction {
    /// End the request with this status.
    End(BlkStatus),
    /// Put the request back on its queue: it is dispatched again later (e.g. after a
    /// controller reset cancelled it).
    Requeue,
}

/// A multi-queue block driver.
pub(crate) trait Operations: Sized + 'static {
    /// Data shared by every queue of the tag set (e.g. the controller's queues).
    type TagSetData: ForeignOwnable + Send + Sync;

    /// Data of one disk (request queue), e.g. its namespace.
    type QueueData: ForeignOwnable + Send + Sync;

    /// Per-request driver data, initialised once for every request of the tag set.
    type RequestData: Send + Sync;

    /// Initialiser of a request's driver data; `data` is the tag set's shared data.
    fn new_request_data(
        data: <Self::TagSetData as ForeignOwnable>::Borrowed<'_>,
    ) -> impl PinInit<Self::RequestData, Error>;

    /// Issues `rq` on hardware queue `hctx_idx`; `is_last` says whether more requests
    /// follow in this batch. An error status fails the request at once.
    fn queue_rq(
        data: <Self::TagSetData as ForeignOwnable>::Borrowed<'_>,
        queue: <Self::QueueData as ForeignOwnable>::Borrowed<'_>,
        hctx_idx: u32,
        rq: &Request<Self>,
        is_last: bool,
    ) -> Result<(), BlkStatus>;

    /// Called after a batch of `queue_rq` calls that did not end with `is_last`.
    fn commit_rqs(data: <Self::TagSetData as ForeignOwnable>::Borrowed<'_>, hctx_idx: u32);

    /// Whether blk-mq hands the driver a plug's whole request list: each request goes to
    /// [`Self::prepare_rq`], then each hardware queue's prepared ones to
    /// [`Self::submit_rqs`] together. Without it every request goes to [`Self::queue_rq`].
    const QUEUE_RQS: bool = false;

    /// Prepares `rq` of hardware queue `hctx_idx` for [`Self::submit_rqs`]: everything
    /// `queue_rq` does short of handing it to the hardware. On error nothing may be left
    /// held: the request is issued again through `queue_rq`, which reports the error.
    fn prepare_rq(
        _data: <Self::TagSetData as ForeignOwnable>::Borrowed<'_>,
        _queue: <Self::QueueData as ForeignOwnable>::Borrowed<'_>,
        _hctx_idx: u32,
        _rq: &Request<Self>,
    ) -> Result<(), BlkStatus> {
        Err(BlkStatus::RESOURCE)
    }

    /// Hands the requests [`Self::prepare_rq`] prepared for hardware queue `hctx_idx` to
    /// the hardware, in order, telling it once. By default they all go back to blk-mq.
    fn submit_rqs(
        _data: <Self::TagSetData as ForeignOwnable>::Borrowed<'_>,
        _hctx_idx: u32,
        rqs: PreparedRqs<'_, Self>,
    ) {
        drop(rqs);
    }

    /// Finishes a request the driver handed to [`TagSet::complete_tag`] or
    /// [`TagSet::cancel_in_flight`]: the returned action ends or requeues it.
    ///
    /// [`TagSet::complete_tag`]: super::TagSet::complete_tag
    /// [`TagSet::cancel_in_flight`]: super::TagSet::cancel_in_flight
    fn complete(rq: &Request<Self>) -> CompleteAction;

    /// Releases what a request that completed successfully holds (e.g. its DMA mapping):
    /// it is one of a [`CompletionBatch`], which ends them all with success at once.
    ///
    /// [`CompletionBatch`]: super::CompletionBatch
    fn complete_batched(rq: &Request<Self>);

    /// A request's timer expired.
    fn timeout(
        data: <Self::TagSetData as ForeignOwnable>::Borrowed<'_>,
        rq: &Request<Self>,
    ) -> TimeoutAction;

    /// Maps CPUs to hardware queues, when the tag set is allocated and when CPUs come or
    /// go. By default the CPUs are spread evenly over all queues of the default map.
    fn map_queues(_data: <Self::TagSetData as ForeignOwnable>::Borrowed<'_>, map: &QueueMap) {
        // Cannot fail: the default map exists and every queue is in range.
        let _ = map.spread(super::HctxType::Default, map.nr_hw_queues(), 0);
    }

    /// Reaps the completions of hardware queue `hctx_idx` of `tagset`, a queue of the poll map
    /// ([`super::HctxType::Poll`]), for a task polling for its requests; successful ones go
    /// to `batch`, which the caller ends. Returns how many requests completed. Only called
    /// for tag sets with a poll map; by default nothing completes.
    fn poll(
        _tagset: &super::TagSet<Self>,
        _hctx_idx: u32,
        _batch: &mut BatchTarget<'_, Self>,
    ) -> u32 {
        0
    }

    /// Handles ioctl `cmd` (user argument `arg`) on one of the tag set's disks, after the
    /// block layer's own ioctls; the return value goes back to the caller. By default
    /// every driver ioctl is refused.
    fn ioctl(
        _data: <Self::TagSetData as ForeignOwnable>::Borrowed<'_>,
        _queue_data: <Self::QueueData as ForeignOwnable>::Borrowed<'_>,
        _queue: &DiskQueue<Self>,
        _cmd: u32,
        _arg: usize,
    ) -> Result<isize> {
        Err(ENOTTY)
    }
}

/// The `blk_mq_ops` of an [`Operations`] implementation.
pub(crate) struct OperationsVTable<T: Operations>(PhantomData<T>);

impl<T: Operations> OperationsVTable<T> {
    /// # Safety
    ///
    /// Called by blk-mq with a valid hardware context of a tag set built by
    /// [`super::TagSet::new`] for `T`, and a valid request of it.
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
    /// Called by blk-mq with a tag set built by [`super::TagSet::new`] for `T`.
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
    /// [`super::TagSet::new`] for `T`, and a null or valid completion batch.
    unsafe extern "C" fn poll_callback(
        hctx: *mut bindings::blk_mq_hw_ctx,
        iob: *mut bindings::io_comp_batch,
    ) -> ffi::c_int {
        // SAFETY: `hctx` is valid; its queue's tag set is the `inner` field of a live
        // `TagSet<T>` (`TagSet::new`), which outlives every hardware context of it.
        let (tagset, idx) = unsafe {
            let set = (*(*hctx).queue).tag_set;
            (super::TagSet::<T>::from_raw(set), (*hctx).queue_num)
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
    pub(crate) const fn build() -> &'static bindings::blk_mq_ops {
        &Self::VTABLE
    }
}
