// SPDX-License-Identifier: GPL-2.0

//! Tracking the host memory a secondary controller writes (TP4159 "Track Memory Changes"),
//! reported through a Controller Data Queue (CDQ) that the primary controller owns.
//!
//! What libnvme defines is used as it defines it: the opcodes (Track Send 3Dh, Controller
//! Data Queue 45h), the Controller Data Queue feature (FID 21h: CDQID in CDW11, the head
//! pointer in CDW12), the command specific status codes (37h Invalid Controller Data Queue,
//! 38h Not Enough Resources, 3Bh Controller Data Queue Full), the Create fields (SEL, QT in
//! MOS, PC, CNTLID of the tracked controller, the size in dwords, the new CDQID in DW0) and
//! the Identify Controller fields from byte 570 (CMMRTD, NMMRTD, MINMRTG, MAXMRTG, TRATTR).
//!
//! **Provisional** (no public definition exists yet; `Documentation/lm-device.rst`,
//! "Tracking (provisional)", is the contract the test device and this module share): the
//! queue type of a memory change queue ([`QT_MEMORY_CHANGES`]), the entry format and its
//! phase tag ([`Entry`]), the overflow entry, the bit that starts and stops tracking
//! ([`TrackAction`]), the CDQID in Track Send's CDW11, the encoding of the granularity
//! (log2 of bytes) and of the range list (nvme-cli's pending `struct
//! nvme_lm_track_memory_changes_data`). Everything provisional is in this file.

use super::super::command::{admin, Command};

/// Track Send.
pub const TRACK_SEND: u8 = 0x3d;
/// Controller Data Queue.
pub const CONTROLLER_DATA_QUEUE: u8 = 0x45;
/// The Controller Data Queue feature (Set and Get Features).
pub const FID_CONTROLLER_DATA_QUEUE: u8 = 0x21;

/// Controller Data Queue SEL: create a queue.
const SEL_CREATE: u32 = 0;
/// Controller Data Queue SEL: delete a queue.
const SEL_DELETE: u32 = 1;
/// Track Send SEL: Track Memory Changes.
const SEL_TRACK_MEMORY: u32 = 1;
/// Create's PC bit (CDW11 bit 0): the queue memory is physically contiguous.
const CREATE_PC: u32 = 1;

/// The queue type of a memory change queue (provisional: from the vendor specific range
/// C0h-FFh, so that it cannot collide with a type the specification adds later).
pub const QT_MEMORY_CHANGES: u8 = 0xc0;

/// Bytes of one queue entry (provisional).
pub const ENTRY_SIZE: usize = 16;

/// The smallest queue: two entries, as the test device demands (provisional).
pub const MIN_QUEUE_DWORDS: u32 = 8;

/// The largest granularity exponent the driver accepts from a device, whatever it
/// advertises: 2 MiB.
pub const MAX_GRANULARITY_SHIFT: u8 = 21;

/// Command specific status codes of the tracking commands (status code type 1).
pub mod status {
    /// The CDQID names no Controller Data Queue.
    pub const INVALID_CDQ: u8 = 0x37;
    /// The controller has no resources for another queue or tracker.
    pub const NOT_ENOUGH_RESOURCES: u8 = 0x38;
    /// A Controller Data Queue became full: entries were lost.
    pub const CDQ_FULL: u8 = 0x3b;
}

/// Whether Track Send starts or stops tracking (MOS bit 0, provisional position; values of
/// nvme-cli's pending `enum nvme_lm_tact`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum TrackAction {
    /// Stop tracking.
    Stop = 0,
    /// Start tracking the ranges the data lists.
    Start = 1,
}

