// SPDX-License-Identifier: GPL-2.0

//! The controller state of TP4159 (what Get Controller State returns and Set Controller
//! State takes), decoded and checked without trusting any field.
//!
//! Layout (libnvme `struct nvme_lm_controller_state_data`), all little-endian:
//!
//! ```text
//! Controller state header (48 bytes)
//!   0  VER      u16
//!   2  CSATTR   u8   bit 0: the controller is suspended
//!   3  reserved 13 bytes
//!  16  NVMECSS  16-byte integer: size of the NVMe controller state in dwords
//!  32  VSS      16-byte integer: size of the vendor-specific state in dwords
//! NVMe controller state (NVMECSS dwords)
//!   0  VER u16 | NIOSQ u16 | NIOCQ u16 | reserved u16
//!   8  NIOSQ I/O submission queue entries of 24 bytes:
//!        PRP1 u64 | QSIZE u16 | QID u16 | CQID u16 | ATTR u16 | HEAD u16 | TAIL u16 | 4 reserved
//!      NIOCQ I/O completion queue entries of 24 bytes:
//!        PRP1 u64 | QSIZE u16 | QID u16 | HEAD u16 | TAIL u16 | ATTR u32 | 4 reserved
//!      (CQ ATTR: bit 0 PC, bit 1 IEN, bit 2 phase of slot 0, bits 31:16 IV)
//! Vendor-specific state (VSS dwords), opaque here
//! ```
//!
//! QSIZE is 0's based, as in Create I/O Submission/Completion Queue.

use super::super::wire::{Reader, Truncated};

/// Size of the controller state header.
pub const HEADER_SIZE: usize = 48;
/// Size of the NVMe controller state's own header.
pub const NVMECS_HEADER_SIZE: usize = 8;
/// Size of one I/O queue entry of the NVMe controller state.
pub const QUEUE_ENTRY_SIZE: usize = 24;
/// Largest controller state the driver handles (the primary's bounce buffer).
pub const MAX_STATE_SIZE: usize = 64 * 1024;

/// Bytes of the standard part (header and NVMe controller state) of a state with `sqs`
/// submission and `cqs` completion queues.
pub const fn standard_size(sqs: usize, cqs: usize) -> usize {
    HEADER_SIZE + NVMECS_HEADER_SIZE + QUEUE_ENTRY_SIZE * (sqs + cqs)
}

/// Which kind of queue a finding is about.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum QueueKind {
    /// An I/O submission queue.
    Submission,
    /// An I/O completion queue.
    Completion,
}

/// Why a controller state is unusable.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StateError {
    /// The data ended inside a field.
    Truncated(Truncated),
    /// A size field is larger than any state the driver handles.
    TooLarge,
    /// The header's sizes do not add up to the length of the data.
    LengthMismatch {
        /// Length the header describes.
        described: usize,
        /// Length of the data.
        actual: usize,
    },
    /// NVMECSS does not match the queue counts.
    NvmecsSize {
        /// Bytes NVMECSS describes.
        described: usize,
        /// Bytes the queue counts need.
        needed: usize,
    },
    /// The state was not taken from (or is not for) a suspended controller.
    NotSuspended,
    /// More queues of a kind than the destination controller has.
    TooManyQueues {
        /// Kind of queue.
        kind: QueueKind,
        /// Queues in the state.
        count: u16,
        /// Queues the destination has.
        max: u16,
    },
    /// A queue ID is 0 or beyond the destination's queues.
    BadQueueId {
        /// Kind of queue.
        kind: QueueKind,
        /// The queue ID.
        qid: u16,
    },
    /// A queue ID appears twice.
    DuplicateQueueId {
        /// Kind of queue.
        kind: QueueKind,
        /// The queue ID.
        qid: u16,
    },
    /// A submission queue completes to a completion queue the state does not have.
    MissingCompletionQueue {
        /// The submission queue.
        sqid: u16,
        /// The completion queue it names.
        cqid: u16,
    },
    /// A queue is larger than the destination allows (CAP.MQES).
    QueueTooLarge {
        /// Kind of queue.
        kind: QueueKind,
        /// The queue ID.
        qid: u16,
        /// Its entries.
        entries: u32,
    },
    /// A head or tail index is outside its queue.
    BadIndex {
        /// Kind of queue.
        kind: QueueKind,
        /// The queue ID.
        qid: u16,
    },
    /// A completion queue interrupts on a vector the destination does not have.
    BadVector {
        /// The completion queue.
        qid: u16,
        /// The vector.
        vector: u16,
    },
}

