// SPDX-License-Identifier: GPL-2.0

//! The callbacks of a multi-queue block driver: the [`Operations`] trait. Their C adapter,
//! the `blk_mq_ops` that call them, is `vtable.rs`.

use kernel::{init::PinInit, prelude::*, types::ForeignOwnable};

use super::{
    batch::BatchTarget, driver_request::DiskQueue, plug_list::PreparedRqs, queue_map::QueueMap,
    request::Request,
};
use crate::kapi::block::BlkStatus;

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
