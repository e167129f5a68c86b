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

    // (3) the guest suites, one boot; then the groups that need a VM of their own
    // (a PF without memory change tracking; many VFs), each in a boot of its own.
    let filter: Vec<&str> = opts.filter.iter().map(String::as_str).collect();
    if !own_boots_only(opts.filter.as_deref()) {
        guest_boot(
            paths,
            opts,
            (&k, &ko, &bin, &q),
            &rundir,
            &filter,
            &MAIN_BOOT,
            &mut tally,
        );
    }
    for own in OWN_BOOTS
        .iter()
        .filter(|b| b.selected(opts.filter.as_deref()))
    {
        match rundir::create(paths) {
            Ok(dir) => guest_boot(
                paths,
                opts,
                (&k, &ko, &bin, &q),
                &dir,
                &[own.group],
                own,
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

/// A VM boot of the suite: its VFs, whether its PF tracks memory changes, and, for a
/// boot of its own, the one guest test group it runs and which filters select it.
#[derive(Debug)]
pub struct Boot {
    /// The group of guest tests the boot runs (the guest runner selects them only by this
    /// group or their exact names); empty for the main boot.
    pub group: &'static str,
    /// The tests of `group`, by name.
    pub tests: &'static [&'static str],
    /// Other filters that select the boot besides `group` and `tests`.
    pub also: &'static [&'static str],
    /// Whether the unfiltered `cargo xtask test` runs it.
    pub in_full_suite: bool,
    /// The VFs of the emulated PF and their resources.
    pub sizing: vm::VfSizing,
    /// Whether the emulated PF tracks the memory its VFs write (`x-lm-track`).
    pub lm_track: bool,
    /// What `cargo xtask test` prints before the boot.
    pub banner: &'static str,
}

impl Boot {
    /// Whether the suite's filter selects this boot of its own.
    pub fn selected(&self, filter: Option<&str>) -> bool {
        match filter {
            None => self.in_full_suite,
            Some(f) => self.also.contains(&f) || self.only(Some(f)),
        }
    }

    /// Whether the filter names this boot's group or one of its tests (and so nothing
    /// the main boot runs).
    pub fn only(&self, filter: Option<&str>) -> bool {
        filter.is_some_and(|f| f == self.group || self.tests.contains(&f))
    }
}

/// The main boot: every test not in a group of its own, [`vm::DEFAULT_VFS`] VFs.
pub const MAIN_BOOT: Boot = Boot {
    group: "",
    tests: &[],
    also: &[],
    in_full_suite: true,
    sizing: vm::VfSizing::default_for(vm::DEFAULT_VFS),
    lm_track: true,
    banner: "",
};

/// The group of guest tests that need a PF without memory change tracking (the model's
/// `x-lm-track=off`).
pub const UNTRACKED_GROUP: &str = "lm-track-off";

/// The group of guest tests of many VFs at once.
pub const CONCURRENCY_GROUP: &str = "concurrency";

/// VFs of the concurrency boot: 8 migrating pairs and 2 block-mode VFs need 18, the
/// concurrent mode switches 32.
pub const CONCURRENCY_VFS: u16 = 32;

/// The boots of their own, in the order they run after the main boot.
pub const OWN_BOOTS: [Boot; 2] = [
    Boot {
        group: UNTRACKED_GROUP,
        tests: &["dirty-tracking/without-device-tracking"],
        also: &["dirty-tracking"],
        in_full_suite: true,
        sizing: vm::VfSizing::default_for(vm::DEFAULT_VFS),
        lm_track: false,
        banner: "[vm] the PF without memory change tracking (x-lm-track=off):",
    },
    Boot {
        group: CONCURRENCY_GROUP,
        tests: &[
            "concurrency/8-migrations-under-fio",
            "concurrency/32-mode-switches",
        ],
        also: &[],
        in_full_suite: true,
        sizing: vm::VfSizing::default_for(CONCURRENCY_VFS),
        lm_track: true,
        banner: "[vm] many VFs at once (32 VFs):",
    },
];

/// Whether the filter selects nothing but boots of their own.
pub fn own_boots_only(filter: Option<&str>) -> bool {
    OWN_BOOTS.iter().any(|b| b.only(filter))
}

/// One boot `b` of the guest suites with `filter` in `rundir`; results go into `tally`.
#[allow(clippy::too_many_arguments)]
fn guest_boot(
    paths: &Paths,
    opts: &TestOpts,
    (k, ko, bin, q): (&kernel::Kernel, &Path, &Path, &qemu::Qemu),
    rundir: &Path,
    filter: &[&str],
    b: &Boot,
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
        sizing: b.sizing,
        mttcg: false,
        echo: if opts.verbose {
            Echo::All
        } else {
            Echo::Results
        },
        timeout: opts.timeout,
        verbose: opts.verbose,
        lm_track: b.lm_track,
    };
    if !b.banner.is_empty() {
        println!("{}", b.banner);
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

    fn selected(filter: Option<&str>) -> Vec<&'static str> {
        let mut v = Vec::new();
        if !own_boots_only(filter) {
            v.push("main");
        }
        v.extend(
            OWN_BOOTS
                .iter()
                .filter(|b| b.selected(filter))
                .map(|b| b.group),
        );
        v
    }

    #[test]
    fn each_filter_boots_what_it_selects() {
        let all = vec!["main", UNTRACKED_GROUP, CONCURRENCY_GROUP];
        for (filter, want) in [
            (None, all),
            (Some("lm-track-off"), vec![UNTRACKED_GROUP]),
            (Some("dirty-tracking"), vec!["main", UNTRACKED_GROUP]),
            (
                Some("dirty-tracking/without-device-tracking"),
                vec![UNTRACKED_GROUP],
            ),
            (Some("without"), vec!["main"]),
            (Some("migration"), vec!["main"]),
            (Some("smoke"), vec!["main"]),
            (Some("concurrency"), vec![CONCURRENCY_GROUP]),
            (
                Some("concurrency/8-migrations-under-fio"),
                vec![CONCURRENCY_GROUP],
            ),
            (
                Some("concurrency/32-mode-switches"),
                vec![CONCURRENCY_GROUP],
            ),
            (Some("switches"), vec!["main"]),
        ] {
            assert_eq!(selected(filter), want, "{filter:?}");
        }
    }

    #[test]
    fn every_boot_is_a_vm_qemu_accepts() {
        for b in std::iter::once(&MAIN_BOOT).chain(OWN_BOOTS.iter()) {
            let p = vm::NvmeParams::for_sizing(b.sizing);
            assert!(p.check().is_ok(), "{}: {p:?}", b.group);
        }
        let c = OWN_BOOTS
            .iter()
            .find(|b| b.group == CONCURRENCY_GROUP)
            .unwrap();
        // 8 migrating pairs and 2 block-mode VFs; 32 VFs switching at once.
        assert!(c.sizing.vfs >= 32);
        assert!(c.lm_track);
        assert!(!OWN_BOOTS[0].lm_track);
    }
}