impl From<Truncated> for StateError {
    fn from(t: Truncated) -> Self {
        Self::Truncated(t)
    }
}

/// The decoded controller state header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StateHeader {
    /// VER.
    pub version: u16,
    /// CSATTR bit 0.
    pub suspended: bool,
    /// Bytes of the NVMe controller state.
    pub nvmecs_bytes: usize,
    /// Bytes of the vendor-specific state.
    pub vendor_bytes: usize,
}

/// A 16-byte little-endian dword count, as bytes, if it is below [`MAX_STATE_SIZE`].
fn dwords_as_bytes(r: &mut Reader<'_>) -> Result<usize, StateError> {
    let low = r.u64()?;
    let high = r.u64()?;
    if high != 0 || low > (MAX_STATE_SIZE / 4) as u64 {
        return Err(StateError::TooLarge);
    }
    Ok(low as usize * 4)
}

impl StateHeader {
    /// Decodes the header at the start of `b`.
    pub fn parse(b: &[u8]) -> Result<Self, StateError> {
        let mut r = Reader::new(b);
        let version = r.u16()?;
        let csattr = r.u8()?;
        r.skip(13)?;
        let nvmecs_bytes = dwords_as_bytes(&mut r)?;
        let vendor_bytes = dwords_as_bytes(&mut r)?;
        Ok(Self {
            version,
            suspended: csattr & 1 != 0,
            nvmecs_bytes,
            vendor_bytes,
        })
    }

    /// Length of the whole state the header describes.
    pub fn total_len(&self) -> usize {
        HEADER_SIZE + self.nvmecs_bytes + self.vendor_bytes
    }
}

/// One I/O submission queue of the state.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SqState {
    /// Base address.
    pub prp1: u64,
    /// Entries, 0's based.
    pub qsize: u16,
    /// Queue ID.
    pub qid: u16,
    /// Completion queue ID.
    pub cqid: u16,
    /// Attributes (bit 0 physically contiguous, bits 2:1 priority).
    pub attr: u16,
    /// Head index.
    pub head: u16,
    /// Tail index.
    pub tail: u16,
}

/// One I/O completion queue of the state.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CqState {
    /// Base address.
    pub prp1: u64,
    /// Entries, 0's based.
    pub qsize: u16,
    /// Queue ID.
    pub qid: u16,
    /// Head index.
    pub head: u16,
    /// Tail index.
    pub tail: u16,
    /// Attributes (bit 0 PC, bit 1 IEN, bit 2 phase of slot 0, bits 31:16 vector).
    pub attr: u32,
}

impl CqState {
    /// The interrupt vector.
    pub fn vector(&self) -> u16 {
        (self.attr >> 16) as u16
    }

    /// Whether interrupts are enabled.
    pub fn interrupts(&self) -> bool {
        self.attr & 2 != 0
    }
}

/// What the destination controller has, against which a state is checked.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// I/O queues (of each kind) the secondary controller can have.
    pub io_queues: u16,
    /// Most entries per queue (CAP.MQES + 1).
    pub max_entries: u32,
    /// Interrupt vectors of the function.
    pub vectors: u16,
}

/// A decoded controller state, borrowing the data.
///
/// # Invariants
///
/// The header's sizes add up to the data's length; the NVMe controller state holds exactly
/// `niosq + niocq` queue entries.
#[derive(Clone, Copy, Debug)]
pub struct ControllerState<'a> {
    /// The header.
    pub header: StateHeader,
    /// VER of the NVMe controller state.
    pub nvmecs_version: u16,
    /// Number of I/O submission queues.
    pub niosq: u16,
    /// Number of I/O completion queues.
    pub niocq: u16,
    queues: &'a [u8],
    /// The vendor-specific state.
    pub vendor: &'a [u8],
}

