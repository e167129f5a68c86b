// SPDX-License-Identifier: GPL-2.0

//! The migration stream: what the source's data fd yields and the destination's data fd
//! takes (documented in `Documentation/migration-stream.rst`).
//!
//! The stream is three sections in this order, each a 16-byte header and a payload:
//!
//! ```text
//!  0  magic    4 bytes  "RNVM"
//!  4  version  u16      stream format version, 1
//!  6  kind     u16      1 compatibility, 2 controller state, 3 end
//!  8  length   u32      payload bytes
//! 12  crc32c   u32      CRC-32C of header bytes 0..12 followed by the payload
//! ```
//!
//! The compatibility section ([`super::compat`]) travels during PRE_COPY, so that the
//! destination can refuse an incompatible source before the source stops; the controller
//! state section ([`StatePayload`]) and the empty end section travel in STOP_COPY.
//!
//! [`scan`] reads a stream that may still be arriving: header fields are checked as soon
//! as the 16 bytes are there (so a bad length cannot make the destination buffer
//! anything), a payload's checksum once it is complete.

use super::super::{
    lm::{
        formats::StateFormat,
        state::{HEADER_SIZE, MAX_STATE_SIZE},
    },
    wire::{NoRoom, Reader, Writer},
};
use super::crc32c::Crc32c;

/// The first four bytes of every section.
pub const MAGIC: [u8; 4] = *b"RNVM";
/// The stream format version this driver writes and reads.
pub const STREAM_VERSION: u16 = 1;
/// Bytes of a section header.
pub const SECTION_HEADER_SIZE: usize = 16;
/// Bytes before the controller state in its section.
pub const STATE_PREFIX_SIZE: usize = 20;
/// Largest compatibility payload.
pub const MAX_COMPAT_PAYLOAD: usize = super::compat::MAX_SIZE;
/// Largest controller state payload.
pub const MAX_STATE_PAYLOAD: usize = STATE_PREFIX_SIZE + MAX_STATE_SIZE;
/// Largest stream.
pub const MAX_STREAM: usize = 3 * SECTION_HEADER_SIZE + MAX_COMPAT_PAYLOAD + MAX_STATE_PAYLOAD;

/// The kinds of sections, in stream order.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u16)]
pub enum SectionKind {
    /// What the destination must match (sent during PRE_COPY).
    Compat = 1,
    /// The controller state (sent in STOP_COPY).
    ControllerState = 2,
    /// The end of the stream (empty).
    End = 3,
}

impl SectionKind {
    fn from_raw(v: u16) -> Option<Self> {
        match v {
            1 => Some(Self::Compat),
            2 => Some(Self::ControllerState),
            3 => Some(Self::End),
            _ => None,
        }
    }

    /// The largest payload of a section of this kind.
    pub fn max_payload(self) -> usize {
        match self {
            Self::Compat => MAX_COMPAT_PAYLOAD,
            Self::ControllerState => MAX_STATE_PAYLOAD,
            Self::End => 0,
        }
    }

    /// The kind of the section at position `index` of a stream.
    fn at(index: usize) -> Option<Self> {
        [Self::Compat, Self::ControllerState, Self::End]
            .get(index)
            .copied()
    }
}

/// Why a stream is refused. `at` is the stream offset of the offending section header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StreamError {
    /// The section does not start with [`MAGIC`].
    BadMagic {
        /// Offset of the section.
        at: usize,
    },
    /// The section is of a stream version this driver does not read.
    UnsupportedVersion {
        /// Offset of the section.
        at: usize,
        /// The version it carries.
        version: u16,
    },
    /// The kind is unknown, or not the one due at this point of the stream.
    UnexpectedKind {
        /// Offset of the section.
        at: usize,
        /// The kind it carries.
        kind: u16,
    },
    /// The payload length exceeds what the kind allows.
    TooLong {
        /// Offset of the section.
        at: usize,
        /// The length it carries.
        length: u32,
    },
    /// The checksum does not match.
    Checksum {
        /// Offset of the section.
        at: usize,
    },
    /// Bytes follow the end section.
    TrailingData {
        /// Offset of the first such byte.
        at: usize,
    },
}

/// What a scan found in the part of a stream received so far.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Scan<'a> {
    /// The compatibility payload, once complete.
    pub compat: Option<&'a [u8]>,
    /// The controller state payload, once complete.
    pub state: Option<&'a [u8]>,
    /// Whether the end section has arrived: the stream is complete.
    pub complete: bool,
}

