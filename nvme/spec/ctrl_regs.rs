// SPDX-License-Identifier: GPL-2.0

//! NVMe controller registers (NVM Express Base Specification 2.0, section 3.1.4) and the
//! arithmetic derived from them.

use core::fmt;

/// Size of the controller register block at the start of BAR0, up to the first doorbell.
pub const REGS_SIZE: usize = 0x1000;

/// Offset of the first doorbell (admin submission queue tail) in BAR0.
pub const DOORBELL_BASE: usize = 0x1000;

register!(
    /// CAP: Controller Capabilities.
    Cap @ 0x00: u64 {
        /// MQES: maximum individual queue size, 0's based.
        15:0 mqes as u16;
        /// CQR: I/O queues must be physically contiguous.
        16:16 cqr as bool;
        /// AMS: arbitration mechanisms supported beyond round robin.
        18:17 ams as u8;
        /// TO: worst-case time to become ready, in 500 ms units.
        31:24 to as u8;
        /// DSTRD: doorbell stride, as `4 << DSTRD` bytes.
        35:32 dstrd as u8;
        /// NSSRS: NVM subsystem reset supported.
        36:36 nssrs as bool;
        /// CSS: command sets supported (bit 0 NVM, bit 6 I/O command sets, bit 7 admin only).
        44:37 css as u8;
        /// BPS: boot partitions supported.
        45:45 bps as bool;
        /// MPSMIN: minimum host memory page size, as `2 ^ (12 + MPSMIN)`.
        51:48 mpsmin as u8;
        /// MPSMAX: maximum host memory page size, as `2 ^ (12 + MPSMAX)`.
        55:52 mpsmax as u8;
        /// CMBS: controller memory buffer supported.
        57:57 cmbs as bool;
    }
);

impl Cap {
    /// Worst-case time for CSTS.RDY to follow CC.EN, in milliseconds.
    pub fn timeout_ms(self) -> u32 {
        u32::from(self.to()) * 500
    }

    /// Distance between consecutive doorbell registers, in bytes.
    pub fn doorbell_stride(self) -> usize {
        4usize << self.dstrd()
    }

    /// Maximum number of entries of one queue (MQES is 0's based).
    pub fn max_queue_entries(self) -> u32 {
        u32::from(self.mqes()) + 1
    }

    /// Smallest memory page size the controller supports, in bytes.
    pub fn min_page_size(self) -> usize {
        1usize << (12 + self.mpsmin())
    }

    /// Whether the controller supports the NVM command set.
    pub fn supports_nvm(self) -> bool {
        self.css() & 1 != 0
    }
}

register!(
    /// VS: Version.
    Vs @ 0x08: u32 {
        /// TER: tertiary version number.
        7:0 ter as u8;
        /// MNR: minor version number.
        15:8 mnr as u8;
        /// MJR: major version number.
        31:16 mjr as u16;
    }
);

impl fmt::Display for Vs {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}.{}", self.mjr(), self.mnr(), self.ter())
    }
}

register!(
    /// INTMS: Interrupt Mask Set (pin-based and MSI interrupts only).
    Intms @ 0x0c: u32 {
        /// IVMS: one bit per interrupt vector to mask.
        31:0 ivms / set_ivms as u32;
    }
);

register!(
    /// INTMC: Interrupt Mask Clear (pin-based and MSI interrupts only).
    Intmc @ 0x10: u32 {
        /// IVMC: one bit per interrupt vector to unmask.
        31:0 ivmc / set_ivmc as u32;
    }
);

register!(
    /// CC: Controller Configuration.
    Cc @ 0x14: u32 {
        /// EN: enable.
        0:0 en / set_en as bool;
        /// CSS: I/O command set selected (0 = NVM).
        6:4 css / set_css as u8;
        /// MPS: host memory page size, as `2 ^ (12 + MPS)`.
        10:7 mps / set_mps as u8;
        /// AMS: arbitration mechanism selected.
        13:11 ams / set_ams as u8;
        /// SHN: shutdown notification (1 = normal, 2 = abrupt).
        15:14 shn / set_shn as u8;
        /// IOSQES: I/O submission queue entry size, as `2 ^ IOSQES` bytes.
        19:16 iosqes / set_iosqes as u8;
        /// IOCQES: I/O completion queue entry size, as `2 ^ IOCQES` bytes.
        23:20 iocqes / set_iocqes as u8;
    }
);

/// CC.SHN value requesting a normal shutdown.
pub const CC_SHN_NORMAL: u8 = 1;

register!(
    /// CSTS: Controller Status.
    Csts @ 0x1c: u32 {
        /// RDY: ready.
        0:0 rdy as bool;
        /// CFS: controller fatal status.
        1:1 cfs as bool;
        /// SHST: shutdown status (0 normal operation, 1 in progress, 2 complete).
        3:2 shst as u8;
        /// NSSRO: NVM subsystem reset occurred.
        4:4 nssro as bool;
        /// PP: processing paused.
        5:5 pp as bool;
    }
);

/// CSTS.SHST value reporting that shutdown processing is complete.
pub const CSTS_SHST_COMPLETE: u8 = 2;

impl Csts {
    /// Whether the read came back as all ones: the function is gone (surprise removal, a
    /// failed link) or not responding.
    pub fn is_all_ones(self) -> bool {
        self.0 == u32::MAX
    }
}

