// SPDX-License-Identifier: GPL-2.0

//! Submission queue entries (NVM Express Base Specification 2.0, section 4.2) and the
//! commands the driver builds.
//!
//! A [`Command`] is kept as sixteen command dwords and encoded to the 64 little-endian bytes
//! the controller fetches with [`Command::to_bytes`], so the same code is correct on any
//! host byte order and needs no `unsafe` transmutes.

/// Size of a submission queue entry in bytes (`2 ^ IOSQES` with IOSQES = 6).
pub const SQE_SIZE: usize = 64;

/// log2 of [`SQE_SIZE`], the value for CC.IOSQES.
pub const SQE_SIZE_LOG2: u8 = 6;

/// Admin command opcodes.
pub mod admin {
    /// Delete I/O Submission Queue.
    pub const DELETE_SQ: u8 = 0x00;
    /// Create I/O Submission Queue.
    pub const CREATE_SQ: u8 = 0x01;
    /// Get Log Page.
    pub const GET_LOG_PAGE: u8 = 0x02;
    /// Delete I/O Completion Queue.
    pub const DELETE_CQ: u8 = 0x04;
    /// Create I/O Completion Queue.
    pub const CREATE_CQ: u8 = 0x05;
    /// Identify.
    pub const IDENTIFY: u8 = 0x06;
    /// Abort.
    pub const ABORT: u8 = 0x08;
    /// Set Features.
    pub const SET_FEATURES: u8 = 0x09;
    /// Get Features.
    pub const GET_FEATURES: u8 = 0x0a;
    /// Asynchronous Event Request.
    pub const ASYNC_EVENT: u8 = 0x0c;
    /// Namespace Attachment.
    pub const NS_ATTACH: u8 = 0x15;
    /// Namespace Management.
    pub const NS_MGMT: u8 = 0x0d;
    /// Format NVM.
    pub const FORMAT_NVM: u8 = 0x80;
    /// Sanitize.
    pub const SANITIZE: u8 = 0x84;
    /// Virtualization Management.
    pub const VIRT_MGMT: u8 = 0x1c;
    /// Doorbell Buffer Config.
    pub const DBBUF: u8 = 0x7c;
}

/// NVM command set I/O opcodes.
pub mod io {
    /// Flush.
    pub const FLUSH: u8 = 0x00;
    /// Write.
    pub const WRITE: u8 = 0x01;
    /// Read.
    pub const READ: u8 = 0x02;
    /// Write Zeroes.
    pub const WRITE_ZEROES: u8 = 0x08;
    /// Dataset Management (deallocate).
    pub const DSM: u8 = 0x09;
}

/// CDW0 bits 15:14, PSDT: how the data (and metadata) pointers are to be read.
const PSDT_MASK: u32 = 0b11 << 14;
/// PSDT 01b: the data pointer is an SGL descriptor, the metadata pointer an address.
const PSDT_SGL: u32 = 0b01 << 14;

/// CDW12 bit 30 of Read/Write: Force Unit Access.
pub const RW_FUA: u32 = 1 << 30;

/// Identify CNS values.
pub mod cns {
    /// Identify Namespace (NVM command set) for CDW1.NSID.
    pub const NAMESPACE: u8 = 0x00;
    /// Identify Controller.
    pub const CONTROLLER: u8 = 0x01;
    /// Active Namespace ID list, IDs greater than CDW1.NSID.
    pub const ACTIVE_NS_LIST: u8 = 0x02;
    /// Allocated Namespace ID list, IDs greater than CDW1.NSID.
    pub const ALLOCATED_NS_LIST: u8 = 0x10;
    /// Identify Namespace for an allocated (possibly not attached) CDW1.NSID.
    pub const ALLOCATED_NAMESPACE: u8 = 0x11;
    /// Controller List of controllers attached to CDW1.NSID, IDs from CDW10.CNTID.
    pub const NS_ATTACHED_CTRL_LIST: u8 = 0x12;
    /// Primary Controller Capabilities.
    pub const PRIMARY_CTRL_CAPS: u8 = 0x14;
    /// Secondary Controller List, controller IDs from CDW10.CNTID.
    pub const SECONDARY_CTRL_LIST: u8 = 0x15;
}

/// Feature identifiers.
pub mod feature {
    /// Number of Queues.
    pub const NUM_QUEUES: u8 = 0x07;
    /// Asynchronous Event Configuration.
    pub const ASYNC_EVENT_CONFIG: u8 = 0x0b;
}

/// A submission queue entry: sixteen command dwords.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Command {
    /// Command dwords 0 to 15.
    pub dw: [u32; 16],
}

