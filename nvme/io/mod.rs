// SPDX-License-Identifier: GPL-2.0

//! The I/O queues: the rings in DMA memory, a queue pair with its doorbells and completion
//! handling, the shadow doorbell buffer, and the data of each request.

pub(crate) mod dbbuf;
pub(crate) mod queue;
pub(crate) mod request;
pub(crate) mod rings;
