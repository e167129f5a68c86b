// SPDX-License-Identifier: GPL-2.0

//! The destination's side of a migration stream: everything it checks, from the first byte
//! written to the resuming data fd to the controller state it sends to the device.
//!
//! [`Resume::advance`] runs after every write: it checks the sections that arrived
//! ([`super::stream::Scanner`]) and, as soon as the compatibility section is complete,
//! compares it with the destination VF ([`super::compat::check`]), so that an incompatible
//! source is refused while it still runs. [`Resume::finish`] runs on RESUMING -> STOP: the
//! stream must be complete, its controller state in the format announced and fit the
//! destination ([`super::super::lm::state::ControllerState::check`]).
//!
//! The kernel's resuming fd and the host fuzzer (`cargo xtask fuzz`) run this same code.

use super::super::lm::{
    formats::{StateFormat, StateFormats},
    state::{ControllerState, Limits, StateError},
};
use super::{
    compat::{self, CompatError, CompatView, Fixed, Mismatch, NamespaceInfo},
    stream::{PayloadError, Scanner, StatePayload, StreamError},
};

/// The destination VF a stream is checked against.
#[derive(Clone, Copy, Debug)]
pub struct Destination<'a> {
    /// Its compatibility fields.
    pub fixed: &'a Fixed,
    /// The namespaces attached to its secondary controller.
    pub namespaces: &'a [NamespaceInfo],
    /// The state formats its PF accepts.
    pub formats: &'a StateFormats,
    /// What a controller state must fit.
    pub limits: &'a Limits,
}

/// Why a stream is refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// The framing: magic, version, kind, order, length, checksum, trailing bytes.
    Stream(StreamError),
    /// The compatibility section is malformed.
    Compat(CompatError),
    /// The source is not compatible with this destination.
    Incompatible(Mismatch),
    /// The controller state section's prefix is malformed.
    Payload(PayloadError),
    /// The controller state is in another format than the one announced.
    FormatNotAnnounced,
    /// The controller state is malformed or does not fit the destination.
    State(StateError),
    /// RESUMING ended before the stream was complete.
    Incomplete,
    /// An earlier write was refused; the stream is dead.
    AlreadyRefused,
}

impl Refusal {
    /// Whether the refusal is an incompatibility (`EOPNOTSUPP`) rather than a malformed
    /// or incomplete stream (`EINVAL`).
    pub fn incompatible(&self) -> bool {
        matches!(self, Self::Incompatible(_))
    }
}

/// The state of checking one incoming stream.
#[derive(Clone, Copy, Debug, Default)]
pub struct Resume {
    scanner: Scanner,
    compat_checked: bool,
    refused: bool,
}

impl Resume {
    /// Nothing received yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Whether the stream has been refused (every further write fails).
    pub fn refused(&self) -> bool {
        self.refused
    }

    /// Checks what arrived: `bytes` is the whole stream received so far. A refusal is
    /// final.
    pub fn advance(&mut self, bytes: &[u8], dest: &Destination<'_>) -> Result<(), Refusal> {
        if self.refused {
            return Err(Refusal::AlreadyRefused);
        }
        let r = self.advance_inner(bytes, dest);
        self.refused = r.is_err();
        r
    }

    fn advance_inner(&mut self, bytes: &[u8], dest: &Destination<'_>) -> Result<(), Refusal> {
        // The compatibility section comes first in the stream, so it is checked before a
        // framing error further on is reported: the verdict is the same however the
        // stream was split into writes.
        let scanned = self.scanner.advance(bytes).map_err(Refusal::Stream);
        if !self.compat_checked {
            if let Some(raw) = self.scanner.compat(bytes) {
                let source = CompatView::parse(raw).map_err(Refusal::Compat)?;
                compat::check(&source, dest.fixed, dest.namespaces, dest.formats)
                    .map_err(Refusal::Incompatible)?;
                self.compat_checked = true;
            }
        }
        scanned
    }

