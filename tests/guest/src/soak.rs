// SPDX-License-Identifier: GPL-2.0

//! `--soak`: the riskiest concurrent scenario tests, run again and again in one boot, each
//! run counted as clean, a data mismatch, a kernel report or another failure.
//!
//! Every case is an existing test of the suite (its fixtures load the module afresh and
//! tear it down), chosen because it overlaps I/O checked by fio's `verify=crc32c` with
//! `verify_fatal=1` (or the test's own read-back comparison) with something that takes
//! queues or the controller away: a refused mode switch, a controller reset, a function
//! reset, a migration back and forth, a PF reset in the middle of a migration, enabling
//! and disabling VFs. The cases run round-robin until each has run `runs` times or the
//! time budget is spent. A run whose failure says data read back wrong is a
//! **mismatch** ([`classify`]); a run after which the kernel log holds a problem report is
//! a **kernel report** (counted besides its outcome); any other failure is a
//! **failure**. The details of every run that was not clean go to
//! `<out>/soak/<case>-<n>.txt` (the error and the kernel log of the run).
//!
//! Prints `soak-run <case> <n>: <outcome>` per run, then per case `soak <case>: N runs, M
//! mismatches, K kernel reports, F failures`, and last `soak total: N runs, M mismatches`.

use std::{
    fs,
    time::{Duration, Instant},
};

use crate::{
    harness::{Env, Outcome, Test},
    kmsg,
    tests::{all as all_tests, vfio_qemu::problems},
};

/// A soak case: a name and the test that it runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Case {
    /// The case's name in the output (`soak <name>: ...`) and for selection.
    pub name: &'static str,
    /// The suite's test it runs.
    pub test: &'static str,
}

/// The cases, in the order they take turns.
pub const CASES: &[Case] = &[
    // The case of the unexplained mismatch of 2026-12-03: switches to vfio mode refused
    // while fio writes and verifies the VF's disk, then the switch and back.
    Case {
        name: "switch-during-fio",
        test: "vfio/switch-during-fio",
    },
    // Controller resets (`NVME_IOCTL_RESET`) of the PF while fio verifies on it.
    Case {
        name: "reset-during-fio",
        test: "hardening/reset-during-fio-verify",
    },
    // Function level resets of the PF under fio verify.
    Case {
        name: "function-reset-during-fio",
        test: "recovery/function-reset-under-fio-verify",
    },
    // Controller resets racing mode switches of VFs.
    Case {
        name: "reset-during-mode-switch",
        test: "hardening/reset-during-mode-switch",
    },
    // A VF's userspace client doing I/O while it migrates back and forth between two VFs.
    Case {
        name: "migration-with-io",
        test: "migration/live-io-moves-back-and-forth",
    },
    // A PF reset while a VF is in the middle of a migration.
    Case {
        name: "pf-reset-while-migrating",
        test: "migration/pf-reset-is-error-until-device-reset",
    },
    // VFs enabled and disabled while the PF runs fio verify.
    Case {
        name: "sriov-while-io",
        test: "sriov/enable-fio-disable",
    },
];

/// The cases `filter` selects: all without one, else those whose name or test contains it.
pub fn select(filter: Option<&str>) -> Vec<Case> {
    CASES
        .iter()
        .filter(|c| filter.is_none_or(|f| c.name.contains(f) || c.test.contains(f)))
        .copied()
        .collect()
}

/// What one run of a case came to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunOutcome {
    /// It passed.
    Clean,
    /// It failed because data read back different from what was written.
    Mismatch,
    /// It failed for another reason.
    Failure,
}

/// What a failure message says about the data: fio's verify complaints (`verify: bad
/// magic header`, `bad header offset`, `crc32c: verify failed at file ...`) and the
/// tests' own read-back comparisons (`reads back different`, `does not read back`) are
/// a mismatch; anything else (an I/O error, a refused command, a timeout) is not.
pub fn classify(failure: &str) -> RunOutcome {
    const MISMATCH: &[&str] = &[
        "verify: bad",
        "verify failed at",
        "bad header",
        "bad magic",
        "reads back different",
        "does not read back",
        "read back different",
        "differs",
        "page changed",
    ];
    if MISMATCH.iter().any(|m| failure.contains(m)) {
        RunOutcome::Mismatch
    } else {
        RunOutcome::Failure
    }
}