fn sq_at(b: &[u8]) -> Result<SqState, Truncated> {
    let mut r = Reader::new(b);
    Ok(SqState {
        prp1: r.u64()?,
        qsize: r.u16()?,
        qid: r.u16()?,
        cqid: r.u16()?,
        attr: r.u16()?,
        head: r.u16()?,
        tail: r.u16()?,
    })
}

fn cq_at(b: &[u8]) -> Result<CqState, Truncated> {
    let mut r = Reader::new(b);
    Ok(CqState {
        prp1: r.u64()?,
        qsize: r.u16()?,
        qid: r.u16()?,
        head: r.u16()?,
        tail: r.u16()?,
        attr: r.u32()?,
    })
}

impl<'a> ControllerState<'a> {
    /// Decodes `b`, which must be exactly one controller state.
    pub fn parse(b: &'a [u8]) -> Result<Self, StateError> {
        if b.len() > MAX_STATE_SIZE {
            return Err(StateError::TooLarge);
        }
        let header = StateHeader::parse(b)?;
        if header.total_len() != b.len() {
            return Err(StateError::LengthMismatch {
                described: header.total_len(),
                actual: b.len(),
            });
        }
        let mut r = Reader::new(&b[HEADER_SIZE..]);
        let nvmecs = r.bytes(header.nvmecs_bytes)?;
        let vendor = r.bytes(header.vendor_bytes)?;
        let mut n = Reader::new(nvmecs);
        let nvmecs_version = n.u16()?;
        let niosq = n.u16()?;
        let niocq = n.u16()?;
        n.skip(2)?;
        let needed =
            NVMECS_HEADER_SIZE + QUEUE_ENTRY_SIZE * (usize::from(niosq) + usize::from(niocq));
        if needed != header.nvmecs_bytes {
            return Err(StateError::NvmecsSize {
                described: header.nvmecs_bytes,
                needed,
            });
        }
        // INVARIANT: both sizes were checked against the data above.
        Ok(Self {
            header,
            nvmecs_version,
            niosq,
            niocq,
            queues: &nvmecs[NVMECS_HEADER_SIZE..],
            vendor,
        })
    }

    /// The I/O submission queues.
    pub fn sqs(&self) -> impl Iterator<Item = SqState> + '_ {
        self.queues[..usize::from(self.niosq) * QUEUE_ENTRY_SIZE]
            .chunks_exact(QUEUE_ENTRY_SIZE)
            .filter_map(|e| sq_at(e).ok())
    }

    /// The I/O completion queues.
    pub fn cqs(&self) -> impl Iterator<Item = CqState> + '_ {
        self.queues[usize::from(self.niosq) * QUEUE_ENTRY_SIZE..]
            .chunks_exact(QUEUE_ENTRY_SIZE)
            .filter_map(|e| cq_at(e).ok())
    }

    /// Checks that the state came from a suspended controller and fits a destination with
    /// `limits`: queue counts, unique queue IDs in range, every submission queue's
    /// completion queue present, queue sizes, head and tail indexes and vectors.
    pub fn check(&self, limits: &Limits) -> Result<(), StateError> {
        if !self.header.suspended {
            return Err(StateError::NotSuspended);
        }
        for (kind, count) in [
            (QueueKind::Submission, self.niosq),
            (QueueKind::Completion, self.niocq),
        ] {
            if count > limits.io_queues {
                return Err(StateError::TooManyQueues {
                    kind,
                    count,
                    max: limits.io_queues,
                });
            }
        }
        // The counts are bounded by the destination's queues (a handful for a VF), so the
        // quadratic scans below stay small and need no table on the kernel stack.
        let in_range = |kind, qid: u16| {
            if qid == 0 || qid > limits.io_queues {
                return Err(StateError::BadQueueId { kind, qid });
            }
            Ok(())
        };
        let fits = |kind, qid, qsize: u16, head: u16, tail: u16| {
            let entries = u32::from(qsize) + 1;
            if qsize == 0 || entries > limits.max_entries {
                return Err(StateError::QueueTooLarge { kind, qid, entries });
            }
            if head > qsize || tail > qsize {
                return Err(StateError::BadIndex { kind, qid });
            }
            Ok(())
        };
        for (i, cq) in self.cqs().enumerate() {
            in_range(QueueKind::Completion, cq.qid)?;
            if self.cqs().take(i).any(|c| c.qid == cq.qid) {
                return Err(StateError::DuplicateQueueId {
                    kind: QueueKind::Completion,
                    qid: cq.qid,
                });
            }
            fits(QueueKind::Completion, cq.qid, cq.qsize, cq.head, cq.tail)?;
            if cq.interrupts() && cq.vector() >= limits.vectors {
                return Err(StateError::BadVector {
                    qid: cq.qid,
                    vector: cq.vector(),
                });
            }
        }
        for (i, sq) in self.sqs().enumerate() {
            in_range(QueueKind::Submission, sq.qid)?;
            if self.sqs().take(i).any(|s| s.qid == sq.qid) {
                return Err(StateError::DuplicateQueueId {
                    kind: QueueKind::Submission,
                    qid: sq.qid,
                });
            }
            fits(QueueKind::Submission, sq.qid, sq.qsize, sq.head, sq.tail)?;
            if !self.cqs().any(|c| c.qid == sq.cqid) {
                return Err(StateError::MissingCompletionQueue {
                    sqid: sq.qid,
                    cqid: sq.cqid,
                });
            }
        }
        Ok(())
    }
}