impl Command {
    /// A command with opcode `opcode` and all other fields zero.
    pub fn new(opcode: u8) -> Self {
        let mut c = Self::default();
        c.dw[0] = u32::from(opcode);
        c
    }

    /// The opcode (CDW0 bits 7:0).
    pub fn opcode(&self) -> u8 {
        self.dw[0] as u8
    }

    /// Sets the command identifier (CDW0 bits 31:16).
    #[must_use]
    pub fn with_cid(mut self, cid: u16) -> Self {
        self.dw[0] = (self.dw[0] & 0xffff) | (u32::from(cid) << 16);
        self
    }

    /// The command identifier.
    pub fn cid(&self) -> u16 {
        (self.dw[0] >> 16) as u16
    }

    /// Sets the namespace identifier (CDW1).
    #[must_use]
    pub fn with_nsid(mut self, nsid: u32) -> Self {
        self.dw[1] = nsid;
        self
    }

    /// The namespace ID (CDW1).
    pub fn nsid(&self) -> u32 {
        self.dw[1]
    }

    /// Sets the data pointer: PRP entry 1 (CDW6-7) and PRP entry 2 (CDW8-9).
    #[must_use]
    pub fn with_prps(mut self, prp1: u64, prp2: u64) -> Self {
        self.dw[6] = prp1 as u32;
        self.dw[7] = (prp1 >> 32) as u32;
        self.dw[8] = prp2 as u32;
        self.dw[9] = (prp2 >> 32) as u32;
        self
    }

    /// Describes the data with SGL descriptor `desc` (CDW0.PSDT = 01b: SGLs, metadata
    /// pointer an address) instead of PRP entries.
    #[must_use]
    pub fn with_sgl(mut self, desc: super::sgl::Descriptor) -> Self {
        self.dw[0] = (self.dw[0] & !PSDT_MASK) | PSDT_SGL;
        self.dw[6..10].copy_from_slice(&desc.to_dwords());
        self
    }

    /// Whether the data is described by an SGL (CDW0.PSDT is not 00b).
    pub fn uses_sgl(&self) -> bool {
        self.dw[0] & PSDT_MASK != 0
    }

    /// PRP entry 1.
    pub fn prp1(&self) -> u64 {
        u64::from(self.dw[6]) | (u64::from(self.dw[7]) << 32)
    }

    /// PRP entry 2.
    pub fn prp2(&self) -> u64 {
        u64::from(self.dw[8]) | (u64::from(self.dw[9]) << 32)
    }

    /// Sets command dword `n` (10 to 15).
    #[must_use]
    pub fn with_cdw(mut self, n: usize, value: u32) -> Self {
        if (10..16).contains(&n) {
            self.dw[n] = value;
        }
        self
    }

    /// Encodes the entry as the controller reads it: 64 little-endian bytes.
    pub fn to_bytes(self) -> [u8; SQE_SIZE] {
        let mut out = [0u8; SQE_SIZE];
        for (chunk, dw) in out.chunks_exact_mut(4).zip(self.dw.iter()) {
            chunk.copy_from_slice(&dw.to_le_bytes());
        }
        out
    }

    /// Decodes an entry from 64 little-endian bytes.
    pub fn from_bytes(bytes: &[u8; SQE_SIZE]) -> Self {
        let mut c = Self::default();
        for (dw, chunk) in c.dw.iter_mut().zip(bytes.chunks_exact(4)) {
            *dw = u32::from_le_bytes([chunk[0], chunk[1], chunk[2], chunk[3]]);
        }
        c
    }

    /// Identify with CNS `cns` for namespace `nsid` into the 4 KiB buffer at `prp1`.
    pub fn identify(cns: u8, nsid: u32, prp1: u64) -> Self {
        Self::new(admin::IDENTIFY)
            .with_nsid(nsid)
            .with_prps(prp1, 0)
            .with_cdw(10, u32::from(cns))
    }

    /// Identify with CNS `cns` for namespace `nsid` and controller IDs from `cntid` (the
    /// lists of controllers and secondary controllers) into the 4 KiB buffer at `prp1`.
    pub fn identify_from(cns: u8, nsid: u32, cntid: u16, prp1: u64) -> Self {
        Self::identify(cns, nsid, prp1).with_cdw(10, u32::from(cns) | (u32::from(cntid) << 16))
    }

    /// Set Features `fid` with value `cdw11`.
    pub fn set_features(fid: u8, cdw11: u32) -> Self {
        Self::new(admin::SET_FEATURES)
            .with_cdw(10, u32::from(fid))
            .with_cdw(11, cdw11)
    }

