// SPDX-License-Identifier: GPL-2.0

//! Test registry, selection and reporting.

use std::{
    fs,
    io::Write,
    path::PathBuf,
    thread,
    time::{Duration, Instant},
};

/// What every test gets: where the module and the kernel's own modules are, where to write.
pub struct Env {
    /// The rnvme module under test.
    pub module: PathBuf,
    /// `modprobe -d` root of the test kernel's modules.
    pub modroot: PathBuf,
    /// Directory shared with the host.
    pub out: PathBuf,
}

/// The outcome of one check.
#[derive(Debug, PartialEq, Eq)]
pub enum Outcome {
    /// The check held.
    Pass,
    /// The check failed, with the reason.
    Fail(String),
    /// The check cannot run on this machine, with the reason.
    Skip(String),
}

/// One named result; a test may report several (e.g. one per KUnit case).
#[derive(Debug)]
pub struct Report {
    /// Full result name, e.g. `smoke/module-alias` or `kunit/rnvme_spec/cap_fields_decode`.
    pub name: String,
    /// What happened.
    pub outcome: Outcome,
}

/// A test: a name, the groups it belongs to, and its body. The body returns its sub-results
/// (none for a plain test, which then passes) or an error that fails the test itself.
pub struct Test {
    /// Unique name.
    pub name: &'static str,
    /// Groups for selection (`smoke`, ...).
    pub groups: &'static [&'static str],
    /// The test body.
    pub run: fn(&Env) -> Result<Vec<Report>, String>,
}

/// The group of opt-in tests (e.g. a nested guest under TCG): the unfiltered run and
/// substring filters leave them out; one of their groups or their exact name selects them.
pub const SLOW: &str = "slow";

/// The group of tests that need a PF without memory change tracking: `cargo xtask test`
/// runs them in a boot of their own (the model's `x-lm-track=off`), selected by this
/// group; like [`SLOW`] tests, nothing else selects them.
pub const LM_TRACK_OFF: &str = "lm-track-off";

/// The group of the tests of many VFs at once (8 concurrent migrations, 32 concurrent mode
/// switches): `cargo xtask test` runs them in a boot of their own whose emulated PF has
/// enough VFs; like [`LM_TRACK_OFF`] tests, nothing else selects them.
pub const CONCURRENCY: &str = "concurrency";

/// The groups whose tests run only in a boot of their own (`cargo xtask test` knows which).
const OWN_BOOT: &[&str] = &[LM_TRACK_OFF, CONCURRENCY];

impl Test {
    /// Whether `filter` selects this test: an exact group name or a substring of the name;
    /// a [`SLOW`] test, or one of a group with a boot of its own ([`LM_TRACK_OFF`],
    /// [`CONCURRENCY`]), only by an exact group name or its exact name.
    pub fn selected_by(&self, filter: Option<&str>) -> bool {
        let slow = self.groups.contains(&SLOW) || self.groups.iter().any(|g| OWN_BOOT.contains(g));
        match filter {
            None => !slow,
            Some(f) => {
                self.groups.contains(&f) || self.name == f || (!slow && self.name.contains(f))
            }
        }
    }
}

/// Formats a report as the line the host parses.
pub fn format_report(r: &Report) -> String {
    let one_line = |s: &str| s.replace('\n', " | ");
    match &r.outcome {
        Outcome::Pass => format!("PASS {}", r.name),
        Outcome::Fail(why) => format!("FAIL {}: {}", r.name, one_line(why)),
        Outcome::Skip(why) => format!("SKIP {}: {}", r.name, one_line(why)),
    }
}

