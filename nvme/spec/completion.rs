// SPDX-License-Identifier: GPL-2.0

//! Completion queue entries (NVM Express Base Specification 2.0, section 4.6) and status
//! codes.

use core::fmt;

/// Size of a completion queue entry in bytes (`2 ^ IOCQES` with IOCQES = 4).
pub const CQE_SIZE: usize = 16;

/// log2 of [`CQE_SIZE`], the value for CC.IOCQES.
pub const CQE_SIZE_LOG2: u8 = 4;

/// Byte offset of the status field (with the phase tag in bit 0) in an entry.
pub const STATUS_OFFSET: usize = 14;

/// A completion queue entry.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Completion {
    /// Command specific result (DW0).
    pub result: u32,
    /// Command specific DW1.
    pub dw1: u32,
    /// Submission queue head pointer.
    pub sq_head: u16,
    /// Submission queue identifier.
    pub sq_id: u16,
    /// Identifier of the completed command.
    pub cid: u16,
    /// Phase tag (bit 0) and status field (bits 15:1).
    pub status: u16,
}

impl Completion {
    /// Decodes an entry from its 16 little-endian bytes.
    pub fn from_bytes(b: &[u8; CQE_SIZE]) -> Self {
        Self::from_dwords(core::array::from_fn(|i| {
            u32::from_le_bytes([b[4 * i], b[4 * i + 1], b[4 * i + 2], b[4 * i + 3]])
        }))
    }

    /// Decodes an entry from its four dwords (in CPU order).
    pub fn from_dwords(dw: [u32; CQE_SIZE / 4]) -> Self {
        Self {
            result: dw[0],
            dw1: dw[1],
            sq_head: dw[2] as u16,
            sq_id: (dw[2] >> 16) as u16,
            cid: dw[3] as u16,
            status: (dw[3] >> 16) as u16,
        }
    }

    /// Encodes the entry (for tests and device models).
    pub fn to_bytes(self) -> [u8; CQE_SIZE] {
        let mut b = [0u8; CQE_SIZE];
        b[0..4].copy_from_slice(&self.result.to_le_bytes());
        b[4..8].copy_from_slice(&self.dw1.to_le_bytes());
        b[8..10].copy_from_slice(&self.sq_head.to_le_bytes());
        b[10..12].copy_from_slice(&self.sq_id.to_le_bytes());
        b[12..14].copy_from_slice(&self.cid.to_le_bytes());
        b[14..16].copy_from_slice(&self.status.to_le_bytes());
        b
    }

    /// The phase tag.
    pub fn phase(&self) -> bool {
        self.status & 1 != 0
    }

    /// The status without the phase tag.
    pub fn status(&self) -> Status {
        Status(self.status >> 1)
    }
}

/// An NVMe status field (15 bits: SC, SCT, CRD, M, DNR), without the phase tag.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Status(pub u16);

/// Status code types.
pub mod sct {
    /// Generic command status.
    pub const GENERIC: u8 = 0;
    /// Command specific status.
    pub const COMMAND_SPECIFIC: u8 = 1;
    /// Media and data integrity errors.
    pub const MEDIA: u8 = 2;
    /// Path related status.
    pub const PATH: u8 = 3;
}

impl Status {
    /// Successful completion.
    pub const SUCCESS: Self = Self(0);

    /// Status code (SC).
    pub fn code(self) -> u8 {
        self.0 as u8
    }

    /// Status code type (SCT).
    pub fn code_type(self) -> u8 {
        ((self.0 >> 8) & 0x7) as u8
    }

    /// Do Not Retry.
    pub fn dnr(self) -> bool {
        self.0 & (1 << 14) != 0
    }

    /// Whether the command succeeded.
    pub fn is_success(self) -> bool {
        self.code() == 0 && self.code_type() == sct::GENERIC
    }
}

/// How often a failed I/O command is retried before its error is reported.
pub const MAX_RETRIES: u8 = 5;

impl Status {
    /// Whether an I/O command that completed with this status and was already retried
    /// `retries` times is sent again: errors without Do Not Retry are, up to
    /// [`MAX_RETRIES`] times (as the C driver does, e.g. for an aborted command).
    pub fn should_retry(self, retries: u8) -> bool {
        !self.is_success() && !self.dnr() && retries < MAX_RETRIES
    }
}