    /// Asynchronous Event Request: completes when the controller has an event to report.
    pub fn async_event() -> Self {
        Self::new(admin::ASYNC_EVENT)
    }

    /// Abort of command `cid` on submission queue `sqid`.
    pub fn abort(sqid: u16, cid: u16) -> Self {
        Self::new(admin::ABORT).with_cdw(10, u32::from(sqid) | (u32::from(cid) << 16))
    }

    /// Get Log Page `lid` (namespace `nsid`, all-ones for the controller) of `bytes` bytes
    /// (a multiple of 4, at most 4 KiB here) into the buffer at `prp1`. Reading clears the
    /// event that pointed at the page (RAE = 0).
    pub fn get_log_page(lid: u8, nsid: u32, bytes: u32, prp1: u64) -> Option<Self> {
        if bytes == 0 || bytes & 3 != 0 || bytes > 4096 {
            return None;
        }
        let numd = bytes / 4 - 1;
        Some(
            Self::new(admin::GET_LOG_PAGE)
                .with_nsid(nsid)
                .with_prps(prp1, 0)
                .with_cdw(10, u32::from(lid) | ((numd & 0xffff) << 16))
                .with_cdw(11, numd >> 16),
        )
    }

    /// Set Features Number of Queues: request `sq` I/O submission and `cq` I/O completion
    /// queues (both at least 1). The completion's DW0 carries what was allocated.
    pub fn set_num_queues(sq: u16, cq: u16) -> Self {
        let nsqr = u32::from(sq.max(1) - 1);
        let ncqr = u32::from(cq.max(1) - 1);
        Self::set_features(feature::NUM_QUEUES, nsqr | (ncqr << 16))
    }
}

impl Command {
    /// Read (`write == false`) or Write of `blocks` logical blocks (1 to 65536) at `slba`
    /// of namespace `nsid`, with the data described by `prp1`/`prp2`.
    pub fn read_write(
        write: bool,
        nsid: u32,
        slba: u64,
        blocks: u32,
        fua: bool,
        prp1: u64,
        prp2: u64,
    ) -> Option<Self> {
        let nlb = blocks.checked_sub(1).filter(|n| *n <= 0xffff)?;
        let opcode = if write { io::WRITE } else { io::READ };
        Some(
            Self::new(opcode)
                .with_nsid(nsid)
                .with_prps(prp1, prp2)
                .with_cdw(10, slba as u32)
                .with_cdw(11, (slba >> 32) as u32)
                .with_cdw(12, nlb | if fua { RW_FUA } else { 0 }),
        )
    }

    /// Flush the volatile write cache of namespace `nsid`.
    pub fn flush(nsid: u32) -> Self {
        Self::new(io::FLUSH).with_nsid(nsid)
    }

    /// Write Zeroes over `blocks` logical blocks (1 to 65536) at `slba`.
    pub fn write_zeroes(nsid: u32, slba: u64, blocks: u32) -> Option<Self> {
        let nlb = blocks.checked_sub(1).filter(|n| *n <= 0xffff)?;
        Some(
            Self::new(io::WRITE_ZEROES)
                .with_nsid(nsid)
                .with_cdw(10, slba as u32)
                .with_cdw(11, (slba >> 32) as u32)
                .with_cdw(12, nlb),
        )
    }

    /// Dataset Management with the Deallocate attribute over `ranges` ranges (1 to 256)
    /// described at `prp1` (see [`dsm_range`]).
    pub fn dsm_deallocate(nsid: u32, ranges: u32, prp1: u64) -> Option<Self> {
        let nr = ranges.checked_sub(1).filter(|n| *n <= 0xff)?;
        Some(
            Self::new(io::DSM)
                .with_nsid(nsid)
                .with_prps(prp1, 0)
                .with_cdw(10, nr)
                // AD: attribute deallocate.
                .with_cdw(11, 1 << 2),
        )
    }

    /// Create I/O Completion Queue `qid` of `entries` entries at `prp1` (physically
    /// contiguous), interrupting on vector `vector`, or without interrupts (a polled
    /// queue) for `None`.
    pub fn create_cq(qid: u16, entries: u16, prp1: u64, vector: Option<u16>) -> Self {
        // PC (bit 0), IEN (bit 1), IV (bits 31:16).
        let cdw11 = match vector {
            Some(v) => 0b11 | (u32::from(v) << 16),
            None => 0b1,
        };
        Self::new(admin::CREATE_CQ)
            .with_prps(prp1, 0)
            .with_cdw(10, u32::from(qid) | (u32::from(entries - 1) << 16))
            .with_cdw(11, cdw11)
    }