impl Command {
    /// Controller Data Queue, create: a memory change queue of `dwords` dwords at `prp1`
    /// (physically contiguous, 4 KiB aligned) for the changes of secondary controller
    /// `cntlid`. `None` for a size the queue format does not allow (a multiple of four
    /// dwords, at least [`MIN_QUEUE_DWORDS`]). The completion's DW0 bits 15:0 are the new
    /// queue's CDQID.
    pub fn cdq_create(cntlid: u16, prp1: u64, dwords: u32) -> Option<Self> {
        (dwords >= MIN_QUEUE_DWORDS && dwords & 3 == 0).then(|| {
            Self::new(CONTROLLER_DATA_QUEUE)
                .with_cdw(10, SEL_CREATE | (u32::from(QT_MEMORY_CHANGES) << 16))
                .with_cdw(11, CREATE_PC | (u32::from(cntlid) << 16))
                .with_cdw(12, dwords)
                .with_prps(prp1, 0)
        })
    }

    /// Controller Data Queue, delete queue `cdqid` (which ends the tracking it serves).
    pub fn cdq_delete(cdqid: u16) -> Self {
        Self::new(CONTROLLER_DATA_QUEUE)
            .with_cdw(10, SEL_DELETE)
            .with_cdw(11, u32::from(cdqid))
    }

    /// Track Send, Track Memory Changes: `action` the tracking that reports to queue
    /// `cdqid`. Starting carries the ranges ([`encode_ranges`]); the caller sets the data
    /// pointer. The completion's DW0 bits 15:0 are the granularity the controller uses.
    pub fn track_memory(cdqid: u16, action: TrackAction) -> Self {
        Self::new(TRACK_SEND)
            .with_cdw(10, SEL_TRACK_MEMORY | (u32::from(action as u8) << 16))
            .with_cdw(11, u32::from(cdqid))
    }

    /// Set Features, Controller Data Queue: the host consumed queue `cdqid` up to slot
    /// `head` (the controller may write every slot before it).
    pub fn cdq_set_head(cdqid: u16, head: u32) -> Self {
        Self::set_features(FID_CONTROLLER_DATA_QUEUE, u32::from(cdqid)).with_cdw(12, head)
    }

    /// Get Features, Controller Data Queue of queue `cdqid` (8 bytes: head pointer and tail
    /// pointer trigger). Completing it also guarantees that every change the secondary
    /// controller made before is in the queue (provisional), so the driver reads the queue
    /// after it; it completes with [`status::CDQ_FULL`] if entries were lost since the
    /// last time.
    pub fn cdq_get(cdqid: u16, prp1: u64) -> Self {
        Self::new(admin::GET_FEATURES)
            .with_cdw(10, u32::from(FID_CONTROLLER_DATA_QUEUE))
            .with_cdw(11, u32::from(cdqid))
            .with_prps(prp1, 0)
    }
}

/// The new queue's identifier, from the DW0 of a successful create.
pub fn created_cdqid(dw0: u32) -> u16 {
    dw0 as u16
}

/// The granularity (log2 of bytes) a Track Send start settled on, from its DW0.
pub fn granularity_used(dw0: u32) -> u8 {
    dw0 as u8
}

/// What Identify Controller says about memory change tracking.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TrackingCaps {
    /// Most ranges one Track Send start may list (CMMRTD).
    pub max_ranges: u16,
    /// Smallest and largest granularity, log2 of bytes (MINMRTG, MAXMRTG; provisional
    /// encoding).
    pub min_shift: u8,
    /// See `min_shift`.
    pub max_shift: u8,
}

/// Identify Controller byte offsets of the tracking fields.
mod id {
    pub(super) const CMMRTD: usize = 570;
    pub(super) const MINMRTG: usize = 574;
    pub(super) const MAXMRTG: usize = 575;
    pub(super) const TRATTR: usize = 576;
    /// TRATTR bit 0: Track Host Memory Changes Support.
    pub(super) const TRATTR_THMCS: u8 = 1;
}

impl TrackingCaps {
    /// The tracking capabilities in an Identify Controller structure, if the controller
    /// tracks host memory changes with limits the driver can use: at least one range, a
    /// granularity range that holds 4 KiB pages or coarser and is not above
    /// [`MAX_GRANULARITY_SHIFT`].
    pub fn parse(raw: &[u8; 4096]) -> Option<Self> {
        if raw[id::TRATTR] & id::TRATTR_THMCS == 0 {
            return None;
        }
        let caps = Self {
            max_ranges: u16::from_le_bytes([raw[id::CMMRTD], raw[id::CMMRTD + 1]]),
            min_shift: raw[id::MINMRTG],
            max_shift: raw[id::MAXMRTG],
        };
        let usable = caps.max_ranges > 0
            && caps.min_shift >= 12
            && caps.min_shift <= caps.max_shift
            && caps.min_shift <= MAX_GRANULARITY_SHIFT;
        usable.then_some(caps)
    }

