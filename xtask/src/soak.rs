//! `cargo xtask soak`: the guest runner's soak (`--soak`, `tests/guest/src/soak.rs`) in
//! one or two VM boots, the second with the host loaded on purpose.
//!
//! With `--load both` (the default) the runs and the minutes are split between a boot on a
//! quiet host and a boot during which the host compiles the guest test runner from
//! scratch again and again (`cargo build --release` into a target directory of its own in
//! the cache, cleaned after every build), two jobs, so that the VM's vCPUs compete for the
//! host's cores as they did when the mismatch of 2026-12-03 was seen. Prints each boot's
//! lines as the guest prints them, then the cases summed over the boots and last `soak
//! total: N runs, M mismatches`. Not part of `cargo xtask test` (nor of CI).

use std::{
    collections::BTreeMap,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc,
    },
    thread,
    time::Duration,
};

use anyhow::{bail, Context, Result};

use crate::{
    kernel, module,
    paths::Paths,
    proc, qemu, rundir,
    session::{self, BootOpts},
    vm::{self, Echo},
};

/// When the host is loaded during the soak.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Load {
    /// One boot on a quiet host.
    None,
    /// One boot with the host compiling throughout.
    Compile,
    /// A quiet boot, then a loaded one, each with half the runs and minutes.
    Both,
}

/// What to soak.
#[derive(Debug, Clone)]
pub struct SoakOpts {
    /// The debug kernel instead of the release one.
    pub debug: bool,
    /// Runs of each case (over all boots).
    pub runs: u64,
    /// The time budget in minutes (over all boots).
    pub minutes: u64,
    /// When the host is loaded.
    pub load: Load,
    /// Only the cases whose name or test contains this.
    pub filter: Option<String>,
    /// Stream the whole guest console.
    pub verbose: bool,
}

/// The counts of one case, as the guest prints them.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Counts {
    pub runs: u64,
    pub mismatches: u64,
    pub kernel_reports: u64,
    pub failures: u64,
}

impl Counts {
    fn add(&mut self, o: &Counts) {
        self.runs += o.runs;
        self.mismatches += o.mismatches;
        self.kernel_reports += o.kernel_reports;
        self.failures += o.failures;
    }
}

/// Parses a guest line `soak <case>: N runs, M mismatches, K kernel reports, F failures`.
pub fn parse_case_line(line: &str) -> Option<(String, Counts)> {
    let rest = line.trim().strip_prefix("soak ")?;
    let (case, counts) = rest.split_once(": ")?;
    if case == "total" || case.contains(' ') {
        return None;
    }
    let mut n = counts.split(", ").map(|part| {
        let (num, what) = part.split_once(' ')?;
        Some((num.parse::<u64>().ok()?, what))
    });
    let mut next = |want: &str| match n.next() {
        Some(Some((v, what))) if what == want => Some(v),
        _ => None,
    };
    let c = Counts {
        runs: next("runs")?,
        mismatches: next("mismatches")?,
        kernel_reports: next("kernel reports")?,
        failures: next("failures")?,
    };
    Some((case.to_string(), c))
}

/// The boots of a soak: (loaded, runs, minutes) each.
pub fn boots(load: Load, runs: u64, minutes: u64) -> Vec<(bool, u64, u64)> {
    match load {
        Load::None => vec![(false, runs, minutes)],
        Load::Compile => vec![(true, runs, minutes)],
        Load::Both => {
            let (r1, m1) = (runs.div_ceil(2), minutes.div_ceil(2));
            vec![(false, r1, m1), (true, runs - r1, minutes - m1)]
        }
    }
}

/// Runs the soak; returns the process exit code (0 only if every run was clean and no
/// boot failed).
pub fn run(paths: &Paths, opts: &SoakOpts) -> Result<i32> {
    if opts.runs == 0 || opts.minutes == 0 {
        bail!("--runs and --minutes must be at least 1");
    }
    let k = kernel::ensure(paths, opts.debug)?;
    let (ko, bin) = module::build(paths, &k, true)?.require()?;
    let q = qemu::ensure(paths)?;
    let mut sums: BTreeMap<String, Counts> = BTreeMap::new();
    let mut failed = false;
    for (loaded, runs, minutes) in boots(opts.load, opts.runs, opts.minutes) {
        if runs == 0 || minutes == 0 {
            continue;
        }
        let rundir = rundir::create(paths)?;
        let (ko, bin) = rundir::stage(&rundir, &ko, &bin)?;
        let runs_arg = runs.to_string();
        let minutes_arg = minutes.to_string();
        let mut extra = vec!["--soak", "--runs", &runs_arg, "--minutes", &minutes_arg];
        if let Some(f) = &opts.filter {
            extra.push(f);
        }
        let command = rundir::guest_runner_command(&bin, &ko, &k.modroot, &rundir, &extra);
        // The budget, a run that started at its end (the longest case takes about a
        // minute, several on the debug kernel) and the boot.
        let timeout = Duration::from_secs(minutes * 60 + if opts.debug { 1800 } else { 900 });
        let boot = BootOpts {
            sizing: vm::VfSizing::default_for(vm::DEFAULT_VFS),
            mttcg: false,
            echo: if opts.verbose {
                Echo::All
            } else {
                Echo::FromInit
            },
            timeout,
            verbose: opts.verbose,
            lm_track: true,
        };
        println!(
            "[soak] {} host: {runs} runs of each case, {minutes} min",
            if loaded { "loaded" } else { "quiet" }
        );
        let load = if loaded {
            Some(HostLoad::start(paths)?)
        } else {
            None
        };
        let out = session::boot(paths, &k, &q, &rundir, &command, boot);
        let builds = load.map(HostLoad::stop);
        let out = out?;
        if let Some(builds) = builds {
            println!("[soak] the host compiled the guest runner {builds} times meanwhile");
        }
        let code = session::exit_code(&out, timeout);
        let mut seen = false;
        for (case, c) in out.lines.iter().filter_map(|l| parse_case_line(l)) {
            sums.entry(case).or_default().add(&c);
            seen = true;
        }
        if !seen {
            eprintln!("[soak] the boot printed no soak counts (exit code {code})");
        }
        failed |= code != 0 || !seen;
    }
    let mut total = Counts::default();
    println!("[soak] over all boots:");
    for (case, c) in &sums {
        println!(
            "soak {case}: {} runs, {} mismatches, {} kernel reports, {} failures",
            c.runs, c.mismatches, c.kernel_reports, c.failures
        );
        total.add(c);
    }
    println!(
        "soak total: {} runs, {} mismatches",
        total.runs, total.mismatches
    );
    Ok(i32::from(
        failed || total.mismatches + total.kernel_reports + total.failures > 0,
    ))
}