/// Scans a stream as it arrives, each byte once: [`Scanner::advance`] continues where the
/// last call stopped, so a stream written a byte at a time costs no more than one written
/// whole.
///
/// # Invariants
///
/// `at` is the offset of the first section not yet complete, `index` its position in the
/// stream; the recorded payload ranges lie below `at`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Scanner {
    at: usize,
    index: usize,
    compat: Option<(usize, usize)>,
    state: Option<(usize, usize)>,
    complete: bool,
}

impl Scanner {
    /// A scanner at the start of a stream.
    pub fn new() -> Self {
        Self::default()
    }

    /// Continues over `bytes`, the whole stream received so far (of which an earlier call
    /// saw a prefix). Fails at the first refused header or checksum; a section still
    /// arriving is simply not reported yet.
    pub fn advance(&mut self, bytes: &[u8]) -> Result<(), StreamError> {
        loop {
            let at = self.at;
            let rest = bytes.get(at..).unwrap_or(&[]);
            let Some(due) = SectionKind::at(self.index) else {
                if rest.is_empty() {
                    return Ok(());
                }
                return Err(StreamError::TrailingData { at });
            };
            if rest.len() < SECTION_HEADER_SIZE {
                // Check what has arrived of the magic already.
                let n = rest.len().min(MAGIC.len());
                if rest[..n] != MAGIC[..n] {
                    return Err(StreamError::BadMagic { at });
                }
                return Ok(());
            }
            let len = check_header(&rest[..SECTION_HEADER_SIZE], due, at)?;
            let Some(payload) = rest.get(SECTION_HEADER_SIZE..SECTION_HEADER_SIZE + len) else {
                return Ok(());
            };
            let crc = u32::from_le_bytes([rest[12], rest[13], rest[14], rest[15]]);
            if checksum(&rest[..12], payload) != crc {
                return Err(StreamError::Checksum { at });
            }
            let range = Some((at + SECTION_HEADER_SIZE, at + SECTION_HEADER_SIZE + len));
            match due {
                SectionKind::Compat => self.compat = range,
                SectionKind::ControllerState => self.state = range,
                SectionKind::End => self.complete = true,
            }
            // INVARIANT: the section just recorded lies below the new `at`.
            self.at = at + SECTION_HEADER_SIZE + len;
            self.index += 1;
        }
    }

    /// The compatibility payload within `bytes`, once complete.
    pub fn compat<'a>(&self, bytes: &'a [u8]) -> Option<&'a [u8]> {
        self.compat.and_then(|(s, e)| bytes.get(s..e))
    }

    /// The controller state payload within `bytes`, once complete.
    pub fn state<'a>(&self, bytes: &'a [u8]) -> Option<&'a [u8]> {
        self.state.and_then(|(s, e)| bytes.get(s..e))
    }

    /// Whether the end section has arrived.
    pub fn complete(&self) -> bool {
        self.complete
    }
}

/// Checks the header `h` of the section at stream offset `at`, due to be of kind `due`;
/// returns its payload length.
fn check_header(h: &[u8], due: SectionKind, at: usize) -> Result<usize, StreamError> {
    let mut r = Reader::new(h);
    let bad = |_| StreamError::BadMagic { at };
    let magic = r.array::<4>().map_err(bad)?;
    let version = r.u16().map_err(bad)?;
    let kind = r.u16().map_err(bad)?;
    let length = r.u32().map_err(bad)?;
    if magic != MAGIC {
        return Err(StreamError::BadMagic { at });
    }
    if version != STREAM_VERSION {
        return Err(StreamError::UnsupportedVersion { at, version });
    }
    if SectionKind::from_raw(kind) != Some(due) {
        return Err(StreamError::UnexpectedKind { at, kind });
    }
    let len = length as usize;
    if len > due.max_payload() {
        return Err(StreamError::TooLong { at, length });
    }
    Ok(len)
}

/// Scans `bytes`, the part of a stream received so far, at once (see [`Scanner`]).
pub fn scan(bytes: &[u8]) -> Result<Scan<'_>, StreamError> {
    let mut s = Scanner::new();
    s.advance(bytes)?;
    Ok(Scan {
        compat: s.compat(bytes),
        state: s.state(bytes),
        complete: s.complete(),
    })
}

/// The checksum of a section: its first 12 header bytes, then the payload.
fn checksum(head: &[u8], payload: &[u8]) -> u32 {
    Crc32c::new().update(head).update(payload).finish()
}