/// Test helpers that build controller states.
#[cfg(test)]
pub(crate) mod build {
    extern crate std;
    use std::vec::Vec;

    /// Encodes a state with the given queues and vendor bytes.
    pub(crate) fn state(
        suspended: bool,
        sqs: &[super::SqState],
        cqs: &[super::CqState],
        vendor: &[u8],
    ) -> Vec<u8> {
        let mut v = Vec::new();
        v.extend_from_slice(&1u16.to_le_bytes());
        v.push(u8::from(suspended));
        v.extend_from_slice(&[0; 13]);
        let nvmecs = super::NVMECS_HEADER_SIZE + super::QUEUE_ENTRY_SIZE * (sqs.len() + cqs.len());
        v.extend_from_slice(&((nvmecs / 4) as u128).to_le_bytes());
        v.extend_from_slice(&((vendor.len() / 4) as u128).to_le_bytes());
        v.extend_from_slice(&1u16.to_le_bytes());
        v.extend_from_slice(&(sqs.len() as u16).to_le_bytes());
        v.extend_from_slice(&(cqs.len() as u16).to_le_bytes());
        v.extend_from_slice(&[0; 2]);
        for q in sqs {
            v.extend_from_slice(&q.prp1.to_le_bytes());
            for f in [q.qsize, q.qid, q.cqid, q.attr, q.head, q.tail] {
                v.extend_from_slice(&f.to_le_bytes());
            }
            v.extend_from_slice(&[0; 4]);
        }
        for q in cqs {
            v.extend_from_slice(&q.prp1.to_le_bytes());
            for f in [q.qsize, q.qid, q.head, q.tail] {
                v.extend_from_slice(&f.to_le_bytes());
            }
            v.extend_from_slice(&q.attr.to_le_bytes());
            v.extend_from_slice(&[0; 4]);
        }
        v.extend_from_slice(vendor);
        v
    }

    /// Submission queue `qid` completing to `cqid`.
    pub(crate) fn sq(qid: u16, cqid: u16) -> super::SqState {
        super::SqState {
            prp1: 0x10_0000 * u64::from(qid),
            qsize: 63,
            qid,
            cqid,
            attr: 1,
            head: 3,
            tail: 5,
        }
    }