/// The counts of one case.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Tally {
    /// Runs done.
    pub runs: u64,
    /// Runs that failed with a data mismatch.
    pub mismatches: u64,
    /// Runs after which the kernel log held a problem report.
    pub kernel_reports: u64,
    /// Runs that failed otherwise.
    pub failures: u64,
}

impl Tally {
    /// Counts one run.
    pub fn add(&mut self, outcome: RunOutcome, kernel_report: bool) {
        self.runs += 1;
        match outcome {
            RunOutcome::Clean => {}
            RunOutcome::Mismatch => self.mismatches += 1,
            RunOutcome::Failure => self.failures += 1,
        }
        self.kernel_reports += u64::from(kernel_report);
    }

    /// Whether every run was clean.
    pub fn clean(&self) -> bool {
        self.mismatches == 0 && self.kernel_reports == 0 && self.failures == 0
    }

    /// The summary line of case `name`.
    pub fn line(&self, name: &str) -> String {
        format!(
            "soak {name}: {} runs, {} mismatches, {} kernel reports, {} failures",
            self.runs, self.mismatches, self.kernel_reports, self.failures
        )
    }
}

/// Runs the soak: the cases `filter` selects, round-robin, until each has run `runs` times
/// or `budget` has passed (a run that started goes on to its end); returns the exit code
/// (0 only if every run was clean).
pub fn run(env: &Env, filter: Option<&str>, runs: u64, budget: Duration) -> i32 {
    let cases = select(filter);
    if cases.is_empty() {
        println!("no soak case matches {filter:?}");
        return 2;
    }
    let all = all_tests();
    let mut plan: Vec<(Case, &Test)> = Vec::new();
    for case in &cases {
        match all.iter().find(|t| t.name == case.test) {
            Some(t) => plan.push((*case, t)),
            None => {
                println!("soak case {}: no test {}", case.name, case.test);
                return 2;
            }
        }
    }
    let details = env.out.join("soak");
    if let Err(e) = fs::create_dir_all(&details) {
        println!("cannot create {}: {e}", details.display());
        return 2;
    }
    println!(
        "# soak: {} cases, up to {runs} runs each, {} min",
        plan.len(),
        budget.as_secs() / 60
    );
    let started = Instant::now();
    let mut tallies = vec![Tally::default(); plan.len()];
    'rounds: loop {
        let mut ran = false;
        for (i, (case, test)) in plan.iter().enumerate() {
            if tallies[i].runs >= runs {
                continue;
            }
            if started.elapsed() >= budget {
                break 'rounds;
            }
            ran = true;
            let n = tallies[i].runs + 1;
            let (outcome, report, detail) = run_once(env, test);
            tallies[i].add(outcome, report.is_some());
            let what = match (outcome, &report) {
                (RunOutcome::Clean, None) => "clean".to_string(),
                (o, r) => {
                    let file = details.join(format!("{}-{n}.txt", case.name));
                    let mut text = format!("{} run {n}: {o:?}\n{detail}\n", case.name);
                    if let Some(r) = r {
                        text.push_str(&format!("kernel report: {r}\n"));
                    }
                    let _ = fs::write(&file, text);
                    let first = detail.lines().next().unwrap_or_default();
                    format!("{o:?}, kernel report: {}: {first}", report.is_some())
                }
            };
            println!(
                "soak-run {} {n}: {what} ({:.0} s into the soak)",
                case.name,
                started.elapsed().as_secs_f64()
            );
        }
        if !ran {
            break;
        }
    }
    let mut total = Tally::default();
    for ((case, _), t) in plan.iter().zip(&tallies) {
        println!("{}", t.line(case.name));
        total.runs += t.runs;
        total.mismatches += t.mismatches;
        total.kernel_reports += t.kernel_reports;
        total.failures += t.failures;
    }
    println!(
        "# soak took {:.0} s; {} kernel reports, {} other failures",
        started.elapsed().as_secs_f64(),
        total.kernel_reports,
        total.failures
    );
    println!(
        "soak total: {} runs, {} mismatches",
        total.runs, total.mismatches
    );
    i32::from(!total.clean())
}