/// Runs the selected tests in order and writes `results.txt`; returns the exit code.
pub fn run_all(env: &Env, tests: &[Test], filter: Option<&str>) -> i32 {
    let path = env.out.join("results.txt");
    let mut file = match fs::File::create(&path) {
        Ok(f) => f,
        Err(e) => {
            println!("cannot create {}: {e}", path.display());
            return 2;
        }
    };
    let selected: Vec<&Test> = tests.iter().filter(|t| t.selected_by(filter)).collect();
    if selected.is_empty() {
        println!("no test matches {filter:?}");
        return 2;
    }
    let mut failed = false;
    for test in selected {
        println!("# running {}", test.name);
        let started = Instant::now();
        let mut reports = match (test.run)(env) {
            Ok(sub) => sub,
            Err(why) => vec![Report {
                name: test.name.to_string(),
                outcome: Outcome::Fail(why),
            }],
        };
        // A test without sub-results reports itself; one with sub-results (e.g. one per
        // KUnit case) is represented by them.
        if reports.is_empty() {
            reports.push(Report {
                name: test.name.to_string(),
                outcome: Outcome::Pass,
            });
        }
        println!(
            "# {} took {:.1} s",
            test.name,
            started.elapsed().as_secs_f64()
        );
        for r in &reports {
            let line = format_report(r);
            println!("{line}");
            if writeln!(file, "{line}").is_err() {
                println!("cannot write {}", path.display());
                return 2;
            }
            failed |= matches!(r.outcome, Outcome::Fail(_));
        }
    }
    if file.sync_all().is_err() {
        return 2;
    }
    i32::from(failed)
}

/// Turns a condition into a test error.
pub fn ensure(cond: bool, why: impl FnOnce() -> String) -> Result<(), String> {
    if cond {
        Ok(())
    } else {
        Err(why())
    }
}

/// Polls `cond` every 20 ms until it holds (true) or `timeout` passes (false).
pub fn wait_until(timeout: Duration, cond: impl FnMut() -> bool) -> bool {
    poll_until(timeout, Duration::from_millis(20), cond)
}

/// Polls `cond` every `period` until it holds (true) or `timeout` passes (false).
pub fn poll_until(timeout: Duration, period: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let start = Instant::now();
    loop {
        if cond() {
            return true;
        }
        if start.elapsed() >= timeout {
            return false;
        }
        thread::sleep(period);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn test(name: &'static str, groups: &'static [&'static str]) -> Test {
        Test {
            name,
            groups,
            run: |_| Ok(vec![]),
        }
    }

    #[test]
    fn slow_tests_are_opt_in() {
        let fast = test("vfio/qemu-assign", &["vfio", "vfio-qemu"]);
        let slow = test("vfio/qemu-nested-guest-io", &[SLOW, "vfio-qemu"]);
        for (filter, fast_in, slow_in) in [
            (None, true, false),
            (Some("vfio"), true, false),
            (Some("qemu"), true, false),
            (Some("vfio-qemu"), true, true),
            (Some(SLOW), false, true),
            (Some("vfio/qemu-nested-guest-io"), false, true),
            (Some("smoke"), false, false),
        ] {
            assert_eq!(fast.selected_by(filter), fast_in, "{filter:?}");
            assert_eq!(slow.selected_by(filter), slow_in, "{filter:?}");
        }
    }

    #[test]
    fn untracked_tests_run_only_when_their_group_is_asked_for() {
        let t = test("dirty-tracking/without-device-tracking", &[LM_TRACK_OFF]);
        for (filter, want) in [
            (None, false),
            (Some("dirty-tracking"), false),
            (Some("without"), false),
            (Some(LM_TRACK_OFF), true),
            (Some("dirty-tracking/without-device-tracking"), true),
        ] {
            assert_eq!(t.selected_by(filter), want, "{filter:?}");
        }
    }

    #[test]
    fn concurrency_tests_run_only_when_their_group_is_asked_for() {
        let t = test("concurrency/8-migrations-under-fio", &[CONCURRENCY]);
        for (filter, want) in [
            (None, false),
            (Some("migration"), false),
            (Some("migrations"), false),
            (Some(CONCURRENCY), true),
            (Some("concurrency/8-migrations-under-fio"), true),
        ] {
            assert_eq!(t.selected_by(filter), want, "{filter:?}");
        }
    }
}
