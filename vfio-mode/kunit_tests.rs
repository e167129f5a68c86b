// SPDX-License-Identifier: GPL-2.0

//! In-kernel KUnit tests of VFIO migration: the pure logic (stream framing, the state
//! machine's steps) as the kernel's rustc compiles it, and the deferring mutex the reset
//! path relies on.

use kernel::{prelude::*, sync::Arc};

use crate::{
    kapi::sync::DeferringMutex,
    nvme::spec::migration::{
        crc32c::crc32c,
        fsm::{step, MigState, Step},
        stream::{scan, section_header, SectionKind, StreamError},
    },
};

/// A counter whose deferred work counts how often it ran.
struct Counter {
    value: u32,
    deferred_runs: u32,
}

fn count_deferred(c: &mut Counter) {
    c.deferred_runs += 1;
}

crate::kapi::kunit::kunit_tests!(rnvme_mig, {
    fn crc32c_check_value() {
        assert_eq!(crc32c(b"123456789"), 0xe306_9283);
    }

    fn a_section_scans_and_a_flipped_bit_is_found() {
        let payload = [7u8; 24];
        let Ok(header) = section_header(SectionKind::Compat, &payload) else {
            panic!("header");
        };
        let mut s = KVec::new();
        let ok = s.extend_from_slice(&header, GFP_KERNEL).is_ok()
            && s.extend_from_slice(&payload, GFP_KERNEL).is_ok();
        assert!(ok);
        let Ok(found) = scan(&s) else { panic!("scan") };
        assert_eq!(found.compat, Some(&payload[..]));
        assert!(!found.complete);
        s[20] ^= 1;
        assert_eq!(scan(&s).err(), Some(StreamError::Checksum { at: 0 }));
    }

    fn arcs_map_to_tp4159_steps() {
        assert_eq!(
            step(MigState::Running, MigState::RunningP2p),
            Some(Step::Suspend)
        );
        assert_eq!(
            step(MigState::RunningP2p, MigState::Running),
            Some(Step::Resume)
        );
        assert_eq!(
            step(MigState::Resuming, MigState::Stop),
            Some(Step::LoadState)
        );
        assert_eq!(step(MigState::Running, MigState::StopCopy), None);
    }

    fn deferred_work_runs_once_at_release_or_at_once() {
        let m = Arc::pin_init(
            DeferringMutex::new(
                Counter {
                    value: 0,
                    deferred_runs: 0,
                },
                count_deferred,
            ),
            GFP_KERNEL,
        );
        let Ok(m) = m else { panic!("alloc") };
        // Free: the deferring context runs the work itself.
        m.defer();
        assert_eq!(m.lock().deferred_runs, 1);
        // Held: the holder runs it when it lets go, once however often it was deferred.
        {
            let mut g = m.lock();
            g.value = 5;
            m.defer();
            m.defer();
            assert_eq!(g.deferred_runs, 1);
        }
        let g = m.lock();
        assert_eq!((g.value, g.deferred_runs), (5, 2));
    }
});