    /// Create I/O Submission Queue `qid` of `entries` entries at `prp1` (physically
    /// contiguous), completing to completion queue `cqid`.
    pub fn create_sq(qid: u16, entries: u16, prp1: u64, cqid: u16) -> Self {
        Self::new(admin::CREATE_SQ)
            .with_prps(prp1, 0)
            .with_cdw(10, u32::from(qid) | (u32::from(entries - 1) << 16))
            // PC (bit 0), medium priority, CQID (bits 31:16).
            .with_cdw(11, 0b1 | (u32::from(cqid) << 16))
    }
}

/// One Dataset Management range (16 bytes) as two little-endian `u64` values: context
/// attributes (0) and `blocks` in the low dword and high dword, then the starting LBA.
pub fn dsm_range(slba: u64, blocks: u32) -> [u64; 2] {
    [u64::from(blocks) << 32, slba]
}

impl Command {
    /// Doorbell Buffer Config: shadow doorbells at `shadow` and event indexes at `eventidx`
    /// (one page each).
    pub fn dbbuf_config(shadow: u64, eventidx: u64) -> Self {
        Self::new(admin::DBBUF).with_prps(shadow, eventidx)
    }
}

/// Whether a doorbell update from `old` to `new` passed the controller's event index, i.e.
/// whether the host must still write the MMIO doorbell with shadow doorbells in use (the
/// virtio-style test the NVMe spec describes).
pub fn dbbuf_need_event(event_idx: u16, new: u16, old: u16) -> bool {
    new.wrapping_sub(event_idx).wrapping_sub(1) < new.wrapping_sub(old)
}