    /// The granularity to track at for a user asking for pages of `page_size` bytes: the
    /// page size itself if the controller can, else the nearest it can. `None` if
    /// `page_size` is not a power of two of at least 4 KiB.
    pub fn granularity_for(&self, page_size: u64) -> Option<u8> {
        if !page_size.is_power_of_two() || page_size < 4096 {
            return None;
        }
        let want = page_size.trailing_zeros().min(u32::from(u8::MAX)) as u8;
        // Never finer than the controller tracks, never coarser than it or the driver
        // allows, unless its finest is coarser still.
        let coarsest = self.max_shift.min(MAX_GRANULARITY_SHIFT);
        Some(want.min(coarsest).max(self.min_shift))
    }
}

/// Why a list of ranges cannot be sent.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RangeError {
    /// No ranges, or more than the controller takes.
    Count,
    /// A range that is empty, not aligned to the granularity, too long for one descriptor
    /// or past the end of the address space.
    Range,
    /// The output buffer is too small.
    Buffer,
}

/// Bytes of the range list header (provisional).
pub const RANGES_HEADER: usize = 8;
/// Bytes of one range descriptor: start address and length in granules (provisional).
pub const RANGE_DESCRIPTOR: usize = 12;

/// The data of a Track Send start: version 0, the granularity `shift` (log2 of bytes),
/// the number of ranges, and per range its start and its length in granules, written to
/// `out`; returns the bytes written. Every range must be aligned to the granularity.
pub fn encode_ranges(
    shift: u8,
    ranges: &[(u64, u64)],
    max_ranges: u16,
    out: &mut [u8],
) -> Result<usize, RangeError> {
    if ranges.is_empty() || ranges.len() > usize::from(max_ranges) || shift >= 64 {
        return Err(RangeError::Count);
    }
    let need = RANGES_HEADER + RANGE_DESCRIPTOR * ranges.len();
    let out = out.get_mut(..need).ok_or(RangeError::Buffer)?;
    out.fill(0);
    out[3] = shift;
    out[4..8].copy_from_slice(&(ranges.len() as u32).to_le_bytes());
    let mask = (1u64 << shift) - 1;
    for (i, &(start, len)) in ranges.iter().enumerate() {
        let granules = len >> shift;
        let fits = len != 0
            && start & mask == 0
            && len & mask == 0
            && start.checked_add(len - 1).is_some()
            && u32::try_from(granules).is_ok();
        if !fits {
            return Err(RangeError::Range);
        }
        let d = &mut out[RANGES_HEADER + i * RANGE_DESCRIPTOR..][..RANGE_DESCRIPTOR];
        d[..8].copy_from_slice(&start.to_le_bytes());
        d[8..].copy_from_slice(&(granules as u32).to_le_bytes());
    }
    Ok(need)
}

/// What a queue entry reports (provisional).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EntryKind {
    /// The secondary controller wrote `granules` granules from `start`.
    Changed {
        /// The first address written, aligned to the granularity.
        start: u64,
        /// How many granules from `start` were written (at least one).
        granules: u32,
    },
    /// Entries were lost before this one because the queue was full: the host cannot
    /// know what changed meanwhile.
    Overflow,
    /// A type this driver does not know: treated as an overflow (report everything).
    Unknown,
}

/// A queue entry: DW0-1 the start address, DW2 the length in granules, DW3 bits 15:0 the
/// secondary controller, bit 16 the phase tag, bits 31:24 the type (0 changed, 1
/// overflow). The controller writes DW3 last (provisional).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Entry {
    /// The phase tag: the controller writes 1 on its first pass through the queue and
    /// inverts it on every wrap, so an entry is new while its tag is the one the host
    /// expects.
    pub phase: bool,
    /// The secondary controller the entry is about.
    pub cntlid: u16,
    /// What it reports.
    pub kind: EntryKind,
}