    /// Completion queue `qid` on vector `qid`.
    pub(crate) fn cq(qid: u16) -> super::CqState {
        super::CqState {
            prp1: 0x20_0000 * u64::from(qid),
            qsize: 63,
            qid,
            head: 2,
            tail: 4,
            attr: 0b11 | (u32::from(qid) << 16),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::build::{cq, sq, state};
    use super::*;

    const LIMITS: Limits = Limits {
        io_queues: 4,
        max_entries: 2048,
        vectors: 5,
    };

    #[test]
    fn a_state_round_trips_and_fits() {
        let b = state(true, &[sq(1, 1), sq(2, 2)], &[cq(1), cq(2)], &[7; 64]);
        assert_eq!(b.len(), standard_size(2, 2) + 64);
        let s = ControllerState::parse(&b).unwrap();
        assert!(s.header.suspended);
        assert_eq!((s.niosq, s.niocq), (2, 2));
        assert_eq!(s.sqs().nth(1), Some(sq(2, 2)));
        assert_eq!(s.cqs().next(), Some(cq(1)));
        assert_eq!(s.vendor, &[7; 64]);
        assert_eq!(s.check(&LIMITS), Ok(()));
    }

    #[test]
    fn every_truncation_is_an_error() {
        let b = state(true, &[sq(1, 1)], &[cq(1)], &[1; 8]);
        for len in 0..b.len() {
            assert!(ControllerState::parse(&b[..len]).is_err(), "length {len}");
        }
    }

    #[test]
    fn sizes_that_do_not_add_up_are_refused() {
        let mut b = state(true, &[sq(1, 1)], &[cq(1)], &[]);
        b.push(0);
        assert!(matches!(
            ControllerState::parse(&b),
            Err(StateError::LengthMismatch { .. })
        ));
        // NIOSQ says two queues, NVMECSS has room for one.
        let mut b = state(true, &[sq(1, 1)], &[cq(1)], &[]);
        b[HEADER_SIZE + 2] = 2;
        assert!(matches!(
            ControllerState::parse(&b),
            Err(StateError::NvmecsSize { .. })
        ));
        // A 16-byte size with high bits set.
        let mut b = state(true, &[], &[], &[]);
        b[31] = 1;
        assert_eq!(ControllerState::parse(&b).err(), Some(StateError::TooLarge));
    }

    #[test]
    fn queues_are_checked_against_the_destination() {
        let check = |sqs: &[SqState], cqs: &[CqState]| {
            let b = state(true, sqs, cqs, &[]);
            ControllerState::parse(&b).unwrap().check(&LIMITS)
        };
        assert!(matches!(
            check(&[sq(1, 1)], &[cq(1), cq(2), cq(3), cq(4), cq(1)]),
            Err(StateError::TooManyQueues { .. })
        ));
        assert!(matches!(
            check(&[sq(0, 1)], &[cq(1)]),
            Err(StateError::BadQueueId { .. })
        ));
        assert!(matches!(
            check(&[sq(5, 1)], &[cq(1)]),
            Err(StateError::BadQueueId { .. })
        ));
        assert!(matches!(
            check(&[sq(1, 1), sq(1, 1)], &[cq(1)]),
            Err(StateError::DuplicateQueueId { .. })
        ));
        assert!(matches!(
            check(&[sq(1, 2)], &[cq(1)]),
            Err(StateError::MissingCompletionQueue { sqid: 1, cqid: 2 })
        ));
        let mut big = cq(1);
        big.qsize = 4095;
        assert!(matches!(
            check(&[], &[big]),
            Err(StateError::QueueTooLarge { .. })
        ));
        let mut one = sq(1, 1);
        one.qsize = 0;
        assert!(matches!(
            check(&[one], &[cq(1)]),
            Err(StateError::QueueTooLarge { .. })
        ));
        let mut past = sq(1, 1);
        past.tail = 64;
        assert!(matches!(
            check(&[past], &[cq(1)]),
            Err(StateError::BadIndex { .. })
        ));
        let mut vec = cq(1);
        vec.attr = 0b11 | (5 << 16);
        assert!(matches!(
            check(&[], &[vec]),
            Err(StateError::BadVector { .. })
        ));
        // A vector without interrupts enabled is not used.
        vec.attr = 0b01 | (5 << 16);
        assert_eq!(check(&[], &[vec]), Ok(()));
    }

    #[test]
    fn a_running_controller_s_state_is_refused() {
        let b = state(false, &[], &[], &[]);
        assert_eq!(
            ControllerState::parse(&b).unwrap().check(&LIMITS),
            Err(StateError::NotSuspended)
        );
    }
}
