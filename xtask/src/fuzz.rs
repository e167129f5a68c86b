//! `cargo xtask fuzz`: coverage-guided fuzzing of rnvme's parsers of untrusted input with
//! libFuzzer (crate `libfuzzer-sys`), on the stable toolchain. Builds the binaries of
//! `tests/fuzz/libfuzzer` (one per target of `rnvme_fuzz::targets`) with the sanitizer
//! coverage flags cargo-fuzz passes (without `-Zsanitizer`, which needs nightly), runs each
//! for a time budget on its corpus in the cache, and prints per target `fuzz <target>: N
//! execs, E edges, F findings`. Not part of `cargo xtask test`.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context, Result};
use rnvme_fuzz::targets::{self, Target, TARGETS};

use crate::paths::Paths;
use crate::proc;

/// What to fuzz, and for how long.
pub struct FuzzOpts {
    /// Seconds per target.
    pub seconds: u64,
    /// Only this target.
    pub target: Option<String>,
}

/// The host triple the binaries are built for. Naming it keeps `RUSTFLAGS` off build
/// scripts, which would not link with coverage instrumentation and no libFuzzer.
const TRIPLE: &str = "x86_64-unknown-linux-gnu";

/// The code generation flags of cargo-fuzz (`cargo fuzz build -s none`): inline 8-bit
/// edge counters with their PC table (what libFuzzer's `cov:` counts), comparison tracing
/// (libFuzzer then tries the operands of failed comparisons: magic numbers, lengths,
/// checksums), `cfg(fuzzing)`, and debug assertions and overflow checks on (the release
/// profile of `tests/fuzz/libfuzzer` turns those on too).
const RUSTFLAGS: &[&str] = &[
    "-Cpasses=sancov-module",
    "-Cllvm-args=-sanitizer-coverage-level=4",
    "-Cllvm-args=-sanitizer-coverage-inline-8bit-counters",
    "-Cllvm-args=-sanitizer-coverage-pc-table",
    "-Cllvm-args=-sanitizer-coverage-trace-compares",
    "--cfg=fuzzing",
    "-Cdebug-assertions",
    "-Coverflow-checks",
    "-Cforce-frame-pointers=yes",
];

/// The corpus of every target, outside the repository: `<cache>/fuzz-corpus/<target>/`.
pub fn corpus_dir(paths: &Paths) -> PathBuf {
    paths.cache.join("fuzz-corpus")
}

/// Where a target's findings (crash, timeout, leak, out-of-memory inputs) go.
fn artifact_dir(paths: &Paths, target: &str) -> PathBuf {
    paths.cache.join("fuzz-artifacts").join(target)
}

/// What one run of a target counted.
#[derive(Debug, Default, PartialEq, Eq)]
struct Stats {
    /// Inputs executed (`stat::number_of_executed_units`).
    execs: u64,
    /// Edges covered (`cov:` of libFuzzer's last status line).
    edges: u64,
    /// Edges instrumented in the binary (`N inline 8-bit counters`).
    instrumented: u64,
    /// Inputs in the corpus afterwards (`corp:`).
    corpus: u64,
}

/// The number after `key` in `line` (`cov: 123` -> 123).
fn number_after(line: &str, key: &str) -> Option<u64> {
    let rest = &line[line.find(key)? + key.len()..];
    let digits: String = rest
        .trim_start()
        .chars()
        .take_while(char::is_ascii_digit)
        .collect();
    digits.parse().ok()
}

/// Reads libFuzzer's output: the last `cov:`/`corp:` of a status line and the final
/// statistics (`-print_final_stats=1`).
fn parse_output(log: &str) -> Stats {
    let mut s = Stats::default();
    for line in log.lines() {
        if let Some(n) = number_after(line, "(") {
            if line.contains("inline 8-bit counters)") {
                s.instrumented = n;
            }
        }
        if let Some(n) = number_after(line, "stat::number_of_executed_units:") {
            s.execs = n;
        }
        if line.starts_with('#') {
            if let Some(n) = number_after(line, " cov:") {
                s.edges = n;
            }
            if let Some(n) = number_after(line, " corp:") {
                s.corpus = n;
            }
            // A status line also counts the inputs so far (`#12345`), which is all a run
            // that crashed before its final statistics leaves.
            if s.execs == 0 {
                s.execs = number_after(line, "#").unwrap_or(0);
            }
        }
    }
    s
}

/// Builds the libFuzzer binaries; returns their directory.
fn build(paths: &Paths) -> Result<PathBuf> {
    let target_dir = paths.target_dir().join("fuzz");
    let manifest = paths.repo.join("tests/fuzz/libfuzzer/Cargo.toml");
    let mut cmd = Command::new("cargo");
    cmd.current_dir(&paths.repo)
        .args(["build", "--release", "--quiet", "--bins", "--manifest-path"])
        .arg(&manifest)
        .args(["--target", TRIPLE, "--target-dir"])
        .arg(&target_dir)
        .env("RUSTFLAGS", RUSTFLAGS.join(" "))
        .env_remove("CARGO_ENCODED_RUSTFLAGS");
    println!("fuzz: building the libFuzzer binaries (tests/fuzz/libfuzzer)");
    proc::run(&mut cmd).context("building the fuzz targets")?;
    Ok(target_dir.join(TRIPLE).join("release"))
}