/// One run of `test`: its outcome, the first kernel problem report logged meanwhile, and
/// what it said (its error, the failing sub-results and the kernel log of the run).
fn run_once(env: &Env, test: &Test) -> (RunOutcome, Option<String>, String) {
    let mark = kmsg::mark().unwrap_or(0);
    let failures: Vec<String> = match (test.run)(env) {
        Ok(reports) => reports
            .into_iter()
            .filter_map(|r| match r.outcome {
                Outcome::Fail(why) => Some(format!("{}: {why}", r.name)),
                Outcome::Pass | Outcome::Skip(_) => None,
            })
            .collect(),
        Err(why) => vec![why],
    };
    let log = kmsg::since(mark).unwrap_or_else(|e| vec![format!("(kernel log: {e})")]);
    let report = problems(&log).first().map(|l| l.to_string());
    let outcome = failures
        .iter()
        .map(|f| classify(f))
        .max_by_key(|o| match o {
            RunOutcome::Mismatch => 2,
            RunOutcome::Failure => 1,
            RunOutcome::Clean => 0,
        })
        .unwrap_or(RunOutcome::Clean);
    let mut detail = failures.join("\n");
    if outcome != RunOutcome::Clean || report.is_some() {
        detail.push_str("\n--- kernel log of the run ---\n");
        detail.push_str(&log.join("\n"));
    }
    (outcome, report, detail)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fio_verify_complaints_and_read_backs_are_mismatches() {
        for m in [
            "fio verify failed during the switch attempts: verify: bad magic header 0, wanted acca",
            "fio verify failed: crc32c: verify failed at file /dev/rnvme1n1 offset 1234",
            "verify: bad header offset 8192, wanted 4096 at file /dev/x offset 4096",
            "chunk 3 of 9 does not read back after the migration",
            "block 7 reads back different",
        ] {
            assert_eq!(classify(m), RunOutcome::Mismatch, "{m}");
        }
        for f in [
            "fio verify failed during resets: fio: io_u error on file /dev/x: Input/output error",
            "fio stalled for 120 s during the switch attempts",
            "echo vfio during fio: errno 5",
            "the kernel reported [\"WARNING: ...\"]",
        ] {
            assert_eq!(classify(f), RunOutcome::Failure, "{f}");
        }
    }

    #[test]
    fn tallies_count_each_outcome_and_reports_apart() {
        let mut t = Tally::default();
        t.add(RunOutcome::Clean, false);
        assert!(t.clean());
        t.add(RunOutcome::Clean, true);
        t.add(RunOutcome::Mismatch, false);
        t.add(RunOutcome::Failure, true);
        assert_eq!(
            t,
            Tally {
                runs: 4,
                mismatches: 1,
                kernel_reports: 2,
                failures: 1
            }
        );
        assert!(!t.clean());
        assert_eq!(
            t.line("x"),
            "soak x: 4 runs, 1 mismatches, 2 kernel reports, 1 failures"
        );
    }

    #[test]
    fn every_case_names_a_test_of_the_suite() {
        let all = crate::tests::all();
        for c in CASES {
            assert!(all.iter().any(|t| t.name == c.test), "{c:?}");
        }
        assert_eq!(select(Some("switch-during")).len(), 1);
        assert_eq!(select(Some("migration/")).len(), 2);
        assert_eq!(select(None).len(), CASES.len());
        assert!(select(Some("nothing-like-it")).is_empty());
    }
}