/// The header of a section of `kind` with `payload`.
pub fn section_header(
    kind: SectionKind,
    payload: &[u8],
) -> Result<[u8; SECTION_HEADER_SIZE], NoRoom> {
    if payload.len() > kind.max_payload() {
        return Err(NoRoom);
    }
    let mut h = [0u8; SECTION_HEADER_SIZE];
    let mut w = Writer::new(&mut h);
    w.bytes(&MAGIC)?;
    w.u16(STREAM_VERSION)?;
    w.u16(kind as u16)?;
    w.u32(payload.len() as u32)?;
    let crc = checksum(&h[..12], payload);
    h[12..].copy_from_slice(&crc.to_le_bytes());
    Ok(h)
}

/// The payload of the controller state section: the state format it is in, then the
/// controller state exactly as Get Controller State returned it.
///
/// ```text
///  0  version   u16      version of the NVMe controller state format
///  2  has_uuid  u8       1: a vendor-specific format follows, 0: none (uuid all zero)
///  3  reserved  u8       0
///  4  uuid      16 bytes the vendor-specific format
/// 20  state              the controller state (TP4159 layout)
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StatePayload<'a> {
    /// The format of the state.
    pub format: StateFormat,
    /// The state.
    pub state: &'a [u8],
}

/// Why a controller state payload is refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PayloadError {
    /// The payload is shorter than its prefix plus a state header.
    Truncated,
    /// A reserved field or the UUID flag has a value this version does not define.
    BadPrefix,
}

impl<'a> StatePayload<'a> {
    /// Decodes a payload.
    pub fn parse(b: &'a [u8]) -> Result<Self, PayloadError> {
        let mut r = Reader::new(b);
        let version = r.u16().map_err(|_| PayloadError::Truncated)?;
        let has_uuid = r.u8().map_err(|_| PayloadError::Truncated)?;
        let reserved = r.u8().map_err(|_| PayloadError::Truncated)?;
        let uuid = r.array::<16>().map_err(|_| PayloadError::Truncated)?;
        if reserved != 0 || has_uuid > 1 || (has_uuid == 0 && uuid != [0; 16]) {
            return Err(PayloadError::BadPrefix);
        }
        let state = r
            .bytes(r.remaining())
            .map_err(|_| PayloadError::Truncated)?;
        if state.len() < HEADER_SIZE {
            return Err(PayloadError::Truncated);
        }
        Ok(Self {
            format: StateFormat {
                version,
                uuid: (has_uuid == 1).then_some(uuid),
            },
            state,
        })
    }

    /// Encodes the prefix of a payload for a state in `format`.
    pub fn prefix(format: &StateFormat) -> [u8; STATE_PREFIX_SIZE] {
        let mut p = [0u8; STATE_PREFIX_SIZE];
        p[..2].copy_from_slice(&format.version.to_le_bytes());
        if let Some(uuid) = &format.uuid {
            p[2] = 1;
            p[4..].copy_from_slice(uuid);
        }
        p
    }
}

/// Test helpers that build streams.
#[cfg(test)]
pub(crate) mod build {
    extern crate std;
    use std::vec::Vec;

    /// A section of `kind` with `payload`.
    pub(crate) fn section(kind: super::SectionKind, payload: &[u8]) -> Vec<u8> {
        let mut v = super::section_header(kind, payload).unwrap().to_vec();
        v.extend_from_slice(payload);
        v
    }

    /// A controller state payload in `format` around `state`.
    pub(crate) fn state_payload(format: &super::StateFormat, state: &[u8]) -> Vec<u8> {
        let mut v = super::StatePayload::prefix(format).to_vec();
        v.extend_from_slice(state);
        v
    }

    /// A whole stream.
    pub(crate) fn stream(compat: &[u8], state_payload: &[u8]) -> Vec<u8> {
        let mut v = section(super::SectionKind::Compat, compat);
        v.extend(section(super::SectionKind::ControllerState, state_payload));
        v.extend(section(super::SectionKind::End, &[]));
        v
    }
}

#[cfg(test)]
mod tests {
    use super::build::{section, state_payload, stream};
    use super::*;

    const FORMAT: StateFormat = StateFormat {
        version: 1,
        uuid: Some([0xab; 16]),
    };

    #[test]
    fn a_whole_stream_scans_complete() {
        let st = state_payload(&FORMAT, &[9; 48]);
        let s = stream(b"compat!!", &st);
        let scan = scan(&s).unwrap();
        assert_eq!(scan.compat, Some(&b"compat!!"[..]));
        assert_eq!(scan.state, Some(&st[..]));
        assert!(scan.complete);
    }

    #[test]
    fn every_prefix_is_incomplete_but_not_an_error() {
        let s = stream(b"compat!!", &state_payload(&FORMAT, &[9; 48]));
        for len in 0..s.len() {
            let scan = scan(&s[..len]).unwrap();
            assert!(!scan.complete, "length {len}");
            assert_eq!(scan.compat.is_some(), len >= 16 + 8);
        }
    }

