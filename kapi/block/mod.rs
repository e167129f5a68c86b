// SPDX-License-Identifier: GPL-2.0

//! Block devices, in the shape of upstream `kernel::block`.
//!
//! 6.12's `kernel::block::mq` has no per-request or per-tag-set data, no timeout, no
//! completion from an interrupt and no DMA mapping of requests; this module provides the
//! multi-queue block layer interface a hardware driver needs.
//!
//! C header: [`include/linux/blk-mq.h`](srctree/include/linux/blk-mq.h)

pub(crate) mod mq;

/// Completes the closes of block devices (and other files) that kernel threads deferred
/// (`flush_delayed_fput`): e.g. the partition scan of a just added disk, whose close would
/// otherwise keep the disk counted as open for a moment.
pub(crate) fn flush_deferred_closes() {
    // SAFETY: no preconditions; may sleep, as every caller can.
    unsafe { crate::kapi::bindings::sys::flush_delayed_fput() }
}

/// A block layer status (`blk_status_t`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct BlkStatus(u8);

impl BlkStatus {
    /// Success.
    pub(crate) const OK: Self = Self(0);
    /// The operation is not supported.
    pub(crate) const NOTSUPP: Self = Self(1);
    /// The request timed out.
    pub(crate) const TIMEOUT: Self = Self(2);
    /// No space left on the device.
    pub(crate) const NOSPC: Self = Self(3);
    /// A transport error.
    pub(crate) const TRANSPORT: Self = Self(4);
    /// A permanent target error.
    pub(crate) const TARGET: Self = Self(5);
    /// A medium error.
    pub(crate) const MEDIUM: Self = Self(7);
    /// A protection information error.
    pub(crate) const PROTECTION: Self = Self(8);
    /// A temporary resource shortage: the block layer retries.
    pub(crate) const RESOURCE: Self = Self(9);
    /// A generic I/O error.
    pub(crate) const IOERR: Self = Self(10);
    /// The request cannot be issued now: the device's resources are exhausted.
    pub(crate) const DEV_RESOURCE: Self = Self(13);
    /// The device is offline.
    pub(crate) const OFFLINE: Self = Self(16);
    /// An invalid request.
    pub(crate) const INVAL: Self = Self(19);

    /// A status the block layer returned.
    pub(crate) fn from_raw(raw: u8) -> Self {
        Self(raw)
    }

    /// The raw `blk_status_t`.
    pub(crate) fn raw(self) -> u8 {
        self.0
    }

    /// Whether this is success.
    pub(crate) fn is_ok(self) -> bool {
        self.0 == 0
    }
}
