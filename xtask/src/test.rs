//! `cargo xtask test`: build everything, run the host unit tests and the
//! in-guest suites, print every result and one `N passed, M failed` line.
//! An errored phase is a failure, never silently skipped.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::Result;

use crate::kernel;
use crate::module;
use crate::paths::Paths;
use crate::proc;
use crate::qemu;
use crate::results::{self, Outcome, Tally};
use crate::rundir;
use crate::session::{self, BootOpts};
use crate::shutdown;
use crate::vm::{self, Echo};

pub struct TestOpts {
    pub debug: bool,
    pub filter: Option<String>,
    pub timeout: Duration,
    pub verbose: bool,
}

/// Returns the process exit code (0 only when nothing failed).
pub fn run(paths: &Paths, opts: &TestOpts) -> Result<i32> {
    let mut tally = Tally::default();
    let all = Instant::now();

    // (1) deps + kernel + module + guest runner + the L0 QEMU. A failure here is
    // counted and the host tests still run; only the VM phase needs the artifacts.
    let built = kernel::ensure(paths, opts.debug).and_then(|k| {
        let a = module::build(paths, &k, true)?;
        let (ko, bin) = a.require()?;
        let q = qemu::ensure(paths)?;
        Ok((k, ko, bin, q))
    });
    let built = match built {
        Ok(b) => Some(b),
        Err(e) => {
            proc::print_error("[test] build failed: ", &e);
            tally.fail("build", &format!("{e:#}"));
            None
        }
    };
    let rundir = match rundir::create(paths) {
        Ok(d) => d,
        Err(e) => {
            proc::print_error("[test] ", &e);
            tally.fail("run-dir", &format!("{e:#}"));
            return Ok(finish(&tally, all));
        }
    };

    // (2) host tests.
    let host: [(&str, &[&str]); 2] = [
        (
            "host-workspace",
            &["test", "--workspace", "--exclude", "xtask"],
        ),
        ("host-xtask", &["test", "-p", "xtask"]),
    ];
    for (name, args) in host {
        host_tests(paths, &rundir, name, args, &mut tally);
    }

    let Some((k, ko, bin, q)) = built else {
        println!("[vm] not run: the build failed");
        return Ok(finish(&tally, all));
    };

    // (2b) the install story: `make install` into a staging root.
    let t = Instant::now();
    match module::check_install(paths, &k, &rundir.join("install-root")) {
        Ok(()) => {
            println!("PASS install/make-install ({})", proc::secs(t.elapsed()));
            tally.passed += 1;
        }
        Err(e) => {
            println!("FAIL install/make-install: {e}");
            tally.fail("install/make-install", &e);
        }
    }

    // (3) the guest suites, one boot; then the tests of a PF without memory change
    // tracking, in a second boot whose emulated PF has it off.
    let filter: Vec<&str> = opts.filter.iter().map(String::as_str).collect();
    if !untracked_only(opts.filter.as_deref()) {
        guest_boot(
            paths,
            opts,
            (&k, &ko, &bin, &q),
            &rundir,
            &filter,
            true,
            &mut tally,
        );
    }
    if untracked_selected(opts.filter.as_deref()) {
        match rundir::create(paths) {
            Ok(dir) => guest_boot(
                paths,
                opts,
                (&k, &ko, &bin, &q),
                &dir,
                &[UNTRACKED_GROUP],
                false,
                &mut tally,
            ),
            Err(e) => {
                proc::print_error("[test] ", &e);
                tally.fail("run-dir", &format!("{e:#}"));
            }
        }
    }
    Ok(finish(&tally, all))
}

/// The group of guest tests that need a PF without memory change tracking (the model's
/// `x-lm-track=off`): they run in a boot of their own, and only there (the guest runner
/// selects them only by this group or their exact name).
pub const UNTRACKED_GROUP: &str = "lm-track-off";

/// The tests of [`UNTRACKED_GROUP`].
const UNTRACKED_TESTS: &[&str] = &["dirty-tracking/without-device-tracking"];

/// Whether the suite's filter selects the boot without memory change tracking: no filter,
/// its group, the `dirty-tracking` group, or one of its tests by name.
pub fn untracked_selected(filter: Option<&str>) -> bool {
    match filter {
        None => true,
        Some(f) => f == "dirty-tracking" || untracked_only(Some(f)),
    }
}

/// Whether the filter selects nothing but the boot without memory change tracking.
pub fn untracked_only(filter: Option<&str>) -> bool {
    filter.is_some_and(|f| f == UNTRACKED_GROUP || UNTRACKED_TESTS.contains(&f))
}

/// One boot of the guest suites with `filter` in `rundir`, the emulated PF tracking the
/// memory its VFs write if `lm_track`; results go into `tally`.
#[allow(clippy::too_many_arguments)]
fn guest_boot(
    paths: &Paths,
    opts: &TestOpts,
    (k, ko, bin, q): (&kernel::Kernel, &Path, &Path, &qemu::Qemu),
    rundir: &Path,
    filter: &[&str],
    lm_track: bool,
    tally: &mut Tally,
) {
    let (ko, bin) = match rundir::stage(rundir, ko, bin) {
        Ok(staged) => staged,
        Err(e) => {
            proc::print_error("[test] ", &e);
            tally.fail("stage", &format!("{e:#}"));
            return;
        }
    };
    let command = rundir::guest_runner_command(&bin, &ko, &k.modroot, rundir, filter);
    let boot = BootOpts {
        sizing: vm::VfSizing::default_for(vm::DEFAULT_VFS),
        mttcg: false,
        echo: if opts.verbose {
            Echo::All
        } else {
            Echo::Results
        },
        timeout: opts.timeout,
        verbose: opts.verbose,
        lm_track,
    };
    if !lm_track {
        println!("[vm] the PF without memory change tracking (x-lm-track=off):");
    }
    match session::boot(paths, k, q, rundir, &command, boot) {
        Ok(out) => {
            let guest_fails = guest_results(rundir, &out.shown, tally);
            shutdown_result(rundir, &out.lines, tally);
            if let Some(err) = out.run_error(opts.timeout) {
                eprintln!("[vm] error: {err}");
                out.print_tail(60);
                tally.fail("vm", &err);
            } else if let Some(code) = out.guest_exit.filter(|c| *c != 0) {
                if guest_fails == 0 {
                    tally.fail("guest-runner", &format!("exited with code {code}"));
                }
            }
            if let Some(first) = out.problems.first() {
                out.print_problems();
                tally.fail("kernel-log", first.line.trim());
            }
        }
        Err(e) => {
            proc::print_error("[vm] error: ", &e);
            tally.fail("vm", &format!("{e:#}"));
        }
    }
}