impl Entry {
    /// Decodes a queue entry.
    pub fn parse(raw: &[u8; ENTRY_SIZE]) -> Self {
        let dw = |i: usize| {
            u32::from_le_bytes([raw[i * 4], raw[i * 4 + 1], raw[i * 4 + 2], raw[i * 4 + 3]])
        };
        let dw3 = dw(3);
        let kind = match dw3 >> 24 {
            0 if dw(2) != 0 => EntryKind::Changed {
                start: u64::from(dw(0)) | (u64::from(dw(1)) << 32),
                granules: dw(2),
            },
            1 => EntryKind::Overflow,
            _ => EntryKind::Unknown,
        };
        Self {
            phase: dw3 & (1 << 16) != 0,
            cntlid: dw3 as u16,
            kind,
        }
    }

    /// Encodes an entry (what the test device writes), for tests.
    pub fn encode(&self) -> [u8; ENTRY_SIZE] {
        let (lo, granules, kind) = match self.kind {
            EntryKind::Changed { start, granules } => (start, granules, 0u32),
            EntryKind::Overflow => (0, 0, 1),
            EntryKind::Unknown => (0, 0, 0xff),
        };
        let dw3 = u32::from(self.cntlid) | (u32::from(self.phase) << 16) | (kind << 24);
        let mut out = [0u8; ENTRY_SIZE];
        out[..8].copy_from_slice(&lo.to_le_bytes());
        out[8..12].copy_from_slice(&granules.to_le_bytes());
        out[12..].copy_from_slice(&dw3.to_le_bytes());
        out
    }
}

/// The host's side of a queue of `slots` entries: where the next entry is and which phase
/// tag marks it new. The controller may write every slot except the one before the head it
/// was last told (one slot stays free, so a full queue differs from an empty one).
///
/// # Invariants
///
/// `head < slots`, `slots >= 2`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Ring {
    slots: u32,
    head: u32,
    phase: bool,
}

impl Ring {
    /// A fresh queue of `slots` entries (at least two): the host expects phase 1 at slot 0.
    pub fn new(slots: u32) -> Option<Self> {
        // INVARIANT: `head` is 0 and `slots` is checked.
        (slots >= 2).then_some(Self {
            slots,
            head: 0,
            phase: true,
        })
    }

    /// The slot the next entry goes to.
    pub fn head(&self) -> u32 {
        self.head
    }

    /// Whether `entry`, read at [`Self::head`], is new.
    pub fn is_new(&self, entry: &Entry) -> bool {
        entry.phase == self.phase
    }

    /// Moves past the entry at the head.
    pub fn advance(&mut self) {
        self.head += 1;
        if self.head == self.slots {
            // INVARIANT: wraps to 0 before reaching `slots`.
            self.head = 0;
            self.phase = !self.phase;
        }
    }

    /// The byte offset of the slot at the head in the queue memory.
    pub fn head_offset(&self) -> usize {
        self.head as usize * ENTRY_SIZE
    }
}

/// A dirty bitmap over one tracked range, one bit per granule, in words the caller owns.
pub struct DirtyBits<'a> {
    start: u64,
    len: u64,
    shift: u8,
    words: &'a mut [u64],
}

/// How many 64-bit words a bitmap of a range of `len` bytes at granularity `shift` takes;
/// `None` if that cannot be counted.
pub fn words_for(len: u64, shift: u8) -> Option<usize> {
    if shift >= 64 {
        return None;
    }
    let granules = len.checked_add((1u64 << shift) - 1)? >> shift;
    usize::try_from(granules.div_ceil(64)).ok()
}

impl<'a> DirtyBits<'a> {
    /// The bitmap of the range `start..start + len` at granularity `shift` over `words`
    /// (at least [`words_for`] of them).
    pub fn new(start: u64, len: u64, shift: u8, words: &'a mut [u64]) -> Option<Self> {
        let need = words_for(len, shift)?;
        start.checked_add(len)?;
        let words = words.get_mut(..need)?;
        Some(Self {
            start,
            len,
            shift,
            words,
        })
    }