    /// The controller state of the complete stream `bytes` (as given to the last
    /// [`Self::advance`]) and its format, once everything is checked.
    pub fn finish<'a>(
        &self,
        bytes: &'a [u8],
        dest: &Destination<'_>,
    ) -> Result<(StateFormat, &'a [u8]), Refusal> {
        if self.refused {
            return Err(Refusal::AlreadyRefused);
        }
        let (true, true, Some(compat), Some(payload)) = (
            self.scanner.complete(),
            self.compat_checked,
            self.scanner.compat(bytes),
            self.scanner.state(bytes),
        ) else {
            return Err(Refusal::Incomplete);
        };
        let payload = StatePayload::parse(payload).map_err(Refusal::Payload)?;
        let announced = CompatView::parse(compat)
            .map_err(Refusal::Compat)?
            .fixed
            .format;
        if payload.format != announced {
            return Err(Refusal::FormatNotAnnounced);
        }
        ControllerState::parse(payload.state)
            .and_then(|s| s.check(dest.limits))
            .map_err(Refusal::State)?;
        Ok((payload.format, payload.state))
    }
}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::super::super::lm::state::build::{cq, sq, state};
    use super::super::{
        compat::build::{fixed, ns, payload},
        stream::build::{state_payload, stream},
    };
    use super::*;
    use std::vec::Vec;

    fn formats() -> StateFormats {
        let mut b = [0u8; 4096];
        b[0] = 1;
        b[1] = 1;
        b[2] = 1;
        b[4..20].copy_from_slice(&[0x5a; 16]);
        StateFormats::parse(&b).unwrap()
    }

    const LIMITS: Limits = Limits {
        io_queues: 2,
        max_entries: 2048,
        vectors: 3,
    };

    fn good() -> Vec<u8> {
        let st = state(true, &[sq(1, 1), sq(2, 2)], &[cq(1), cq(2)], &[0xee; 32]);
        stream(
            &payload(&fixed(), &[ns(2)]),
            &state_payload(&fixed().format, &st),
        )
    }

    fn run(bytes: &[u8], chunk: usize) -> Result<usize, Refusal> {
        let f = fixed();
        let nss = [ns(2)];
        let fm = formats();
        let dest = Destination {
            fixed: &f,
            namespaces: &nss,
            formats: &fm,
            limits: &LIMITS,
        };
        let mut r = Resume::new();
        let mut end = 0;
        while end < bytes.len() {
            end = (end + chunk).min(bytes.len());
            r.advance(&bytes[..end], &dest)?;
        }
        r.finish(bytes, &dest).map(|(_, s)| s.len())
    }

    #[test]
    fn a_good_stream_is_accepted_in_any_chunking() {
        let s = good();
        for chunk in [1, 7, 16, 100, s.len()] {
            assert_eq!(run(&s, chunk), Ok(48 + 8 + 4 * 24 + 32), "chunk {chunk}");
        }
    }

    #[test]
    fn an_incompatible_source_is_refused_at_its_compat_section() {
        let mut other = fixed();
        other.io_queues = 4;
        let st = state(true, &[sq(1, 1)], &[cq(1)], &[]);
        let s = stream(
            &payload(&other, &[ns(2)]),
            &state_payload(&other.format, &st),
        );
        let f = fixed();
        let nss = [ns(2)];
        let fm = formats();
        let dest = Destination {
            fixed: &f,
            namespaces: &nss,
            formats: &fm,
            limits: &LIMITS,
        };
        let mut r = Resume::new();
        let compat_end = 16 + compat::size(1);
        assert_eq!(r.advance(&s[..compat_end - 1], &dest), Ok(()));
        let e = r.advance(&s[..compat_end], &dest).unwrap_err();
        assert!(e.incompatible());
        assert!(r.refused());
        assert_eq!(r.advance(&s, &dest), Err(Refusal::AlreadyRefused));
    }

    #[test]
    fn truncated_streams_are_incomplete_and_state_that_does_not_fit_is_refused() {
        let s = good();
        assert_eq!(run(&s[..s.len() - 1], 64), Err(Refusal::Incomplete));
        let st = state(
            true,
            &[sq(1, 1), sq(2, 2), sq(3, 3)],
            &[cq(1), cq(2), cq(3)],
            &[],
        );
        let s = stream(
            &payload(&fixed(), &[ns(2)]),
            &state_payload(&fixed().format, &st),
        );
        assert!(matches!(
            run(&s, 4096),
            Err(Refusal::State(StateError::TooManyQueues { .. }))
        ));
        let other = StateFormat {
            version: 1,
            uuid: None,
        };
        let st = state(true, &[], &[], &[]);
        let s = stream(&payload(&fixed(), &[ns(2)]), &state_payload(&other, &st));
        assert_eq!(run(&s, 4096), Err(Refusal::FormatNotAnnounced));
    }
}