register!(
    /// AQA: Admin Queue Attributes.
    Aqa @ 0x24: u32 {
        /// ASQS: admin submission queue size, 0's based.
        11:0 asqs / set_asqs as u16;
        /// ACQS: admin completion queue size, 0's based.
        27:16 acqs / set_acqs as u16;
    }
);

register!(
    /// ASQ: Admin Submission Queue Base Address.
    Asq @ 0x28: u64 {
        /// ASQB: base address (page aligned).
        63:0 asqb / set_asqb as u64;
    }
);

register!(
    /// ACQ: Admin Completion Queue Base Address.
    Acq @ 0x30: u64 {
        /// ACQB: base address (page aligned).
        63:0 acqb / set_acqb as u64;
    }
);

/// Which doorbell of a queue pair.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Doorbell {
    /// The submission queue tail doorbell.
    SqTail,
    /// The completion queue head doorbell.
    CqHead,
}

/// Byte offset in BAR0 of the doorbell `which` of queue `qid`, for a controller whose
/// doorbell stride is `stride` bytes. Returns `None` on arithmetic overflow.
///
/// # Examples
///
/// ```
/// use rnvme_spec::spec::ctrl_regs::{doorbell_offset, Doorbell};
/// assert_eq!(doorbell_offset(0, Doorbell::SqTail, 4), Some(0x1000));
/// assert_eq!(doorbell_offset(0, Doorbell::CqHead, 4), Some(0x1004));
/// assert_eq!(doorbell_offset(3, Doorbell::CqHead, 16), Some(0x1000 + 7 * 16));
/// ```
pub fn doorbell_offset(qid: u16, which: Doorbell, stride: usize) -> Option<usize> {
    let index = 2 * usize::from(qid)
        + match which {
            Doorbell::SqTail => 0,
            Doorbell::CqHead => 1,
        };
    index.checked_mul(stride)?.checked_add(DOORBELL_BASE)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// CAP as QEMU 10.0's emulated NVMe controller reports it (read in the test VM): MQES
    /// 0x7ff, CQR, TO 15, CSS NVM + I/O command sets, MPSMAX 4.
    const QEMU_CAP: u64 = 0x0040_0820_0f01_07ff;

    #[test]
    fn cap_decodes_qemu_controller() {
        let cap = Cap(QEMU_CAP);
        assert_eq!(cap.mqes(), 0x7ff);
        assert_eq!(cap.max_queue_entries(), 2048);
        assert!(cap.cqr());
        assert_eq!(cap.to(), 0x0f);
        assert_eq!(cap.timeout_ms(), 7500);
        assert_eq!(cap.dstrd(), 0);
        assert_eq!(cap.doorbell_stride(), 4);
        assert!(!cap.nssrs());
        assert_eq!(cap.css(), 0x41);
        assert!(cap.supports_nvm());
        assert_eq!(cap.mpsmin(), 0);
        assert_eq!(cap.min_page_size(), 4096);
        assert_eq!(cap.mpsmax(), 4);
    }

    #[test]
    fn vs_formats_as_dotted_version() {
        assert_eq!(std::format!("{}", Vs(0x0001_0400)), "1.4.0");
        assert_eq!(std::format!("{}", Vs(0x0002_0100)), "2.1.0");
    }

    #[test]
    fn cc_enable_value_matches_c_driver() {
        // The C driver writes CC = EN | CSS_NVM | MPS(4K) | AMS_RR | IOSQES 6 | IOCQES 4.
        let cc = Cc::default().set_en(true).set_iosqes(6).set_iocqes(4);
        assert_eq!(cc.0, 0x0046_0001);
        let shutdown = cc.set_shn(CC_SHN_NORMAL);
        assert_eq!(shutdown.0, 0x0046_4001);
        assert_eq!(shutdown.shn(), CC_SHN_NORMAL);
    }

    #[test]
    fn csts_status_bits() {
        let csts = Csts(0b1001);
        assert!(csts.rdy());
        assert!(!csts.cfs());
        assert_eq!(csts.shst(), CSTS_SHST_COMPLETE);
        assert!(Csts(u32::MAX).is_all_ones());
        assert!(Csts(u32::MAX).cfs());
    }

    #[test]
    fn aqa_packs_both_sizes() {
        let aqa = Aqa::default().set_asqs(31).set_acqs(31);
        assert_eq!(aqa.0, 0x001f_001f);
        // ASQS is 12 bits wide: larger values are truncated, not spilled into ACQS.
        assert_eq!(Aqa::default().set_asqs(0x1fff).0, 0x0fff);
    }

    #[test]
    fn register_offsets_follow_the_spec() {
        assert_eq!(Cap::OFFSET, 0x00);
        assert_eq!(Vs::OFFSET, 0x08);
        assert_eq!(Intms::OFFSET, 0x0c);
        assert_eq!(Intmc::OFFSET, 0x10);
        assert_eq!(Cc::OFFSET, 0x14);
        assert_eq!(Csts::OFFSET, 0x1c);
        assert_eq!(Aqa::OFFSET, 0x24);
        assert_eq!(Asq::OFFSET, 0x28);
        assert_eq!(Acq::OFFSET, 0x30);
    }

    #[test]
    fn doorbells_overflow_is_reported() {
        assert_eq!(
            doorbell_offset(u16::MAX, Doorbell::CqHead, usize::MAX),
            None
        );
        assert_eq!(doorbell_offset(1, Doorbell::SqTail, 4), Some(0x1008));
    }
}