    /// The granules that `addr..addr + len` touches, clipped to the range, as bit indexes.
    fn bits(&self, addr: u64, len: u64) -> Option<(u64, u64)> {
        let end = addr.saturating_add(len).min(self.start + self.len);
        let begin = addr.max(self.start);
        if len == 0 || begin >= end {
            return None;
        }
        let first = (begin - self.start) >> self.shift;
        let last = (end - 1 - self.start) >> self.shift;
        Some((first, last))
    }

    /// Marks what `addr..addr + len` touches as dirty (what lies outside the range is
    /// ignored).
    pub fn mark(&mut self, addr: u64, len: u64) {
        if let Some((first, last)) = self.bits(addr, len) {
            let mut bit = first;
            while bit <= last {
                let w = (bit / 64) as usize;
                let from = bit % 64;
                // The bits of this word up to `last`, a whole word at a time.
                let to = (last - bit + from).min(63);
                let mask = (u64::MAX >> (63 - to)) & (u64::MAX << from);
                self.words[w] |= mask;
                bit += to - from + 1;
            }
        }
    }

    /// Marks the whole range dirty (after entries were lost).
    pub fn mark_all(&mut self) {
        self.mark(self.start, self.len);
    }

    /// Reports and clears what is dirty in `addr..addr + len` (clipped to the range): calls
    /// `report(start, len)` once per run of consecutive dirty granules, in address order,
    /// each run clipped to the window. A granule the window covers only in part is reported
    /// but stays dirty, so that the window holding its other part reports it too.
    pub fn take(&mut self, addr: u64, len: u64, mut report: impl FnMut(u64, u64)) {
        let Some((first, last)) = self.bits(addr, len) else {
            return;
        };
        let window_end = addr.saturating_add(len).min(self.start + self.len);
        let window_begin = addr.max(self.start);
        let granule_start = |bit: u64| self.start + (bit << self.shift);
        let granule_end =
            |bit: u64| (self.start + ((bit + 1) << self.shift)).min(self.start + self.len);
        let whole = |bit: u64| granule_start(bit) >= window_begin && granule_end(bit) <= window_end;
        let mut run: Option<u64> = None;
        let mut bit = first;
        while bit <= last + 1 {
            // A whole word inside the window, all clean or all dirty: 64 granules at once.
            if bit % 64 == 0 && bit + 63 <= last && whole(bit) && whole(bit + 63) {
                let w = (bit / 64) as usize;
                match self.words[w] {
                    0 => {
                        if let Some(from) = run.take() {
                            let begin = granule_start(from).max(window_begin);
                            let end = granule_start(bit).min(window_end);
                            report(begin, end - begin);
                        }
                        bit += 64;
                        continue;
                    }
                    u64::MAX => {
                        self.words[w] = 0;
                        run.get_or_insert(bit);
                        bit += 64;
                        continue;
                    }
                    _ => {}
                }
            }
            let dirty = bit <= last && {
                let (w, b) = ((bit / 64) as usize, bit % 64);
                let set = self.words[w] & (1 << b) != 0;
                if whole(bit) {
                    self.words[w] &= !(1 << b);
                }
                set
            };
            match (dirty, run) {
                (true, None) => run = Some(bit),
                (false, Some(from)) => {
                    let begin = granule_start(from).max(window_begin);
                    let end = granule_start(bit).min(window_end);
                    report(begin, end - begin);
                    run = None;
                }
                _ => {}
            }
            bit += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::*;
    use std::{vec, vec::Vec};

    #[test]
    fn create_and_delete_encode_libnvme_fields() {
        let c = Command::cdq_create(0x12, 0x8000_1000, 1024).unwrap();
        assert_eq!(c.opcode(), 0x45);
        assert_eq!(c.dw[10], 0xc0 << 16);
        assert_eq!(c.dw[11], 1 | (0x12 << 16));
        assert_eq!(c.dw[12], 1024);
        assert_eq!(c.prp1(), 0x8000_1000);
        assert!(Command::cdq_create(1, 0, 4).is_none());
        assert!(Command::cdq_create(1, 0, 10).is_none());
        let d = Command::cdq_delete(7);
        assert_eq!((d.opcode(), d.dw[10], d.dw[11]), (0x45, 1, 7));
        assert_eq!(created_cdqid(0xabcd_0005), 5);
    }

    #[test]
    fn track_send_and_the_feature_name_the_queue() {
        let s = Command::track_memory(3, TrackAction::Start);
        assert_eq!((s.opcode(), s.dw[10], s.dw[11]), (0x3d, 1 | (1 << 16), 3));
        let t = Command::track_memory(3, TrackAction::Stop);
        assert_eq!(t.dw[10], 1);
        let h = Command::cdq_set_head(3, 17);
        assert_eq!(
            (h.opcode(), h.dw[10], h.dw[11], h.dw[12]),
            (0x09, 0x21, 3, 17)
        );
        let g = Command::cdq_get(3, 0x2000);
        assert_eq!(
            (g.opcode(), g.dw[10], g.dw[11], g.prp1()),
            (0x0a, 0x21, 3, 0x2000)
        );
        assert_eq!(granularity_used(0x0001_000c), 12);
    }

    fn identify(trattr: u8, ranges: u16, min: u8, max: u8) -> [u8; 4096] {
        let mut raw = [0u8; 4096];
        raw[570..572].copy_from_slice(&ranges.to_le_bytes());
        raw[574] = min;
        raw[575] = max;
        raw[576] = trattr;
        raw
    }

    #[test]
    fn capabilities_need_the_bit_and_usable_limits() {
        let caps = TrackingCaps::parse(&identify(1, 16, 12, 21)).unwrap();
        assert_eq!(
            (caps.max_ranges, caps.min_shift, caps.max_shift),
            (16, 12, 21)
        );
        assert!(TrackingCaps::parse(&identify(0, 16, 12, 21)).is_none());
        assert!(TrackingCaps::parse(&identify(2, 16, 12, 21)).is_none());
        assert!(TrackingCaps::parse(&identify(1, 0, 12, 21)).is_none());
        assert!(TrackingCaps::parse(&identify(1, 16, 9, 21)).is_none());
        assert!(TrackingCaps::parse(&identify(1, 16, 14, 13)).is_none());
        assert!(TrackingCaps::parse(&identify(1, 16, 22, 30)).is_none());
    }

    #[test]
    fn granularity_follows_the_page_size_within_the_limits() {
        let caps = TrackingCaps::parse(&identify(1, 16, 13, 16)).unwrap();
        assert_eq!(caps.granularity_for(4096), Some(13));
        assert_eq!(caps.granularity_for(16384), Some(14));
        assert_eq!(caps.granularity_for(1 << 30), Some(16));
        assert_eq!(caps.granularity_for(2048), None);
        assert_eq!(caps.granularity_for(12288), None);
        assert_eq!(caps.granularity_for(0), None);
        let wide = TrackingCaps::parse(&identify(1, 16, 12, 40)).unwrap();
        assert_eq!(wide.granularity_for(1 << 30), Some(MAX_GRANULARITY_SHIFT));
    }

    #[test]
    fn ranges_encode_header_and_descriptors() {
        let mut out = [0xffu8; 64];
        let n = encode_ranges(12, &[(0x1000, 0x3000), (1 << 32, 0x1000)], 16, &mut out).unwrap();
        assert_eq!(n, 8 + 24);
        assert_eq!(&out[..8], &[0, 0, 0, 12, 2, 0, 0, 0]);
        assert_eq!(&out[8..16], &0x1000u64.to_le_bytes());
        assert_eq!(&out[16..20], &3u32.to_le_bytes());
        assert_eq!(&out[20..28], &(1u64 << 32).to_le_bytes());
        assert_eq!(&out[28..32], &1u32.to_le_bytes());
        assert_eq!(out[32], 0xff);
    }

    #[test]
    fn ranges_refuse_what_cannot_be_described() {
        let mut out = [0u8; 64];
        assert_eq!(encode_ranges(12, &[], 16, &mut out), Err(RangeError::Count));
        assert_eq!(
            encode_ranges(12, &[(0, 4096); 3], 2, &mut out),
            Err(RangeError::Count)
        );
        assert_eq!(
            encode_ranges(12, &[(0x800, 4096)], 16, &mut out),
            Err(RangeError::Range)
        );
        assert_eq!(
            encode_ranges(12, &[(0, 4095)], 16, &mut out),
            Err(RangeError::Range)
        );
        assert_eq!(
            encode_ranges(12, &[(0, 0)], 16, &mut out),
            Err(RangeError::Range)
        );
        assert_eq!(
            encode_ranges(12, &[(u64::MAX - 0xfff, 0x2000)], 16, &mut out),
            Err(RangeError::Range)
        );
        assert_eq!(
            encode_ranges(12, &[(0, 1u64 << 45)], 16, &mut out),
            Err(RangeError::Range)
        );
        assert_eq!(
            encode_ranges(12, &[(0, 4096); 5], 16, &mut out),
            Err(RangeError::Buffer)
        );
    }

    #[test]
    fn entries_round_trip_and_unknown_types_count_as_overflow() {
        for e in [
            Entry {
                phase: true,
                cntlid: 9,
                kind: EntryKind::Changed {
                    start: 0x1_2345_6000,
                    granules: 3,
                },
            },
            Entry {
                phase: false,
                cntlid: 2,
                kind: EntryKind::Overflow,
            },
            Entry {
                phase: true,
                cntlid: 2,
                kind: EntryKind::Unknown,
            },
        ] {
            assert_eq!(Entry::parse(&e.encode()), e);
        }
        // A change of no granules is no change the driver can trust.
        let mut raw = Entry {
            phase: true,
            cntlid: 1,
            kind: EntryKind::Changed {
                start: 0,
                granules: 1,
            },
        }
        .encode();
        raw[8..12].copy_from_slice(&0u32.to_le_bytes());
        assert_eq!(Entry::parse(&raw).kind, EntryKind::Unknown);
    }

    #[test]
    fn ring_flips_its_phase_on_every_wrap() {
        assert!(Ring::new(1).is_none());
        let mut r = Ring::new(3).unwrap();
        let new = |phase| Entry {
            phase,
            cntlid: 0,
            kind: EntryKind::Overflow,
        };
        for pass in 0..4 {
            let phase = pass % 2 == 0;
            for slot in 0..3 {
                assert_eq!(r.head(), slot);
                assert_eq!(r.head_offset(), slot as usize * 16);
                assert!(r.is_new(&new(phase)));
                assert!(!r.is_new(&new(!phase)));
                r.advance();
            }
        }
    }

    fn runs(bits: &mut DirtyBits<'_>, addr: u64, len: u64) -> Vec<(u64, u64)> {
        let mut out = Vec::new();
        bits.take(addr, len, |a, l| out.push((a, l)));
        out
    }

    #[test]
    fn bitmap_marks_clipped_granules_and_reports_runs_once() {
        let mut words = [0u64; 4];
        let mut b = DirtyBits::new(0x10000, 0x100000, 12, &mut words).unwrap();
        b.mark(0x10800, 0x1000); // granules 0 and 1
        b.mark(0x13000, 1); // granule 3
        b.mark(0x0, 0x10001); // clipped: granule 0
        b.mark(0x10f000, 0x2000); // granule 255; the rest is outside
        b.mark(0x200000, 0x1000); // outside
        assert_eq!(
            runs(&mut b, 0, u64::MAX),
            [(0x10000, 0x2000), (0x13000, 0x1000), (0x10f000, 0x1000)]
        );
        assert!(runs(&mut b, 0, u64::MAX).is_empty());
    }

    #[test]
    fn bitmap_take_clears_only_its_window() {
        let mut words = [0u64; 1];
        let mut b = DirtyBits::new(0, 64 << 12, 12, &mut words).unwrap();
        b.mark_all();
        // Granule 5 is only half in the window: reported, and kept for the other half.
        assert_eq!(runs(&mut b, 0x3000, 0x2800), [(0x3000, 0x2800)]);
        assert_eq!(runs(&mut b, 0, 0x4000), [(0, 0x3000)]);
        assert_eq!(runs(&mut b, 0x5800, 0x800), [(0x5800, 0x800)]);
        assert_eq!(runs(&mut b, 0, 64 << 12), [(0x5000, (64 << 12) - 0x5000)]);
        assert!(runs(&mut b, 0, 64 << 12).is_empty());
    }

    /// The bit-at-a-time definition of `mark` and `take`, to check the word-at-a-time one.
    fn reference(
        start: u64,
        len: u64,
        marks: &[(u64, u64)],
        window: (u64, u64),
    ) -> (Vec<(u64, u64)>, Vec<bool>) {
        let granules = len.div_ceil(4096);
        let mut bits = vec![false; granules as usize];
        let range_end = start + len;
        for &(a, l) in marks {
            let (b, e) = (a.max(start), a.saturating_add(l).min(range_end));
            if l == 0 || b >= e {
                continue;
            }
            for g in (b - start) / 4096..=(e - 1 - start) / 4096 {
                bits[g as usize] = true;
            }
        }
        let (wa, wl) = window;
        let (wb, we) = (wa.max(start), wa.saturating_add(wl).min(range_end));
        let mut runs: Vec<(u64, u64)> = Vec::new();
        if wl != 0 && wb < we {
            for g in (wb - start) / 4096..=(we - 1 - start) / 4096 {
                let gs = start + g * 4096;
                let ge = (gs + 4096).min(range_end);
                if bits[g as usize] {
                    let (b, e) = (gs.max(wb), ge.min(we));
                    match runs.last_mut() {
                        Some(r) if r.0 + r.1 == b => r.1 += e - b,
                        _ => runs.push((b, e - b)),
                    }
                    if gs >= wb && ge <= we {
                        bits[g as usize] = false;
                    }
                }
            }
        }
        (runs, bits)
    }

    #[test]
    fn bitmap_words_agree_with_bits() {
        // A small deterministic generator: the same cases on every run.
        let mut x = 0x2545_f491_4f6c_dd1du64;
        let mut next = |m: u64| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x % m
        };
        for _ in 0..400 {
            let start = 0x10_0000 + next(64) * 4096;
            let len = 4096 * (1 + next(400)) - next(2) * 100;
            let marks: Vec<(u64, u64)> = (0..next(6))
                .map(|_| (start + next(len + 8192) - 4096, next(300 * 4096)))
                .collect();
            let window = (start + next(len) - next(2) * 4096, next(len + 4096));
            let mut words = vec![0u64; words_for(len, 12).unwrap()];
            let mut b = DirtyBits::new(start, len, 12, &mut words).unwrap();
            for &(a, l) in &marks {
                b.mark(a, l);
            }
            let mut runs = Vec::new();
            b.take(window.0, window.1, |s, n| runs.push((s, n)));
            let (want_runs, want_bits) = reference(start, len, &marks, window);
            assert_eq!(runs, want_runs, "{start:#x}+{len:#x} {marks:?} {window:?}");
            for (g, &want) in want_bits.iter().enumerate() {
                let got = words[g / 64] & (1 << (g % 64)) != 0;
                assert_eq!(got, want, "granule {g} after the take");
            }
        }
    }

    #[test]
    fn bitmap_sizes() {
        assert_eq!(words_for(64 << 12, 12), Some(1));
        assert_eq!(words_for((64 << 12) + 1, 12), Some(2));
        assert_eq!(words_for(0, 12), Some(0));
        assert_eq!(words_for(1, 64), None);
        let mut few = [0u64; 1];
        assert!(DirtyBits::new(0, 65 << 12, 12, &mut few).is_none());
        assert!(DirtyBits::new(u64::MAX, 2, 12, &mut few).is_none());
    }
}
