// SPDX-License-Identifier: GPL-2.0

//! How reads of the saving data fd walk the stream, and what `VFIO_MIG_GET_PRECOPY_INFO`
//! reports.
//!
//! The stream grows in at most two steps: the compatibility section when PRE_COPY begins,
//! the controller state and the end section when STOP_COPY begins. Until the second step
//! a read past the data is a temporary end of stream (`ENOMSG`); afterwards it is the end
//! (`read` returns 0).

/// The read position in a stream that may still grow.
///
/// # Invariants
///
/// `pos <= len`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SaveCursor {
    len: usize,
    pos: usize,
    complete: bool,
}

/// What a read gets.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReadOutcome {
    /// The bytes `start..end` of the stream.
    Data {
        /// First byte.
        start: usize,
        /// One past the last byte.
        end: usize,
    },
    /// Nothing to read now, more may come (`ENOMSG`).
    TemporaryEnd,
    /// Nothing more will come (`read` returns 0).
    End,
}

impl SaveCursor {
    /// An empty stream.
    pub fn new() -> Self {
        Self::default()
    }

    /// The stream grew by `added` bytes; `complete`: nothing more will be added.
    pub fn extend(&mut self, added: usize, complete: bool) {
        // INVARIANT: `len` only grows.
        self.len += added;
        self.complete = complete;
    }

    /// Total bytes of the stream so far.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the stream is empty.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Whether the stream is complete.
    pub fn complete(&self) -> bool {
        self.complete
    }

    /// What a read of up to `want` bytes gets now; [`Self::consume`] moves on once the
    /// bytes reached the reader.
    pub fn peek(&self, want: usize) -> ReadOutcome {
        if self.pos < self.len {
            let end = self.pos + want.min(self.len - self.pos);
            ReadOutcome::Data {
                start: self.pos,
                end,
            }
        } else if self.complete {
            ReadOutcome::End
        } else {
            ReadOutcome::TemporaryEnd
        }
    }

    /// `n` bytes were read.
    pub fn consume(&mut self, n: usize) {
        // INVARIANT: clamped to `len`.
        self.pos = (self.pos + n).min(self.len);
    }

    /// Bytes not read yet: during PRE_COPY, the `initial_bytes` of
    /// `VFIO_MIG_GET_PRECOPY_INFO` (`dirty_bytes` is always 0: the controller state is only
    /// read out once, in STOP_COPY).
    pub fn unread(&self) -> usize {
        self.len - self.pos
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pre_copy_data_then_temporary_end_then_the_rest_then_end() {
        let mut c = SaveCursor::new();
        c.extend(100, false);
        assert_eq!(c.unread(), 100);
        assert_eq!(c.peek(64), ReadOutcome::Data { start: 0, end: 64 });
        c.consume(64);
        assert_eq!(
            c.peek(64),
            ReadOutcome::Data {
                start: 64,
                end: 100
            }
        );
        c.consume(36);
        assert_eq!(c.unread(), 0);
        assert_eq!(c.peek(64), ReadOutcome::TemporaryEnd);
        c.extend(50, true);
        assert_eq!(
            c.peek(1000),
            ReadOutcome::Data {
                start: 100,
                end: 150
            }
        );
        c.consume(50);
        assert_eq!(c.peek(1000), ReadOutcome::End);
        assert_eq!(c.len(), 150);
    }

    #[test]
    fn a_failed_copy_reads_the_same_bytes_again() {
        let mut c = SaveCursor::new();
        c.extend(10, true);
        let first = c.peek(4);
        assert_eq!(c.peek(4), first);
        c.consume(100);
        assert_eq!(c.peek(1), ReadOutcome::End);
    }

    #[test]
    fn an_empty_complete_stream_ends_at_once() {
        let mut c = SaveCursor::new();
        assert!(c.is_empty());
        assert_eq!(c.peek(8), ReadOutcome::TemporaryEnd);
        c.extend(0, true);
        assert_eq!(c.peek(8), ReadOutcome::End);
    }
}
