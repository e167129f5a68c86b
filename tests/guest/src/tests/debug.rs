// SPDX-License-Identifier: GPL-2.0

//! Checks that only a debug kernel (`cargo xtask test --debug`) can make: kmemleak.

use std::{fs, path::Path, thread, time::Duration};

use crate::harness::{ensure, Env, Report, Test};

/// The kmemleak control and report file.
const KMEMLEAK: &str = "/sys/kernel/debug/kmemleak";

/// The debug-kernel tests; empty on a kernel without kmemleak.
pub fn tests() -> Vec<Test> {
    if !Path::new(KMEMLEAK).exists() {
        return vec![];
    }
    vec![Test {
        name: "debug/kmemleak-no-rnvme-leaks",
        groups: &["debug"],
        run: kmemleak,
    }]
}

/// Splits a kmemleak report into its objects (each starts with `unreferenced object`).
pub fn leaked_objects(report: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for line in report.lines() {
        if line.starts_with("unreferenced object") {
            out.push(String::new());
        }
        if let Some(obj) = out.last_mut() {
            obj.push_str(line);
            obj.push('\n');
        }
    }
    out
}

/// Runs after every other test: scans for leaks and fails on any object allocated from
/// the rnvme module (its backtrace names `[rnvme]`).
fn kmemleak(_env: &Env) -> Result<Vec<Report>, String> {
    // Objects freed just now may still look unreferenced; two scans a moment apart are
    // what the kmemleak documentation recommends.
    for _ in 0..2 {
        fs::write(KMEMLEAK, "scan").map_err(|e| format!("{KMEMLEAK}: {e}"))?;
        thread::sleep(Duration::from_secs(1));
    }
    let report = fs::read_to_string(KMEMLEAK).map_err(|e| format!("{KMEMLEAK}: {e}"))?;
    let objects = leaked_objects(&report);
    let ours: Vec<&String> = objects.iter().filter(|o| o.contains("[rnvme]")).collect();
    println!(
        "# kmemleak: {} unreferenced object(s), {} from rnvme",
        objects.len(),
        ours.len()
    );
    ensure(ours.is_empty(), || {
        format!("{} leak(s) from rnvme, first:\n{}", ours.len(), ours[0])
    })?;
    Ok(vec![])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_report_into_objects() {
        let report = "unreferenced object 0xffff888 (size 64):\n  comm \"insmod\"\n  backtrace:\n    kmalloc_trace+0x1/0x2\n    _RNvX [rnvme]\nunreferenced object 0xffff999 (size 32):\n  backtrace:\n    kernel_init+0x1\n";
        let objs = leaked_objects(report);
        assert_eq!(objs.len(), 2);
        assert!(objs[0].contains("[rnvme]"));
        assert!(!objs[1].contains("[rnvme]"));
        assert!(leaked_objects("").is_empty());
    }
}
