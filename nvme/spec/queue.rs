// SPDX-License-Identifier: GPL-2.0

//! Queue arithmetic: submission ring tails, completion heads and phase tags.

/// Why a queue operation was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum QueueError {
    /// A queue needs between 2 and 65536 entries (and at most CAP.MQES + 1).
    BadDepth,
    /// The submission ring has no free slot.
    Full,
    /// The controller reported a submission queue head outside the ring.
    BadHead,
}

/// Checks a queue depth: at least 2 entries, at most `max_entries` (CAP.MQES + 1).
pub fn check_depth(depth: u32, max_entries: u32) -> Result<u16, QueueError> {
    if depth < 2 || depth > max_entries || depth > 65536 {
        return Err(QueueError::BadDepth);
    }
    // A depth of 65536 cannot be represented in u16; the spec's maximum MQES allows it,
    // but the driver never asks for it.
    u16::try_from(depth).map_err(|_| QueueError::BadDepth)
}

/// The slot after `index` on a ring of `depth` entries (`index < depth`), computed
/// without a division (which the kernel build would check for a zero divisor) and, in
/// 32 bits, without an overflow check: the submission path runs it for every command.
fn next_slot(index: u16, depth: u16) -> u16 {
    let next = u32::from(index) + 1;
    if next >= u32::from(depth) {
        0
    } else {
        next as u16
    }
}

/// The host's view of a submission queue ring.
///
/// # Invariants
///
/// `tail < depth` and `head < depth`; the ring is full when advancing the tail would make
/// it equal to the head (one slot always stays empty).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SqRing {
    depth: u16,
    tail: u16,
    head: u16,
}

impl SqRing {
    /// An empty ring of `depth` entries (see [`check_depth`]).
    pub fn new(depth: u16) -> Result<Self, QueueError> {
        if depth < 2 {
            return Err(QueueError::BadDepth);
        }
        Ok(Self {
            depth,
            tail: 0,
            head: 0,
        })
    }

    /// Number of entries of the ring.
    pub fn depth(&self) -> u16 {
        self.depth
    }

    /// The next slot the host writes, which is also the value of the tail doorbell.
    pub fn tail(&self) -> u16 {
        self.tail
    }

    /// Number of commands submitted and not yet consumed by the controller.
    pub fn in_flight(&self) -> u16 {
        // No division or overflow: `head, tail < depth` (type invariant).
        if self.tail >= self.head {
            self.tail - self.head
        } else {
            self.depth - self.head + self.tail
        }
    }

    /// Whether no slot is free.
    pub fn is_full(&self) -> bool {
        next_slot(self.tail, self.depth) == self.head
    }

    /// Claims the slot at the tail and advances the tail; returns the slot to fill.
    pub fn push(&mut self) -> Result<u16, QueueError> {
        let next = next_slot(self.tail, self.depth);
        if next == self.head {
            return Err(QueueError::Full);
        }
        let slot = self.tail;
        self.tail = next;
        Ok(slot)
    }

    /// Records the submission queue head a completion reported.
    pub fn set_head(&mut self, head: u16) -> Result<(), QueueError> {
        if head >= self.depth {
            return Err(QueueError::BadHead);
        }
        self.head = head;
        Ok(())
    }
}

/// The host's position in a completion queue: the next entry to look at and the phase tag
/// that marks it as new.
///
/// # Invariants
///
/// `head < depth`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CqCursor {
    depth: u16,
    head: u16,
    phase: bool,
}

impl CqCursor {
    /// A cursor at the start of a fresh (zeroed) queue of `depth` entries: the controller
    /// writes phase 1 on its first pass.
    pub fn new(depth: u16) -> Result<Self, QueueError> {
        if depth < 2 {
            return Err(QueueError::BadDepth);
        }
        Ok(Self {
            depth,
            head: 0,
            phase: true,
        })
    }

    /// Number of entries of the queue.
    pub fn depth(&self) -> u16 {
        self.depth
    }

    /// The entry to look at next.
    pub fn head(&self) -> u16 {
        self.head
    }

    /// The phase tag of a new entry at [`CqCursor::head`].
    pub fn phase(&self) -> bool {
        self.phase
    }

    /// Whether an entry with phase tag `phase` at the head is new.
    pub fn is_new(&self, phase: bool) -> bool {
        phase == self.phase
    }

