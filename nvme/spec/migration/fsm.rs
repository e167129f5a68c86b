// SPDX-License-Identifier: GPL-2.0

//! The VFIO migration state machine of a VF, and what each arc means for its NVMe
//! secondary controller.
//!
//! The driver advertises `STOP_COPY | P2P | PRE_COPY`. The VFIO core breaks every request
//! into the arcs below (`vfio_mig_get_next_state`), and the driver carries them out one by
//! one ([`step`]). The mapping to TP4159, which the PF runs on its admin queue for the
//! VF's secondary controller:
//!
//! * RUNNING_P2P and every state after it is *suspended*: a suspended controller fetches
//!   no commands, does no DMA and raises no interrupts, but still takes register writes
//!   (doorbells are latched), which is what "no new P2P DMA, keep answering P2P" asks of a
//!   device that only initiates DMA. So Suspend is sent on entering RUNNING_P2P (or
//!   PRE_COPY_P2P) and Resume on leaving it for RUNNING (or PRE_COPY); RUNNING_P2P to STOP
//!   and back change nothing on the device.
//! * The saving states share one data fd: entering PRE_COPY creates it with the
//!   compatibility section; STOP_COPY appends the controller state (Get Controller State)
//!   and the end of the stream (or creates the fd with all three when there was no
//!   PRE_COPY).
//! * RESUMING creates the fd that takes a stream; RESUMING to STOP checks it and sends Set
//!   Controller State (the controller is suspended: it came through RUNNING_P2P).
//!
//! Invariant, checked by the tests: the secondary controller is suspended exactly in the
//! states for which [`MigState::suspended`] is true.

/// `VFIO_MIGRATION_STOP_COPY`.
pub const MIGRATION_STOP_COPY: u64 = 1 << 0;
/// `VFIO_MIGRATION_P2P`.
pub const MIGRATION_P2P: u64 = 1 << 1;
/// `VFIO_MIGRATION_PRE_COPY`.
pub const MIGRATION_PRE_COPY: u64 = 1 << 2;
/// What the driver advertises.
pub const MIGRATION_FLAGS: u64 = MIGRATION_STOP_COPY | MIGRATION_P2P | MIGRATION_PRE_COPY;

/// `enum vfio_device_mig_state`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u32)]
pub enum MigState {
    /// The device failed and must be reset.
    Error = 0,
    /// Stopped: no DMA, no interrupts, no change of internal state.
    Stop = 1,
    /// Running.
    Running = 2,
    /// Stopped, the state being read out.
    StopCopy = 3,
    /// Stopped, a state being written in.
    Resuming = 4,
    /// Running, but starting no P2P DMA.
    RunningP2p = 5,
    /// Running, the first part of the state being read out.
    PreCopy = 6,
    /// PRE_COPY and RUNNING_P2P at once.
    PreCopyP2p = 7,
}

/// Every state, in uAPI order.
pub const STATES: [MigState; 8] = [
    MigState::Error,
    MigState::Stop,
    MigState::Running,
    MigState::StopCopy,
    MigState::Resuming,
    MigState::RunningP2p,
    MigState::PreCopy,
    MigState::PreCopyP2p,
];

impl MigState {
    /// The state of a uAPI value.
    pub fn from_raw(v: u32) -> Option<Self> {
        STATES.get(v as usize).copied()
    }

    /// The uAPI value.
    pub fn raw(self) -> u32 {
        self as u32
    }

    /// Whether the secondary controller is suspended in this state.
    pub fn suspended(self) -> bool {
        !matches!(self, Self::Running | Self::PreCopy | Self::Error)
    }

    /// Whether this is a saving state (one data fd yields the stream).
    pub fn saving(self) -> bool {
        matches!(self, Self::PreCopy | Self::PreCopyP2p | Self::StopCopy)
    }

    /// Whether this is a PRE_COPY state (the stream has a temporary end).
    pub fn pre_copy(self) -> bool {
        matches!(self, Self::PreCopy | Self::PreCopyP2p)
    }
}

