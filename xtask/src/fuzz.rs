//! `cargo xtask fuzz`: builds and runs the host-side fuzzer of the migration stream parser
//! (`tests/fuzz`, crate `rnvme-fuzz`) on the code the kernel's resuming data fd runs, and
//! writes its corpus for the in-kernel replay test. Not part of `cargo xtask test`.

use std::path::PathBuf;
use std::process::Command;

use anyhow::Result;

use crate::paths::Paths;
use crate::proc;

/// What to fuzz with.
pub struct FuzzOpts {
    /// Inputs to try.
    pub execs: u64,
    /// PRNG seed.
    pub seed: u64,
}

/// Where the corpus goes: outside the repository, in the cache.
pub fn corpus_dir(paths: &Paths) -> PathBuf {
    paths.cache.join("fuzz-corpus")
}

/// Builds the fuzzer (release) and runs it; returns its exit code (non-zero: a crash or
/// an inconsistent verdict was found).
pub fn run(paths: &Paths, opts: &FuzzOpts) -> Result<i32> {
    let mut build = Command::new("cargo");
    build
        .current_dir(&paths.repo)
        .args(["build", "--release", "--quiet", "-p", "rnvme-fuzz"]);
    proc::run(&mut build)?;
    let bin = paths.target_dir().join("release/rnvme-fuzz");
    let corpus = corpus_dir(paths);
    let status = Command::new(&bin)
        .arg("--execs")
        .arg(opts.execs.to_string())
        .arg("--seed")
        .arg(opts.seed.to_string())
        .arg("--corpus")
        .arg(&corpus)
        .status()?;
    Ok(status.code().unwrap_or(1))
}