/// Decodes the DW0 of a Set Features Number of Queues completion into the number of I/O
/// submission and completion queues allocated (both 1's based).
pub fn num_queues_allocated(dw0: u32) -> (u32, u32) {
    ((dw0 & 0xffff) + 1, (dw0 >> 16) + 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn abort_and_log_page_encoding() {
        let a = Command::abort(3, 0x1234);
        assert_eq!(a.opcode(), admin::ABORT);
        assert_eq!(a.dw[10], 0x1234_0003);
        let l = Command::get_log_page(0x04, 0xffff_ffff, 4096, 0x9000).expect("log page");
        assert_eq!(l.opcode(), admin::GET_LOG_PAGE);
        assert_eq!(l.dw[1], 0xffff_ffff);
        assert_eq!(l.dw[10], 0x04 | (1023 << 16));
        assert_eq!(l.dw[11], 0);
        assert_eq!(Command::get_log_page(0x02, 0, 6, 0), None);
        assert_eq!(Command::get_log_page(0x02, 0, 0, 0), None);
        assert_eq!(Command::get_log_page(0x02, 0, 8192, 0), None);
        assert_eq!(Command::async_event().opcode(), admin::ASYNC_EVENT);
    }

    #[test]
    fn identify_controller_encoding() {
        let c = Command::identify(cns::CONTROLLER, 0, 0x1234_5678_9abc_d000).with_cid(7);
        let b = c.to_bytes();
        assert_eq!(b[0], admin::IDENTIFY);
        assert_eq!(u16::from_le_bytes([b[2], b[3]]), 7);
        assert_eq!(&b[24..32], &0x1234_5678_9abc_d000u64.to_le_bytes());
        assert_eq!(&b[32..40], &[0; 8]);
        assert_eq!(b[40], cns::CONTROLLER);
        assert_eq!(Command::from_bytes(&b), c);
        assert_eq!(c.opcode(), admin::IDENTIFY);
        assert_eq!(c.cid(), 7);
        assert_eq!(c.prp1(), 0x1234_5678_9abc_d000);
    }

    #[test]
    fn cid_does_not_disturb_opcode_or_flags() {
        let c = Command::new(0x02).with_cid(0xffff).with_cid(0x0102);
        assert_eq!(c.dw[0], 0x0102_0002);
    }

    #[test]
    fn number_of_queues_is_zero_based() {
        let c = Command::set_num_queues(4, 2);
        assert_eq!(c.dw[10], u32::from(feature::NUM_QUEUES));
        assert_eq!(c.dw[11], 0x0001_0003);
        assert_eq!(Command::set_num_queues(0, 0).dw[11], 0);
        assert_eq!(num_queues_allocated(0x0001_0003), (4, 2));
    }

    #[test]
    fn read_write_encoding() {
        let c =
            Command::read_write(true, 1, 0x1_0000_0010, 8, true, 0x1000, 0x2000).expect("valid");
        assert_eq!(c.opcode(), io::WRITE);
        assert_eq!(c.dw[1], 1);
        assert_eq!((c.dw[10], c.dw[11]), (0x10, 0x1));
        assert_eq!(c.dw[12], 7 | RW_FUA);
        assert_eq!((c.prp1(), c.prp2()), (0x1000, 0x2000));
        let r = Command::read_write(false, 2, 0, 65536, false, 0, 0).expect("valid");
        assert_eq!((r.opcode(), r.dw[12]), (io::READ, 0xffff));
        assert_eq!(Command::read_write(false, 2, 0, 0, false, 0, 0), None);
        assert_eq!(Command::read_write(false, 2, 0, 65537, false, 0, 0), None);
        assert_eq!(Command::write_zeroes(1, 5, 2).map(|c| c.dw[12]), Some(1));
        assert_eq!(Command::flush(3), Command::new(io::FLUSH).with_nsid(3));
    }

    #[test]
    fn sgl_data_pointer() {
        let prp = Command::read_write(false, 1, 0, 256, false, 0x1000, 0x2000).expect("valid");
        assert!(!prp.uses_sgl());
        let desc = super::super::sgl::Descriptor::data_block(0x1_2345_6000, 128 * 1024);
        let c = prp.with_sgl(desc).with_cid(0xbeef);
        assert!(c.uses_sgl());
        // PSDT 01b in CDW0 bits 15:14; opcode and CID untouched.
        assert_eq!(c.dw[0], u32::from(io::READ) | (1 << 14) | (0xbeef << 16));
        assert_eq!(&c.dw[6..10], &[0x2345_6000, 1, 128 * 1024, 0]);
        assert_eq!(c.dw[12], 255, "the rest of the command stays");
    }

    #[test]
    fn dsm_encoding() {
        let c = Command::dsm_deallocate(1, 1, 0x5000).expect("valid");
        assert_eq!(c.opcode(), io::DSM);
        assert_eq!((c.dw[10], c.dw[11]), (0, 4));
        assert_eq!(c.prp1(), 0x5000);
        assert_eq!(Command::dsm_deallocate(1, 0, 0), None);
        assert_eq!(Command::dsm_deallocate(1, 257, 0), None);
        // 16 bytes little-endian: cattr 0, nlb 8, slba 0x1234.
        let r = dsm_range(0x1234, 8);
        let mut bytes = [0u8; 16];
        bytes[..8].copy_from_slice(&r[0].to_le_bytes());
        bytes[8..].copy_from_slice(&r[1].to_le_bytes());
        assert_eq!(&bytes[..8], &[0, 0, 0, 0, 8, 0, 0, 0]);
        assert_eq!(&bytes[8..], &[0x34, 0x12, 0, 0, 0, 0, 0, 0]);
    }

    #[test]
    fn shadow_doorbell_event_test() {
        // The controller asked to be told once the tail passes 5.
        assert!(dbbuf_need_event(5, 6, 5));
        assert!(dbbuf_need_event(5, 8, 3));
        assert!(!dbbuf_need_event(5, 5, 4));
        assert!(!dbbuf_need_event(9, 8, 6));
        // Wrap-around of the 16-bit indexes.
        assert!(dbbuf_need_event(0xffff, 1, 0xfffe));
        assert_eq!(Command::dbbuf_config(0x1000, 0x2000).opcode(), admin::DBBUF);
    }

    #[test]
    fn create_queue_encoding() {
        let cq = Command::create_cq(3, 256, 0xabc000, Some(2));
        assert_eq!(cq.opcode(), admin::CREATE_CQ);
        assert_eq!(cq.dw[10], 3 | (255 << 16));
        assert_eq!(cq.dw[11], 0b11 | (2 << 16));
        // A polled completion queue: physically contiguous, no interrupts.
        assert_eq!(Command::create_cq(4, 256, 0xabc000, None).dw[11], 0b1);
        let sq = Command::create_sq(3, 256, 0xdef000, 3);
        assert_eq!(sq.dw[10], 3 | (255 << 16));
        assert_eq!(sq.dw[11], 1 | (3 << 16));
        assert_eq!(sq.prp1(), 0xdef000);
    }

    #[test]
    fn only_command_specific_dwords_are_settable() {
        let c = Command::new(1).with_cdw(9, 5).with_cdw(16, 5);
        assert_eq!(c, Command::new(1));
    }
}