    /// Consumes the entry at the head; the phase flips when the head wraps.
    pub fn advance(&mut self) {
        let next = next_slot(self.head, self.depth);
        if next == 0 {
            self.phase = !self.phase;
        }
        self.head = next;
    }
}

/// How the I/O queues a controller granted are used: interrupt-driven queues (served by
/// the default queue map) and polled queues (no interrupt, served by the poll map).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct QueueSplit {
    /// Queues that complete through interrupts.
    pub interrupt: u32,
    /// Queues without interrupts, reaped by polling tasks.
    pub poll: u32,
}

/// Splits `granted` I/O queues (at least 1) between up to `poll_wanted` polled queues and
/// interrupt-driven ones: like the C driver, at least one interrupt-driven queue stays,
/// because requests that are not polled need one.
pub fn split_queues(granted: u32, poll_wanted: u32) -> QueueSplit {
    let granted = granted.max(1);
    let poll = poll_wanted.min(granted - 1);
    QueueSplit {
        interrupt: granted - poll,
        poll,
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn poll_queues_leave_an_interrupt_queue() {
        use super::{split_queues, QueueSplit};
        let q = |interrupt, poll| QueueSplit { interrupt, poll };
        assert_eq!(split_queues(3, 0), q(3, 0));
        assert_eq!(split_queues(3, 1), q(2, 1));
        assert_eq!(split_queues(3, 2), q(1, 2));
        assert_eq!(split_queues(3, 5), q(1, 2));
        assert_eq!(split_queues(1, 1), q(1, 0));
        assert_eq!(split_queues(0, 1), q(1, 0));
    }

    use super::*;

    #[test]
    fn ring_keeps_one_slot_free() {
        let mut sq = SqRing::new(4).expect("depth");
        assert_eq!(sq.push(), Ok(0));
        assert_eq!(sq.push(), Ok(1));
        assert_eq!(sq.push(), Ok(2));
        assert!(sq.is_full());
        assert_eq!(sq.push(), Err(QueueError::Full));
        assert_eq!(sq.in_flight(), 3);
        sq.set_head(2).expect("head");
        assert_eq!(sq.in_flight(), 1);
        assert_eq!(sq.push(), Ok(3));
        assert_eq!(sq.tail(), 0);
        assert_eq!(sq.push(), Ok(0));
        assert_eq!(sq.push(), Err(QueueError::Full));
    }

    #[test]
    fn bad_heads_and_depths_are_refused() {
        let mut sq = SqRing::new(8).expect("depth");
        assert_eq!(sq.push(), Ok(0));
        assert_eq!(sq.set_head(8), Err(QueueError::BadHead));
        // The ring keeps the head it had.
        assert_eq!(sq.in_flight(), 1);
        assert_eq!(SqRing::new(1), Err(QueueError::BadDepth));
        assert_eq!(CqCursor::new(0), Err(QueueError::BadDepth));
        assert_eq!(check_depth(1, 2048), Err(QueueError::BadDepth));
        assert_eq!(check_depth(4096, 2048), Err(QueueError::BadDepth));
        assert_eq!(check_depth(1024, 2048), Ok(1024));
    }

    #[test]
    fn largest_ring_wraps() {
        let mut sq = SqRing::new(u16::MAX).expect("depth");
        for _ in 0..u16::MAX - 2 {
            sq.push().expect("free slot");
        }
        assert_eq!(sq.tail(), u16::MAX - 2);
        sq.set_head(u16::MAX - 2).expect("head");
        assert_eq!(sq.push(), Ok(u16::MAX - 2));
        assert_eq!(sq.push(), Ok(u16::MAX - 1));
        assert_eq!(sq.tail(), 0);
        assert_eq!(sq.push(), Ok(0));
        assert_eq!(sq.in_flight(), 3);
    }

    #[test]
    fn phase_flips_on_wrap() {
        let mut cq = CqCursor::new(3).expect("depth");
        assert!(cq.is_new(true));
        for _ in 0..3 {
            cq.advance();
        }
        assert_eq!(cq.head(), 0);
        assert!(!cq.phase());
        assert!(cq.is_new(false));
        assert!(!cq.is_new(true));
    }
}
