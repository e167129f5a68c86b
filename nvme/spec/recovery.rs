// SPDX-License-Identifier: GPL-2.0

//! The recovery policy for a request that timed out, as the C driver's `nvme_timeout`:
//! first an Abort of that one command, then (a second timeout) a reset of the controller,
//! and if a request that a reset took back times out again, the reset did not help and the
//! controller is given up. A request's tries fit in one byte ([`Tries`]), cleared each time
//! it completes, so the bound costs the I/O path nothing: the count of resets without
//! progress is per controller in effect (one reset, then a request of it must complete),
//! and any completion of a request taken back by a reset resets it.

/// Most retries of a request after retryable errors (its own count in [`Tries`]).
const RETRY_MASK: u8 = 0x7f;
/// Set while a request that a controller reset took back waits to complete.
const TAKEN_BACK: u8 = 0x80;

/// What the driver remembers of one request's tries: how often it was sent again after a
/// retryable error, and whether a controller reset took it back since it was dispatched
/// fresh. Zero (`Tries::default()`) for a request that completed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Tries(u8);

impl Tries {
    /// From its stored byte.
    pub const fn from_raw(raw: u8) -> Self {
        Self(raw)
    }

    /// Its stored byte.
    pub const fn raw(self) -> u8 {
        self.0
    }

    /// How often the request was retried after a retryable error.
    pub const fn retries(self) -> u8 {
        self.0 & RETRY_MASK
    }

    /// One retry more (saturating), the rest kept.
    pub const fn retried(self) -> Self {
        if self.retries() == RETRY_MASK {
            self
        } else {
            Self(self.0 + 1)
        }
    }

    /// Whether a controller reset took the request back since it was dispatched fresh.
    pub const fn taken_back(self) -> bool {
        self.0 & TAKEN_BACK != 0
    }

    /// A controller reset took the request back (it is dispatched again afterwards).
    pub const fn with_taken_back(self) -> Self {
        Self(self.0 | TAKEN_BACK)
    }
}

/// What the driver does about a request that timed out on a live controller.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TimeoutStep {
    /// Ask the controller to abort the command, and wait for one more timeout.
    Abort,
    /// Reset the controller: every request in flight is taken back and sent again.
    Reset,
    /// The controller did not recover: give it up (its I/O fails with `EIO`).
    GiveUp,
}

/// The step for a request with `tries` that timed out on a live controller, `aborted`
/// saying whether an Abort was already sent for its current dispatch.
pub const fn timeout_step(tries: Tries, aborted: bool) -> TimeoutStep {
    if tries.taken_back() {
        TimeoutStep::GiveUp
    } else if aborted {
        TimeoutStep::Reset
    } else {
        TimeoutStep::Abort
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_fresh_request_is_aborted_then_reset_then_given_up() {
        let fresh = Tries::default();
        assert_eq!(timeout_step(fresh, false), TimeoutStep::Abort);
        assert_eq!(timeout_step(fresh, true), TimeoutStep::Reset);
        let back = fresh.with_taken_back();
        // Taken back by the reset: its next timeout gives up, aborted or not.
        assert_eq!(timeout_step(back, false), TimeoutStep::GiveUp);
        assert_eq!(timeout_step(back, true), TimeoutStep::GiveUp);
    }

    #[test]
    fn retries_count_apart_from_the_reset_mark() {
        let t = Tries::default().retried().retried();
        assert_eq!(t.retries(), 2);
        assert!(!t.taken_back());
        let t = t.with_taken_back().retried();
        assert_eq!(t.retries(), 3);
        assert!(t.taken_back());
        assert_eq!(Tries::from_raw(t.raw()), t);
    }

    #[test]
    fn retries_saturate_without_touching_the_mark() {
        let mut t = Tries::default();
        for _ in 0..200 {
            t = t.retried();
        }
        assert_eq!(t.retries(), RETRY_MASK);
        assert!(!t.taken_back());
    }

    #[test]
    fn a_completed_request_starts_fresh() {
        // The I/O path stores 0 when a request completes: that clears both parts.
        let t = Tries::from_raw(0);
        assert_eq!(t, Tries::default());
        assert_eq!(timeout_step(t, false), TimeoutStep::Abort);
    }
}
