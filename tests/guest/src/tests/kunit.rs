// SPDX-License-Identifier: GPL-2.0

//! The module's KUnit suites: they run when the module loads; every case becomes one result.

use crate::fixture::load_fresh;
use crate::{
    harness::{Env, Outcome, Report, Test},
    kmsg,
    ktap::{self, CaseStatus},
    module::{self, RNVME},
};

/// Suites the module must contain.
pub const SUITES: &[&str] = &[
    "rnvme_spec",
    "rnvme_kapi_io",
    "rnvme_kapi_pci",
    "rnvme_kapi_sync",
    "rnvme_kapi_spinlock",
    "rnvme_kapi_blk_mq",
    "rnvme_kapi_workqueue",
    "rnvme_mig",
];

/// The KUnit test.
pub fn tests() -> Vec<Test> {
    vec![Test {
        name: "kunit",
        groups: &["smoke", "kunit"],
        run: kunit,
    }]
}

fn kunit(env: &Env) -> Result<Vec<Report>, String> {
    let mark = kmsg::mark()?;
    load_fresh(env)?;
    let log = kmsg::since(mark)?;
    module::rmmod(RNVME)?;

    if log.iter().any(|l| l.contains("kunit: disabled")) {
        return Err("KUnit is disabled in this kernel (kunit.enable=0)".into());
    }
    let cases = ktap::parse(&log);
    let mut reports: Vec<Report> = cases
        .iter()
        .map(|c| Report {
            name: format!("kunit/{}/{}", c.suite, c.case),
            outcome: match c.status {
                CaseStatus::Passed => Outcome::Pass,
                CaseStatus::Failed => Outcome::Fail(c.diagnostics.join(" ")),
                CaseStatus::Skipped => Outcome::Skip("skipped by the KUnit case".into()),
            },
        })
        .collect();
    for suite in SUITES {
        if !cases.iter().any(|c| c.suite == *suite) {
            reports.push(Report {
                name: format!("kunit/{suite}"),
                outcome: Outcome::Fail("suite did not run (no KTAP output)".into()),
            });
        }
    }
    Ok(reports)
}
