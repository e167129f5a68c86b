// SPDX-License-Identifier: GPL-2.0

//! The multi-queue block layer: tag sets, requests, disks.
//!
//! Requests are owned by the block layer: a driver sees them as `&Request` inside its
//! callbacks and never ends one itself. `queue_rq` returns an error status to fail a
//! request at once; a completion found by the driver goes through
//! [`TagSet::complete_tag`], and the adapter ends the request with the status
//! [`Operations::complete`] returns. No request reference can outlive the request.
//!
//! The files form layers; a file imports its siblings only from above. At the bottom the
//! request types (`request.rs`, `driver_request.rs`) and `queue_map.rs`; then `sg.rs`
//! and `batch.rs` (completion batches and the callback that ends them); `tag_set.rs` (the
//! tag set, its data and the end of a completion); `plug_list.rs` and `gen_disk.rs`; and
//! on top `vtable.rs`, the C adapter: the `blk_mq_ops` of an [`Operations`] implementation
//! and [`TagSet::new`], which installs them. `operations.rs` holds the [`Operations`] trait
//! alone; the types in its signatures and the trait name each other, the others name it
//! through this module (`super::Operations`).

#![allow(unused_imports)] // The driver's block devices are being built on these.

mod batch;
mod driver_request;
mod gen_disk;
mod operations;
mod plug_list;
mod queue_map;
mod request;
mod sg;
mod tag_set;
mod vtable;

pub(crate) use batch::{BatchTarget, CompletionBatch};
pub(crate) use driver_request::{DiskQueue, DriverRequest};
pub(crate) use gen_disk::{FrozenQueue, GenDisk, GenDiskBuilder};
pub(crate) use operations::{CompleteAction, Operations, TimeoutAction};
pub(crate) use plug_list::PreparedRqs;
pub(crate) use queue_map::{HctxType, QueueMap};
pub(crate) use request::{ReqOp, Request};
pub(crate) use sg::RequestSg;
pub(crate) use tag_set::TagSet;
