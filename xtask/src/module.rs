//! `cargo xtask build`: the out-of-tree module (rnvme.ko, via Kbuild) and the
//! guest test runner (host binary that runs inside the VM over the 9p root).

use std::path::PathBuf;
use std::process::Command;
use std::time::Instant;

use anyhow::{bail, Context, Result};

use crate::kernel::Kernel;
use crate::paths::Paths;
use crate::proc;

/// What `build` produced. `None` = skipped because its sources are absent
/// (only allowed when the caller did not require it).
#[derive(Debug, Clone)]
pub struct Artifacts {
    pub module: Option<PathBuf>,
    pub guest_tests: Option<PathBuf>,
}

impl Artifacts {
    /// Both artifacts, or an error saying which is missing.
    pub fn require(&self) -> Result<(PathBuf, PathBuf)> {
        match (&self.module, &self.guest_tests) {
            (Some(m), Some(g)) => Ok((m.clone(), g.clone())),
            (None, _) => bail!("rnvme.ko was not built (no Kbuild in the repository)"),
            (_, None) => bail!("the guest test runner was not built (no tests/guest/Cargo.toml)"),
        }
    }
}

/// Build rnvme.ko and rnvme-guest-tests. With `require`, absent sources are
/// an error; otherwise they are skipped with a warning.
pub fn build(paths: &Paths, k: &Kernel, require: bool) -> Result<Artifacts> {
    let module = build_module(paths, k, require)?;
    let guest_tests = build_guest_tests(paths, require)?;
    Ok(Artifacts {
        module,
        guest_tests,
    })
}

fn build_module(paths: &Paths, k: &Kernel, require: bool) -> Result<Option<PathBuf>> {
    if !paths.kbuild_file().is_file() {
        if require {
            bail!(
                "cannot build rnvme.ko: {} does not exist",
                paths.kbuild_file().display()
            );
        }
        println!(
            "[build] warning: {} does not exist; skipping rnvme.ko",
            paths.kbuild_file().display()
        );
        return Ok(None);
    }
    let t = Instant::now();
    let mut cmd = Command::new("make");
    cmd.arg("-C")
        .arg(&k.build)
        .arg(format!("M={}", paths.repo.display()))
        .args(k.make_vars())
        .arg(format!("-j{}", proc::jobs()))
        .arg("modules");
    println!("[build] rnvme.ko: {}", proc::show(&cmd));
    proc::run(&mut cmd).context("module build failed")?;
    let ko = paths.module_ko();
    if !ko.is_file() {
        bail!("module build succeeded but {} does not exist", ko.display());
    }
    println!("[build] {} ({})", ko.display(), proc::secs(t.elapsed()));
    Ok(Some(ko))
}

fn build_guest_tests(paths: &Paths, require: bool) -> Result<Option<PathBuf>> {
    if !paths.guest_tests_manifest().is_file() {
        if require {
            bail!(
                "cannot build the guest test runner: {} does not exist",
                paths.guest_tests_manifest().display()
            );
        }
        println!(
            "[build] warning: {} does not exist; skipping rnvme-guest-tests",
            paths.guest_tests_manifest().display()
        );
        return Ok(None);
    }
    let t = Instant::now();
    let mut cmd = Command::new("cargo");
    cmd.current_dir(&paths.repo)
        .args(["build", "--release", "-p", "rnvme-guest-tests"]);
    proc::run(&mut cmd).context("building the guest test runner failed")?;
    let bin = paths.guest_tests_bin();
    if !bin.is_file() {
        bail!("cargo build succeeded but {} does not exist", bin.display());
    }
    println!("[build] {} ({})", bin.display(), proc::secs(t.elapsed()));
    Ok(Some(bin))
}
