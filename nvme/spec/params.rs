// SPDX-License-Identifier: GPL-2.0

//! Which values rnvme's numeric module parameters take.
//!
//! A write to a parameter (at load time or through `/sys/module/rnvme/parameters`) is
//! parsed by the kernel's own `kstrtou16`/`kstrtouint` (base 0) in the C glue
//! (`kapi/glue/helpers.c`); the number is then checked here (through `kapi::params`), so
//! the rules are the ones the host tests and the fuzzer (`cargo xtask fuzz`, target
//! `module-params`) run.

use super::sriov::MIN_VF_QUEUES;

/// Most queue resources (admin queue included) a VF can be given with `vf_queues`.
pub const MAX_VF_QUEUES: u32 = 4096;
/// Most interrupt vectors a VF can be given with `vf_vectors`.
pub const MAX_VF_VECTORS: u32 = 2048;
/// Fewest entries of a VF's dirty tracking queue (`cdq_entries`).
pub const MIN_CDQ_ENTRIES: u32 = 4;
/// Most entries of a VF's dirty tracking queue (`cdq_entries`).
pub const MAX_CDQ_ENTRIES: u32 = 65536;
/// Most polled I/O queues per controller (`poll_queues`).
pub const MAX_POLL_QUEUES: u32 = 8;

/// A numeric module parameter.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Param {
    /// `vf_queues`: queue resources per VF, 0 for an even split (a `u16`).
    VfQueues,
    /// `vf_vectors`: interrupt vectors per VF, 0 for an even split (a `u16`).
    VfVectors,
    /// `cdq_entries`: entries of each VF's dirty tracking queue.
    CdqEntries,
    /// `poll_queues`: polled I/O queues per controller.
    PollQueues,
    /// `sgls`: 1 to describe one-segment I/O with an SGL descriptor, 0 for PRPs.
    Sgls,
}

/// Every numeric parameter.
pub const PARAMS: [Param; 5] = [
    Param::VfQueues,
    Param::VfVectors,
    Param::CdqEntries,
    Param::PollQueues,
    Param::Sgls,
];

impl Param {
    /// The parameter's name.
    pub const fn name(self) -> &'static str {
        match self {
            Self::VfQueues => "vf_queues",
            Self::VfVectors => "vf_vectors",
            Self::CdqEntries => "cdq_entries",
            Self::PollQueues => "poll_queues",
            Self::Sgls => "sgls",
        }
    }

    /// The largest number the parameter's C type holds (what `kstrtou16` or `kstrtouint`
    /// parses into it; a larger number is `ERANGE` before [`Self::valid`] is asked).
    pub const fn type_max(self) -> u32 {
        match self {
            Self::VfQueues | Self::VfVectors => u16::MAX as u32,
            Self::CdqEntries | Self::PollQueues | Self::Sgls => u32::MAX,
        }
    }

    /// Whether the parameter takes `value`.
    ///
    /// - `vf_queues`: 0, or 2 to [`MAX_VF_QUEUES`] (a secondary controller needs its admin
    ///   queue and an I/O queue, [`MIN_VF_QUEUES`]).
    /// - `vf_vectors`: 0 to [`MAX_VF_VECTORS`].
    /// - `cdq_entries`: a power of two from [`MIN_CDQ_ENTRIES`] to [`MAX_CDQ_ENTRIES`].
    /// - `poll_queues`: 0 to [`MAX_POLL_QUEUES`].
    /// - `sgls`: 0 or 1.
    pub const fn valid(self, value: u32) -> bool {
        match self {
            Self::VfQueues => {
                value == 0 || (value >= MIN_VF_QUEUES as u32 && value <= MAX_VF_QUEUES)
            }
            Self::VfVectors => value <= MAX_VF_VECTORS,
            Self::CdqEntries => {
                value >= MIN_CDQ_ENTRIES && value <= MAX_CDQ_ENTRIES && value.is_power_of_two()
            }
            Self::PollQueues => value <= MAX_POLL_QUEUES,
            Self::Sgls => value <= 1,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vf_queues_is_never_one() {
        let p = Param::VfQueues;
        assert!(p.valid(0) && p.valid(2) && p.valid(4096));
        assert!(!p.valid(1) && !p.valid(4097) && !p.valid(u32::MAX));
    }

    #[test]
    fn cdq_entries_are_powers_of_two_in_range() {
        let p = Param::CdqEntries;
        for v in [4, 8, 4096, 65536] {
            assert!(p.valid(v), "{v}");
        }
        for v in [0, 1, 2, 3, 5, 4095, 131072, u32::MAX] {
            assert!(!p.valid(v), "{v}");
        }
    }

    #[test]
    fn the_small_ranges() {
        assert!(Param::VfVectors.valid(0) && Param::VfVectors.valid(2048));
        assert!(!Param::VfVectors.valid(2049));
        assert!(Param::PollQueues.valid(8) && !Param::PollQueues.valid(9));
        assert!(Param::Sgls.valid(1) && !Param::Sgls.valid(2));
        // Every valid value fits the C type the kernel parses into.
        for p in PARAMS {
            for v in [0, 1, 2, 4, 8, 4096, 65535, 65536] {
                assert!(!p.valid(v) || v <= p.type_max(), "{} {v}", p.name());
            }
        }
    }
}
