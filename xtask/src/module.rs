//! `cargo xtask build`: the out-of-tree module (rnvme.ko, via Kbuild) and the
//! guest test runner (host binary that runs inside the VM over the 9p root).

use std::path::{Path, PathBuf};
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

/// Whether the sources of `what` (found by `file`) are present: an error if `require`,
/// otherwise a warning and `false`.
fn sources_present(file: &Path, what: &str, require: bool) -> Result<bool> {
    if file.is_file() {
        return Ok(true);
    }
    if require {
        bail!("cannot build {what}: {} does not exist", file.display());
    }
    println!(
        "[build] warning: {} does not exist; skipping {what}",
        file.display()
    );
    Ok(false)
}

fn build_module(paths: &Paths, k: &Kernel, require: bool) -> Result<Option<PathBuf>> {
    if !sources_present(&paths.kbuild_file(), "rnvme.ko", require)? {
        return Ok(None);
    }
    let t = Instant::now();
    clean_if_other_kernel(paths, k)?;
    // Through the top-level Makefile, as a user with their own kernel builds it: it checks
    // the kernel build tree first (scripts/check-kernel.sh), then runs Kbuild.
    let mut cmd = Command::new("make");
    cmd.current_dir(&paths.repo)
        .arg(format!("KDIR={}", k.build.display()))
        .args(k.make_vars())
        .arg(format!("-j{}", proc::jobs()))
        .arg("modules");
    println!("[build] rnvme.ko: {}", proc::show(&cmd));
    proc::run(&mut cmd).context("module build failed")?;
    let ko = paths.module_ko();
    if !ko.is_file() {
        bail!("module build succeeded but {} does not exist", ko.display());
    }
    record_kernel(paths, k)?;
    println!("[build] {} ({})", ko.display(), proc::secs(t.elapsed()));
    Ok(Some(ko))
}

/// Installs the built module as `make install` does for a user, but into `root` (a staging
/// directory, `INSTALL_MOD_PATH`), and checks what arrived: the module under
/// `lib/modules/<release>/updates/` and its PCI alias in the `modules.alias` that depmod
/// wrote. Returns a one-line description of the failure, if any.
pub fn check_install(paths: &Paths, k: &Kernel, root: &Path) -> Result<(), String> {
    let _ = std::fs::remove_dir_all(root);
    let mut cmd = Command::new("make");
    cmd.current_dir(&paths.repo)
        .arg(format!("KDIR={}", k.build.display()))
        .args(k.make_vars())
        .arg(format!("INSTALL_MOD_PATH={}", root.display()))
        .arg("install");
    let log = root.with_extension("log");
    let status = proc::run_to_file(&mut cmd, &log, None)
        .map_err(|e| format!("make install: {e:#} (log: {})", log.display()))?;
    if !status.success() {
        return Err(format!("make install: {status} (log: {})", log.display()));
    }
    let dir = root.join("lib/modules").join(&k.release);
    let ko = dir.join("updates/rnvme.ko");
    if !ko.is_file() {
        return Err(format!("make install put no {}", ko.display()));
    }
    let aliases = std::fs::read_to_string(dir.join("modules.alias")).unwrap_or_default();
    if !aliases
        .lines()
        .any(|l| l.starts_with("alias pci:") && l.ends_with(" rnvme"))
    {
        return Err(format!(
            "{} lists no PCI alias of rnvme (depmod did not run?)",
            dir.join("modules.alias").display()
        ));
    }
    Ok(())
}

/// Records which kernel build the module objects in the repository were built against.
const KBUILD_STAMP: &str = ".rnvme-kbuild";

/// Kbuild does not notice that the same external module is built against another kernel
/// (release vs debug): the compiler command lines are identical (kernel include paths are
/// relative to the build directory), and objects newer than the other kernel's config
/// files are kept. A module mixing objects of two configurations would load and corrupt
/// memory, so switching kernels cleans the module's objects first.
pub fn clean_if_other_kernel(paths: &Paths, k: &Kernel) -> Result<()> {
    let stamp = paths.repo.join(KBUILD_STAMP);
    let previous = std::fs::read_to_string(&stamp).unwrap_or_default();
    if needs_clean(&previous, &k.build.to_string_lossy()) {
        println!("[build] module objects are from another kernel build: make clean");
        let mut clean = Command::new("make");
        clean
            .arg("-C")
            .arg(&k.build)
            .arg(format!("M={}", paths.repo.display()))
            .args(k.make_vars())
            .arg("clean");
        proc::run(&mut clean).context("cleaning the module objects failed")?;
    }
    Ok(())
}

/// Records that the module objects now belong to `k`.
pub fn record_kernel(paths: &Paths, k: &Kernel) -> Result<()> {
    std::fs::write(
        paths.repo.join(KBUILD_STAMP),
        k.build.to_string_lossy().as_bytes(),
    )
    .with_context(|| format!("cannot write {KBUILD_STAMP}"))
}

/// Whether objects built against `previous` (the stamp's content, empty if none) must be
/// cleaned before building against `current`.
fn needs_clean(previous: &str, current: &str) -> bool {
    previous.trim() != current
}

fn build_guest_tests(paths: &Paths, require: bool) -> Result<Option<PathBuf>> {
    if !sources_present(&paths.guest_tests_manifest(), "rnvme-guest-tests", require)? {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cleans_when_the_kernel_changes_or_is_unknown() {
        assert!(needs_clean("", "/c/kernel/release-1/build"));
        assert!(needs_clean(
            "/c/kernel/debug-2/build",
            "/c/kernel/release-1/build"
        ));
        assert!(!needs_clean(
            "/c/kernel/release-1/build\n",
            "/c/kernel/release-1/build"
        ));
    }
}
