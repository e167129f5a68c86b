// SPDX-License-Identifier: GPL-2.0

//! The I/O queues: the rings in DMA memory, a queue pair with its doorbells and completion
//! handling, and the shadow doorbell buffer.

pub(crate) mod dbbuf;
pub(crate) mod queue;
pub(crate) mod rings;
