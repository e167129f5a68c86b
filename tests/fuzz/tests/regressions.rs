// SPDX-License-Identifier: GPL-2.0

//! Every fuzz target on its seeds and on its regression inputs (`tests/fuzz/regressions/`):
//! an input that once made a target panic fails `cargo test` if it does again.

use std::panic;

use rnvme_fuzz::{regressions, targets::TARGETS};

#[test]
fn every_target_passes_its_seeds() {
    for t in TARGETS {
        let seeds = (t.seeds)();
        assert!(!seeds.is_empty(), "{} has no seeds", t.name);
        for (i, s) in seeds.iter().enumerate() {
            let r = panic::catch_unwind(|| (t.run)(s));
            assert!(r.is_ok(), "{}: seed {i} ({s:02x?})", t.name);
        }
    }
}

#[test]
fn every_regression_input_passes() {
    let mut failed = Vec::new();
    for t in TARGETS {
        for (file, input) in regressions(t.name).expect("the regression folder reads") {
            if panic::catch_unwind(|| (t.run)(&input)).is_err() {
                failed.push(format!("regressions/{}/{file}", t.name));
            }
        }
    }
    assert!(failed.is_empty(), "failing again: {failed:?}");
}