/// Run one `cargo test` invocation, output to `<rundir>/<name>.log`.
fn host_tests(paths: &Paths, rundir: &Path, name: &str, args: &[&str], tally: &mut Tally) {
    let t = Instant::now();
    let log = rundir.join(format!("{name}.log"));
    let mut cmd = Command::new("cargo");
    cmd.current_dir(&paths.repo).args(args);
    let shown = proc::show(&cmd);
    println!("[host] {shown} ...");
    let status = match proc::run_to_file(&mut cmd, &log, None) {
        Ok(s) => s,
        Err(e) => {
            tally.fail(name, &format!("{e:#}"));
            return;
        }
    };
    let output = proc::read_optional(&log).ok().flatten().unwrap_or_default();
    let sums = results::parse_libtest(&output);
    let (mut p, mut f, mut i) = (0, 0, 0);
    for s in &sums {
        p += s.passed;
        f += s.failed;
        i += s.ignored;
    }
    tally.passed += p;
    tally.skipped += i;
    let failed_names = results::libtest_failures(&output);
    for n in &failed_names {
        tally.fail(
            &format!("{name}: {n}"),
            &format!("failed (log {})", log.display()),
        );
    }
    // Failures counted by libtest but not named in the output.
    for _ in failed_names.len() as u64..f {
        tally.fail(name, &format!("test failed (log {})", log.display()));
    }
    println!(
        "[host] {shown}: {p} passed, {f} failed, {i} ignored ({})",
        proc::secs(t.elapsed())
    );
    if !status.success() && f == 0 {
        tally.fail(
            name,
            &format!(
                "`{shown}` failed ({}) without a failing test (build error?); log {}",
                proc::describe_status(status),
                log.display()
            ),
        );
    }
    if !status.success() {
        proc::print_tail(&log, 40);
    }
}

/// When the guest's last test armed the shutdown check (it left rnvme bound and wrote the
/// PF's address), judges the reboot's part of the serial log.
fn shutdown_result(rundir: &Path, lines: &[String], tally: &mut Tally) {
    let path = rundir.join(shutdown::EXPECTED_FILE);
    let bdf = match proc::read_optional(&path) {
        Ok(Some(t)) => t.trim().to_string(),
        Ok(None) => return,
        Err(e) => {
            tally.fail(shutdown::NAME, &format!("{e:#}"));
            return;
        }
    };
    let r = shutdown::check(lines, &bdf);
    println!("{}", r.line());
    tally.add(&r);
}

/// Read results.txt into the tally, printing results not already shown.
/// Returns how many failures it added.
fn guest_results(
    rundir: &Path,
    shown: &std::collections::HashSet<String>,
    tally: &mut Tally,
) -> u64 {
    let before = tally.failed;
    let path = rundir.join("results.txt");
    let text = match proc::read_optional(&path) {
        Ok(Some(t)) => t,
        Ok(None) => String::new(),
        Err(e) => {
            tally.fail("guest", &format!("{e:#}"));
            return 1;
        }
    };
    let (res, bad) = results::parse_results(&text);
    if res.is_empty() {
        tally.fail(
            "guest",
            &format!(
                "guest produced no results ({} missing or empty)",
                path.display()
            ),
        );
    }
    for r in &res {
        let line = r.line();
        if !shown.contains(&line) {
            println!("{line}");
        }
        tally.add(r);
    }
    for (n, why) in bad {
        tally.fail("results.txt", &format!("line {n}: {why}"));
    }
    let fails = res
        .iter()
        .filter(|r| matches!(r.outcome, Outcome::Fail(_)))
        .count();
    println!(
        "[vm] {} result(s) in {}, {fails} failed",
        res.len(),
        path.display()
    );
    tally.failed - before
}

fn finish(t: &Tally, all: Instant) -> i32 {
    if !t.failures.is_empty() {
        println!("\nfailures:");
        for (n, r) in &t.failures {
            println!("  FAIL {n}: {r}");
        }
    }
    println!("[test] total {}", proc::secs(all.elapsed()));
    println!("{}", t.summary());
    if t.failed > 0 {
        1
    } else {
        0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_untracked_boot_runs_for_the_whole_suite_and_its_own_filters() {
        for (filter, untracked, only) in [
            (None, true, false),
            (Some("lm-track-off"), true, true),
            (Some("dirty-tracking"), true, false),
            (Some("dirty-tracking/without-device-tracking"), true, true),
            (Some("without"), false, false),
            (Some("migration"), false, false),
            (Some("smoke"), false, false),
        ] {
            assert_eq!(untracked_selected(filter), untracked, "{filter:?}");
            assert_eq!(untracked_only(filter), only, "{filter:?}");
        }
    }
}