    #[test]
    fn header_errors_are_found_before_the_payload_arrives() {
        let s = stream(b"c", &state_payload(&FORMAT, &[9; 48]));
        let mut bad = s.clone();
        bad[1] = b'X';
        assert_eq!(scan(&bad[..2]), Err(StreamError::BadMagic { at: 0 }));
        let mut bad = s.clone();
        bad[4] = 2;
        assert_eq!(
            scan(&bad[..16]),
            Err(StreamError::UnsupportedVersion { at: 0, version: 2 })
        );
        let mut bad = s.clone();
        bad[6] = 2;
        assert_eq!(
            scan(&bad[..16]),
            Err(StreamError::UnexpectedKind { at: 0, kind: 2 })
        );
        let mut bad = s.clone();
        bad[8..12].copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(matches!(
            scan(&bad[..16]),
            Err(StreamError::TooLong { at: 0, .. })
        ));
    }

    #[test]
    fn scanning_byte_by_byte_finds_the_same_as_scanning_whole() {
        let s = stream(b"compat!!", &state_payload(&FORMAT, &[9; 48]));
        let mut sc = Scanner::new();
        for len in 0..=s.len() {
            sc.advance(&s[..len]).unwrap();
            assert_eq!(sc.complete(), len == s.len());
        }
        let whole = scan(&s).unwrap();
        assert_eq!(sc.compat(&s), whole.compat);
        assert_eq!(sc.state(&s), whole.state);
        // Bytes after the end are refused by the incremental scanner too.
        let mut longer = s.clone();
        longer.push(1);
        assert_eq!(
            sc.advance(&longer),
            Err(StreamError::TrailingData { at: s.len() })
        );
    }

    #[test]
    fn a_flipped_payload_bit_fails_the_checksum() {
        let s = stream(b"compat!!", &state_payload(&FORMAT, &[9; 48]));
        for byte in [16, 20, 23, 40, 60, 100] {
            let mut bad = s.clone();
            bad[byte] ^= 0x10;
            assert!(scan(&bad).is_err(), "byte {byte}");
        }
        let mut bad = s.clone();
        bad[12] ^= 1;
        assert_eq!(scan(&bad), Err(StreamError::Checksum { at: 0 }));
    }

    #[test]
    fn sections_must_come_in_order_once_and_nothing_after_the_end() {
        let st = state_payload(&FORMAT, &[9; 48]);
        let mut twice = section(SectionKind::Compat, b"a");
        twice.extend(section(SectionKind::Compat, b"a"));
        assert_eq!(
            scan(&twice),
            Err(StreamError::UnexpectedKind { at: 17, kind: 1 })
        );
        let state_first = section(SectionKind::ControllerState, &st);
        assert!(matches!(
            scan(&state_first),
            Err(StreamError::UnexpectedKind { .. })
        ));
        let mut trailing = stream(b"a", &st);
        let at = trailing.len();
        trailing.push(0);
        assert_eq!(scan(&trailing), Err(StreamError::TrailingData { at }));
        let mut end_with_payload = section(SectionKind::Compat, b"a");
        end_with_payload.extend(section(SectionKind::ControllerState, &st));
        let mut end = section(SectionKind::End, &[]);
        end[8] = 1;
        end_with_payload.extend(end);
        assert!(matches!(
            scan(&end_with_payload),
            Err(StreamError::TooLong { .. })
        ));
    }

    #[test]
    fn state_payload_prefix_round_trips_and_rejects_reserved_values() {
        let st = [5u8; 48];
        let p = state_payload(&FORMAT, &st);
        assert_eq!(
            StatePayload::parse(&p),
            Ok(StatePayload {
                format: FORMAT,
                state: &st
            })
        );
        let plain = StateFormat {
            version: 3,
            uuid: None,
        };
        let p = state_payload(&plain, &st);
        assert_eq!(StatePayload::parse(&p).unwrap().format, plain);
        let mut bad = p.clone();
        bad[3] = 1;
        assert_eq!(StatePayload::parse(&bad), Err(PayloadError::BadPrefix));
        let mut bad = p.clone();
        bad[2] = 2;
        assert_eq!(StatePayload::parse(&bad), Err(PayloadError::BadPrefix));
        let mut bad = p.clone();
        bad[10] = 1; // a UUID byte without the flag
        assert_eq!(StatePayload::parse(&bad), Err(PayloadError::BadPrefix));
        assert_eq!(StatePayload::parse(&p[..30]), Err(PayloadError::Truncated));
        assert_eq!(StatePayload::parse(&[0; 3]), Err(PayloadError::Truncated));
    }
}
