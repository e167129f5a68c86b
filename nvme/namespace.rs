// SPDX-License-Identifier: GPL-2.0

//! An NVMe namespace as a disk.

use core::sync::atomic::{AtomicU32, Ordering};

use crate::nvme::spec::identify::IdentifyNamespace;

/// What the I/O path needs to know about a namespace.
///
/// The logical block size changes when the namespace is formatted; the disk's queue is
/// frozen meanwhile (see `disks.rs`), so no request sees the change half-way.
#[derive(Debug)]
pub(crate) struct Namespace {
    nsid: u32,
    lba_shift: AtomicU32,
    write_zeroes: bool,
    discard: bool,
}

impl Namespace {
    /// Namespace `nsid` as Identify Namespace described it; `oncs` is the controller's
    /// Optional NVM Command Support (bit 2 Dataset Management, bit 3 Write Zeroes).
    pub(crate) fn new(nsid: u32, id: &IdentifyNamespace, oncs: u16) -> Self {
        Self {
            nsid,
            lba_shift: AtomicU32::new(u32::from(id.lba_shift)),
            write_zeroes: oncs & (1 << 3) != 0,
            discard: oncs & (1 << 2) != 0,
        }
    }

    /// Whether Dataset Management (deallocate) is supported.
    pub(crate) fn discard(&self) -> bool {
        self.discard
    }

    /// The namespace ID.
    pub(crate) fn nsid(&self) -> u32 {
        self.nsid
    }

    /// log2 of the logical block size (9 to 12 for the block layer).
    pub(crate) fn lba_shift(&self) -> u32 {
        self.lba_shift.load(Ordering::Relaxed)
    }

    /// Switches to the logical block size of a new format. Only call this while the disk's
    /// queue is frozen.
    pub(crate) fn set_lba_shift(&self, shift: u8) {
        self.lba_shift.store(u32::from(shift), Ordering::Relaxed);
    }

    /// Whether Write Zeroes is supported.
    pub(crate) fn write_zeroes(&self) -> bool {
        self.write_zeroes
    }
}