/// What the driver does for one arc.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Step {
    /// Suspend the secondary controller.
    Suspend,
    /// Resume it.
    Resume,
    /// Nothing changes on the device.
    Nothing,
    /// Create the saving data fd, holding the compatibility section.
    OpenSaving,
    /// Close the saving data fd (further reads fail).
    CloseSaving,
    /// Read the controller state out and append it and the end of the stream to the
    /// saving data fd; `fresh`: create that fd (with the compatibility section first).
    SaveState {
        /// Whether the fd is created by this arc.
        fresh: bool,
    },
    /// Create the resuming data fd.
    OpenResuming,
    /// Check the stream written to the resuming fd, set the controller state, and close
    /// the fd.
    LoadState,
}

impl Step {
    /// Whether the arc returns a new data fd to userspace.
    pub fn new_fd(self) -> bool {
        matches!(
            self,
            Self::OpenSaving | Self::SaveState { fresh: true } | Self::OpenResuming
        )
    }
}

/// The step for the arc `from` -> `to`, or `None` for an arc the VFIO core never asks for
/// with [`MIGRATION_FLAGS`].
pub fn step(from: MigState, to: MigState) -> Option<Step> {
    use MigState::*;
    Some(match (from, to) {
        (Running, RunningP2p) | (PreCopy, PreCopyP2p) => Step::Suspend,
        (RunningP2p, Running) | (PreCopyP2p, PreCopy) => Step::Resume,
        (RunningP2p, Stop) | (Stop, RunningP2p) => Step::Nothing,
        (Running, PreCopy) | (RunningP2p, PreCopyP2p) => Step::OpenSaving,
        (PreCopy, Running) | (PreCopyP2p, RunningP2p) | (StopCopy, Stop) => Step::CloseSaving,
        (Stop, StopCopy) => Step::SaveState { fresh: true },
        (PreCopyP2p, StopCopy) => Step::SaveState { fresh: false },
        (Stop, Resuming) => Step::OpenResuming,
        (Resuming, Stop) => Step::LoadState,
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use MigState::*;

    /// The arcs a driver with STOP_COPY, P2P and PRE_COPY must implement
    /// (`vfio_mig_get_next_state`).
    const REQUIRED: [(MigState, MigState); 15] = [
        (Resuming, Stop),
        (Stop, Resuming),
        (Stop, StopCopy),
        (StopCopy, Stop),
        (Running, RunningP2p),
        (RunningP2p, Running),
        (RunningP2p, Stop),
        (Stop, RunningP2p),
        (PreCopy, Running),
        (PreCopy, PreCopyP2p),
        (PreCopyP2p, PreCopy),
        (PreCopyP2p, RunningP2p),
        (PreCopyP2p, StopCopy),
        (Running, PreCopy),
        (RunningP2p, PreCopyP2p),
    ];

    #[test]
    fn exactly_the_required_arcs_have_a_step() {
        for from in STATES {
            for to in STATES {
                assert_eq!(
                    step(from, to).is_some(),
                    REQUIRED.contains(&(from, to)),
                    "{from:?} -> {to:?}"
                );
            }
        }
    }

    #[test]
    fn suspend_and_resume_keep_the_suspended_invariant() {
        for (from, to) in REQUIRED {
            let s = step(from, to).unwrap();
            let (was, is) = (from.suspended(), to.suspended());
            match s {
                Step::Suspend => assert!(!was && is, "{from:?} -> {to:?}"),
                Step::Resume => assert!(was && !is, "{from:?} -> {to:?}"),
                _ => assert_eq!(was, is, "{from:?} -> {to:?}"),
            }
        }
    }

    #[test]
    fn the_saving_fd_lives_exactly_in_the_saving_states() {
        for (from, to) in REQUIRED {
            let s = step(from, to).unwrap();
            let opens = matches!(s, Step::OpenSaving | Step::SaveState { fresh: true });
            let closes = s == Step::CloseSaving;
            assert_eq!(opens, !from.saving() && to.saving(), "{from:?} -> {to:?}");
            assert_eq!(closes, from.saving() && !to.saving(), "{from:?} -> {to:?}");
        }
    }

    #[test]
    fn raw_values_follow_the_uapi() {
        assert_eq!(MigState::from_raw(0), Some(Error));
        assert_eq!(MigState::from_raw(7), Some(PreCopyP2p));
        assert_eq!(MigState::from_raw(8), None);
        for s in STATES {
            assert_eq!(MigState::from_raw(s.raw()), Some(s));
        }
        assert!(step(Stop, StopCopy).unwrap().new_fd());
        assert!(!step(PreCopyP2p, StopCopy).unwrap().new_fd());
    }
}