/// The host load: a thread that builds the guest test runner from scratch in a loop.
struct HostLoad {
    stop: Arc<AtomicBool>,
    thread: thread::JoinHandle<u64>,
}

impl HostLoad {
    /// Starts compiling; the builds' output goes to `soak-load.log` in the cache.
    fn start(paths: &Paths) -> Result<Self> {
        let target = paths.cache.join("soak-load-target");
        let log = paths.cache.join("soak-load.log");
        let repo = paths.repo.clone();
        let stop = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&stop);
        let thread = thread::Builder::new()
            .name("soak-load".into())
            .spawn(move || compile_loop(&repo, &target, &log, &flag))
            .context("starting the host load")?;
        Ok(Self { stop, thread })
    }

    /// Stops the load (the build running is killed); returns the builds finished.
    fn stop(self) -> u64 {
        self.stop.store(true, Ordering::Relaxed);
        self.thread.join().unwrap_or(0)
    }
}

/// Cleans and builds `rnvme-guest-tests` into `target` until `stop`; the builds done.
fn compile_loop(repo: &Path, target: &Path, log: &Path, stop: &AtomicBool) -> u64 {
    let mut builds = 0;
    while !stop.load(Ordering::Relaxed) {
        let _ = std::fs::remove_dir_all(target);
        let mut child = match spawn_build(repo, target, log) {
            Ok(c) => c,
            Err(e) => {
                eprintln!("[soak] host load: {e:#}");
                return builds;
            }
        };
        loop {
            if stop.load(Ordering::Relaxed) {
                let _ = child.kill();
                let _ = child.wait();
                return builds;
            }
            match child.try_wait() {
                Ok(Some(st)) => {
                    if st.success() {
                        builds += 1;
                    } else {
                        eprintln!(
                            "[soak] host load: a build ended {} (log {})",
                            proc::describe_status(st),
                            log.display()
                        );
                        // Do not spin on a build that fails at once.
                        thread::sleep(Duration::from_secs(5));
                    }
                    break;
                }
                Ok(None) => thread::sleep(Duration::from_millis(500)),
                Err(_) => return builds,
            }
        }
    }
    builds
}

fn spawn_build(repo: &Path, target: &Path, log: &Path) -> Result<Child> {
    let out = std::fs::File::create(log).with_context(|| log.display().to_string())?;
    let err = out.try_clone()?;
    Command::new("cargo")
        .current_dir(repo)
        .args([
            "build",
            "--release",
            "--quiet",
            "-j2",
            "-p",
            "rnvme-guest-tests",
        ])
        .arg("--target-dir")
        .arg(PathBuf::from(target))
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err)
        .spawn()
        .context("cargo build (host load)")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn case_lines_parse_and_others_do_not() {
        assert_eq!(
            parse_case_line(
                "soak switch-during-fio: 12 runs, 1 mismatches, 2 kernel reports, 3 failures"
            ),
            Some((
                "switch-during-fio".to_string(),
                Counts {
                    runs: 12,
                    mismatches: 1,
                    kernel_reports: 2,
                    failures: 3
                }
            ))
        );
        for l in [
            "soak total: 12 runs, 1 mismatches",
            "soak-run switch-during-fio 3: clean (12 s into the soak)",
            "soak x: 12 runs, 1 mismatches",
            "soak x: 12 runs, 1 mismatches, 2 kernel reports, three failures",
            "# soak: 7 cases, up to 50 runs each, 60 min",
        ] {
            assert_eq!(parse_case_line(l), None, "{l}");
        }
    }

    #[test]
    fn both_splits_runs_and_minutes_between_a_quiet_and_a_loaded_boot() {
        assert_eq!(
            boots(Load::Both, 201, 61),
            vec![(false, 101, 31), (true, 100, 30)]
        );
        assert_eq!(boots(Load::None, 5, 10), vec![(false, 5, 10)]);
        assert_eq!(boots(Load::Compile, 5, 10), vec![(true, 5, 10)]);
        // One run: only the quiet boot gets one.
        assert_eq!(boots(Load::Both, 1, 1), vec![(false, 1, 1), (true, 0, 0)]);
    }
}