/// Writes the target's seeds into its corpus (`seed-NNN`, rewritten every run, so that
/// new seeds join an old corpus).
fn write_seeds(t: &Target, corpus: &Path) -> Result<()> {
    fs::create_dir_all(corpus).with_context(|| format!("{}", corpus.display()))?;
    for (i, s) in (t.seeds)().iter().enumerate() {
        let f = corpus.join(format!("seed-{i:03}"));
        fs::write(&f, s).with_context(|| format!("{}", f.display()))?;
    }
    Ok(())
}

/// The files in `dir` (none if it does not exist).
fn files(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = fs::read_dir(dir)
        .map(|d| d.filter_map(|e| e.ok().map(|e| e.path())).collect())
        .unwrap_or_default();
    v.sort();
    v
}

/// Runs one target for `seconds`; returns its statistics and the findings it left.
fn run_target(
    paths: &Paths,
    bins: &Path,
    t: &Target,
    seconds: u64,
) -> Result<(Stats, Vec<PathBuf>)> {
    let corpus = corpus_dir(paths).join(t.name);
    write_seeds(t, &corpus)?;
    let artifacts = artifact_dir(paths, t.name);
    fs::create_dir_all(&artifacts)?;
    let before = files(&artifacts);
    let logs = paths.cache.join("fuzz-logs");
    fs::create_dir_all(&logs)?;
    let log = logs.join(format!("{}.log", t.name));
    // The log is appended to: start it afresh, it is read for this run's numbers.
    let _ = fs::remove_file(&log);
    let mut prefix = artifacts.clone().into_os_string();
    prefix.push("/");
    let mut cmd = Command::new(bins.join(t.name));
    cmd.arg(&corpus)
        .arg(format!("-max_total_time={seconds}"))
        .arg("-print_final_stats=1")
        // An input that runs for 10 s is a finding (a hang: the largest inputs take
        // milliseconds), as is one that needs 2 GiB.
        .arg("-timeout=10")
        .arg("-rss_limit_mb=2048")
        .arg("-max_len=80000")
        .arg({
            let mut a = std::ffi::OsString::from("-artifact_prefix=");
            a.push(&prefix);
            a
        });
    let status = proc::run_to_file(&mut cmd, &log, Some(&format!("fuzz {}", t.name)))?;
    let out = fs::read_to_string(&log).unwrap_or_default();
    let stats = parse_output(&out);
    let found: Vec<PathBuf> = files(&artifacts)
        .into_iter()
        .filter(|f| !before.contains(f))
        .collect();
    if !status.success() && found.is_empty() {
        bail!(
            "{}: libFuzzer {} without leaving an input (log: {})",
            t.name,
            proc::describe_status(status),
            log.display()
        );
    }
    Ok((stats, found))
}

/// Builds the binaries and runs every target (or the one asked for) for its budget;
/// returns the exit code: 1 if anything was found.
pub fn run(paths: &Paths, opts: &FuzzOpts) -> Result<i32> {
    let chosen: Vec<&Target> = match &opts.target {
        Some(name) => vec![targets::target(name).with_context(|| {
            let names: Vec<&str> = TARGETS.iter().map(|t| t.name).collect();
            format!("no fuzz target {name:?} (targets: {})", names.join(", "))
        })?],
        None => TARGETS.iter().collect(),
    };
    let bins = build(paths)?;
    let (mut execs, mut findings) = (0u64, 0usize);
    for t in &chosen {
        let (s, found) = run_target(paths, &bins, t, opts.seconds)?;
        println!(
            "fuzz {}: {} execs, {} edges, {} findings ({} edges instrumented, {} inputs in the \
             corpus)",
            t.name,
            s.execs,
            s.edges,
            found.len(),
            s.instrumented,
            s.corpus
        );
        for f in &found {
            println!(
                "  finding: {} (replay: {} {})",
                f.display(),
                bins.join(t.name).display(),
                f.display()
            );
        }
        execs += s.execs;
        findings += found.len();
    }
    println!(
        "fuzz total: {} targets, {} s each, {execs} execs, {findings} findings; corpus in {}",
        chosen.len(),
        opts.seconds,
        corpus_dir(paths).display()
    );
    Ok(i32::from(findings > 0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_libfuzzer_output() {
        let log = "INFO: Seed: 1\n\
                   INFO: Loaded 1 modules   (801 inline 8-bit counters): 801 [0x1, 0x2), \n\
                   #2\tINITED cov: 40 ft: 41 corp: 12/3Kb exec/s: 0 rss: 30Mb\n\
                   #65536\tpulse  cov: 512 ft: 900 corp: 80/20Kb lim: 4096 exec/s: 32768\n\
                   #70000\tDONE   cov: 530 ft: 950 corp: 85/21Kb lim: 4096 exec/s: 7000\n\
                   Done 70000 runs in 10 second(s)\n\
                   stat::number_of_executed_units: 70012\n\
                   stat::average_exec_per_sec:     7001\n";
        assert_eq!(
            parse_output(log),
            Stats {
                execs: 70012,
                edges: 530,
                instrumented: 801,
                corpus: 85
            }
        );
        // A crash before the final statistics: the last status line's count.
        let crashed = "#1234\tNEW    cov: 77 ft: 80 corp: 9/1Kb lim: 4 exec/s: 0\n\
                       ==1== ERROR: libFuzzer: deadly signal\n";
        assert_eq!(parse_output(crashed).execs, 1234);
    }
}
