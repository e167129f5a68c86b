// SPDX-License-Identifier: GPL-2.0

//! An NVMe namespace as a disk.

use crate::spec::identify::IdentifyNamespace;

/// What the I/O path needs to know about a namespace.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Namespace {
    nsid: u32,
    id: IdentifyNamespace,
    write_zeroes: bool,
    discard: bool,
}

impl Namespace {
    /// Namespace `nsid` as Identify Namespace described it; `oncs` is the controller's
    /// Optional NVM Command Support (bit 2 Dataset Management, bit 3 Write Zeroes).
    pub(crate) fn new(nsid: u32, id: IdentifyNamespace, oncs: u16) -> Self {
        Self {
            nsid,
            id,
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
        u32::from(self.id.lba_shift)
    }

    /// Logical block size in bytes.
    pub(crate) fn block_size(&self) -> u32 {
        self.id.block_size()
    }

    /// Capacity in 512-byte sectors.
    pub(crate) fn capacity_sectors(&self) -> u64 {
        self.id.nsze << (self.lba_shift() - 9)
    }

    /// Whether Write Zeroes is supported.
    pub(crate) fn write_zeroes(&self) -> bool {
        self.write_zeroes
    }
}
