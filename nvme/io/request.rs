// SPDX-License-Identifier: GPL-2.0

//! What the driver keeps with every I/O request (its DMA state, its completion, what
//! recovery did to it), and the type that names the driver's blk-mq operations, whose
//! implementation is in [`crate::nvme::block_ops`].

use core::sync::atomic::{AtomicBool, AtomicU16, AtomicU64, AtomicU8, Ordering};

use kernel::{prelude::*, types::ARef};

use crate::{
    kapi::{
        block::mq::{Request, RequestSg},
        device::Device,
        dma::DmaPoolBlock,
        sync::{Exclusive, IrqSpinLock},
    },
    nvme::spec::{
        cid::{self, Generation},
        command::Command,
        completion::Status,
    },
};

/// Most data segments of one request.
pub(crate) const MAX_SEGMENTS: usize = 64;

/// Largest transfer of one request, in bytes: one PRP list page covers it with room to
/// spare.
pub(crate) const MAX_TRANSFER: u32 = 512 * 1024;

/// The DMA state of a request in flight.
pub(crate) struct IoDma {
    /// The request's data mapping.
    pub(in crate::nvme) sg: RequestSg<MAX_SEGMENTS>,
    /// A PRP list or Dataset Management range block, held until completion.
    pub(in crate::nvme) pool_block: Option<DmaPoolBlock>,
    /// The command the submission built, until it is placed on the submission ring.
    pub(in crate::nvme) cmd: Command,
}

impl IoDma {
    /// Unmaps the data and gives the pool block back.
    pub(crate) fn release(&mut self) {
        self.sg.unmap();
        // Most requests hold no block: only give one back if there is one, rather than
        // dropping an `Option` out of line on every completion.
        if let Some(block) = self.pool_block.take() {
            drop(block);
        }
    }
}

/// What happens to a request that recovery takes back from a disabled controller.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub(crate) enum Cancel {
    /// Not cancelled: it completed normally.
    No = 0,
    /// Dispatch it again after the reset.
    Requeue = 1,
    /// Fail it: the controller is dead.
    Fail = 2,
}

/// Driver data of every I/O request.
#[pin_data]
pub(crate) struct IoPdu {
    /// Used by submission, then by completion: blk-mq hands the request from one to the
    /// other, so the two only overlap if the controller completes a command it has not
    /// been given yet (then the completion is ignored).
    pub(in crate::nvme) dma: Exclusive<IoDma>,
    /// The command of a driver-private (passthrough) request, set before it is executed.
    #[pin]
    pub(in crate::nvme) passthru: IrqSpinLock<Option<Command>>,
    /// The NVMe status of the last completion.
    pub(in crate::nvme) status: AtomicU16,
    /// Completion dwords 0 and 1 (the command's result).
    pub(in crate::nvme) result: AtomicU64,
    /// A [`Cancel`]: whether recovery took the request back, and what for.
    pub(in crate::nvme) cancel: AtomicU8,
    /// Whether an Abort was sent since the request was last dispatched.
    pub(in crate::nvme) aborted: AtomicBool,
    /// Its [`Tries`]: how often it was sent again after a retryable error, and whether a
    /// controller reset took it back; zero once it completed.
    pub(in crate::nvme) retries: AtomicU8,
    /// The generation count of the request's current submission (the upper bits of its
    /// command identifier, see [`cid`]).
    pub(in crate::nvme) generation: AtomicU8,
}

impl IoPdu {
    /// The data of a new request, whose data `dev` maps.
    pub(crate) fn new(dev: ARef<Device>) -> impl PinInit<Self, Error> {
        try_pin_init!(Self {
            dma: Exclusive::new(IoDma {
                sg: RequestSg::new(dev),
                pool_block: None,
                cmd: Command::default(),
            }),
            passthru <- IrqSpinLock::new(None),
            status: AtomicU16::new(0),
            result: AtomicU64::new(0),
            cancel: AtomicU8::new(Cancel::No as u8),
            aborted: AtomicBool::new(false),
            retries: AtomicU8::new(0),
            generation: AtomicU8::new(0),
        })
    }

    /// Records the NVMe status and result (completion dwords 0 and 1) of the request's
    /// completion.
    pub(crate) fn set_completion(&self, status: Status, result: u64) {
        self.status.store(status.0, Ordering::Relaxed);
        self.result.store(result, Ordering::Relaxed);
    }

    /// The NVMe status of the last completion (success until the controller says else).
    pub(crate) fn status(&self) -> Status {
        Status(self.status.load(Ordering::Relaxed))
    }

    /// The result of the last completion.
    pub(crate) fn result(&self) -> u64 {
        self.result.load(Ordering::Relaxed)
    }

    /// Sets the command a driver-private request carries.
    pub(crate) fn set_passthru(&self, cmd: Option<Command>) {
        *self.passthru.lock() = cmd;
    }

    /// Marks the request as taken back by recovery.
    pub(crate) fn cancel(&self, how: Cancel) {
        self.cancel.store(how as u8, Ordering::Relaxed);
    }

    /// The generation of the request's current submission.
    pub(crate) fn generation(&self) -> Generation {
        Generation::from_raw(self.generation.load(Ordering::Relaxed))
    }

    /// Advances the generation for a new submission and returns it.
    pub(crate) fn next_generation(&self) -> Generation {
        let next = self.generation().next();
        self.generation.store(next.raw(), Ordering::Relaxed);
        next
    }
}

/// The command identifier of the current submission of `rq`.
pub(crate) fn command_id(rq: &Request<IoOps>) -> Option<u16> {
    cid::encode(rq.tag(), rq.data().generation())
}

/// The blk-mq operations of NVMe namespaces (implemented in [`crate::nvme::block_ops`]).
pub(crate) struct IoOps;