/// How the block layer should see the outcome of an I/O command.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BlockOutcome {
    /// Success.
    Ok,
    /// The command or one of its fields is not supported.
    NotSupported,
    /// The LBA range is outside the namespace.
    OutOfRange,
    /// The namespace is full (capacity exceeded).
    NoSpace,
    /// Unrecovered media error.
    Medium,
    /// End-to-end protection check failed.
    Protection,
    /// Any other error.
    IoError,
}

impl Status {
    /// Maps the status of an I/O command to its block layer outcome (like the C driver's
    /// `nvme_error_status`).
    pub fn block_outcome(self) -> BlockOutcome {
        if self.is_success() {
            return BlockOutcome::Ok;
        }
        match (self.code_type(), self.code()) {
            // Invalid opcode, invalid field, invalid namespace or format.
            (sct::GENERIC, 0x01 | 0x02 | 0x0b) => BlockOutcome::NotSupported,
            (sct::GENERIC, 0x80) => BlockOutcome::OutOfRange,
            (sct::GENERIC, 0x81) => BlockOutcome::NoSpace,
            // Write fault, unrecovered read error.
            (sct::MEDIA, 0x80 | 0x81) => BlockOutcome::Medium,
            // Guard, application tag and reference tag check errors.
            (sct::MEDIA, 0x82..=0x84) => BlockOutcome::Protection,
            _ => BlockOutcome::IoError,
        }
    }
}

impl fmt::Debug for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "Status(sct {:#x}, sc {:#04x}{})",
            self.code_type(),
            self.code(),
            if self.dnr() { ", dnr" } else { "" }
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retries_stop_at_dnr_and_at_the_limit() {
        // Command Abort Requested (generic 0x07), no DNR: retried up to the limit.
        let aborted = Status(0x07 << 1);
        assert!(aborted.should_retry(0));
        assert!(aborted.should_retry(MAX_RETRIES - 1));
        assert!(!aborted.should_retry(MAX_RETRIES));
        // The same with Do Not Retry set: never.
        assert!(!Status(aborted.0 | (1 << 14)).should_retry(0));
        assert!(!Status::SUCCESS.should_retry(0));
    }

    #[test]
    fn decodes_fields_little_endian() {
        let mut b = [0u8; CQE_SIZE];
        b[0] = 0x03;
        b[2] = 0x01; // result 0x0001_0003
        b[8] = 5; // sq head
        b[10] = 2; // sq id
        b[12] = 0x34;
        b[13] = 0x12; // cid
        b[14] = 0x03; // phase 1, sc 1
        b[15] = 0x82; // sct 1 (bit 9 of status) | dnr (bit 15)
        let c = Completion::from_bytes(&b);
        assert_eq!(c.result, 0x0001_0003);
        assert_eq!((c.sq_head, c.sq_id, c.cid), (5, 2, 0x1234));
        assert!(c.phase());
        assert_eq!(c.status().code(), 1);
        assert_eq!(c.status().code_type(), sct::COMMAND_SPECIFIC);
        assert!(c.status().dnr());
        assert!(!c.status().is_success());
        assert_eq!(Completion::from_bytes(&c.to_bytes()), c);
        // The same entry as the dwords a completion queue read gives (CPU order).
        let dw = [0x0001_0003, 0, 0x0002_0005, 0x8203_1234];
        assert_eq!(Completion::from_dwords(dw), c);
    }

    #[test]
    fn block_outcomes() {
        let st = |sct: u16, sc: u16| Status((sct << 8) | sc);
        assert_eq!(Status::SUCCESS.block_outcome(), BlockOutcome::Ok);
        assert_eq!(st(0, 0x02).block_outcome(), BlockOutcome::NotSupported);
        assert_eq!(st(0, 0x80).block_outcome(), BlockOutcome::OutOfRange);
        assert_eq!(st(0, 0x81).block_outcome(), BlockOutcome::NoSpace);
        assert_eq!(st(2, 0x81).block_outcome(), BlockOutcome::Medium);
        assert_eq!(st(2, 0x83).block_outcome(), BlockOutcome::Protection);
        assert_eq!(st(0, 0x06).block_outcome(), BlockOutcome::IoError);
        assert_eq!(st(1, 0x02).block_outcome(), BlockOutcome::IoError);
    }

    #[test]
    fn success_is_sc_and_sct_zero() {
        let c = Completion {
            status: 1,
            ..Default::default()
        };
        assert!(c.phase());
        assert!(c.status().is_success());
        assert_eq!(
            std::format!("{:?}", Status(0x4002)),
            "Status(sct 0x0, sc 0x02, dnr)"
        );
    }
}
