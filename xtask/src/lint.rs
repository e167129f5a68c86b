//! `cargo xtask lint`: rustfmt and clippy over the host crates and the kernel module, and
//! the Sphinx build of `Documentation/` with warnings as errors.
//!
//! The kernel-side code is linted by Kbuild itself (`make CLIPPY=1`), which runs
//! Debian's `clippy-driver` (package rust-web-clippy, the same 1.96 toolchain as the
//! kernel's rustc) with the kernel's own lint set. Any warning fails the lint.

use std::process::Command;
use std::time::Instant;

use anyhow::{bail, Context, Result};

use crate::kernel::Kernel;
use crate::paths::Paths;
use crate::proc;

/// The clippy driver matching the kernel's rustc.
const KERNEL_CLIPPY_DRIVER: &str = "/usr/bin/clippy-driver";

/// Kernel-side Rust sources that rustfmt checks (it follows their `mod` declarations).
const KERNEL_CRATE_ROOTS: &[&str] = &["rnvme_main.rs"];

/// Lines of a Kbuild log that report a compiler or clippy diagnostic.
pub fn diagnostics(log: &str) -> Vec<&str> {
    log.lines()
        .filter(|l| l.starts_with("warning") || l.starts_with("error"))
        .collect()
}

/// Runs every check; fails listing what is not clean.
pub fn run(paths: &Paths, k: &Kernel) -> Result<()> {
    let t = Instant::now();
    let mut failures = Vec::new();

    let mut fmt = Command::new("cargo");
    fmt.current_dir(&paths.repo)
        .args(["fmt", "--all", "--check"]);
    if proc::run(&mut fmt).is_err() {
        failures.push("cargo fmt --check (host crates)".to_string());
    }
    // The libFuzzer binaries are outside the workspace (tests/fuzz/libfuzzer/Cargo.toml).
    let mut fmt_fuzz = Command::new("cargo");
    fmt_fuzz.current_dir(&paths.repo).args([
        "fmt",
        "--check",
        "--manifest-path",
        "tests/fuzz/libfuzzer/Cargo.toml",
    ]);
    if proc::run(&mut fmt_fuzz).is_err() {
        failures.push("cargo fmt --check (tests/fuzz/libfuzzer)".to_string());
    }

    let mut rustfmt = Command::new("rustfmt");
    rustfmt
        .current_dir(&paths.repo)
        .args(["--edition", "2021", "--check"])
        .args(KERNEL_CRATE_ROOTS);
    if proc::run(&mut rustfmt).is_err() {
        failures.push("rustfmt --check (kernel crate)".to_string());
    }

    let mut clippy = Command::new("cargo");
    clippy.current_dir(&paths.repo).args([
        "clippy",
        "--workspace",
        "--all-targets",
        "--",
        "-D",
        "warnings",
    ]);
    if proc::run(&mut clippy).is_err() {
        failures.push("cargo clippy (host crates)".to_string());
    }

    // Documentation/ as Sphinx builds it, any warning an error; the output goes to the
    // cache, not the repository.
    let mut sphinx = Command::new("sphinx-build");
    sphinx
        .current_dir(&paths.repo)
        .args(["-W", "--keep-going", "-q", "-b", "html", "Documentation"])
        .arg(paths.cache.join("sphinx-html"));
    if proc::run(&mut sphinx).is_err() {
        failures.push("sphinx-build -W (Documentation/)".to_string());
    }

    crate::module::clean_if_other_kernel(paths, k)?;
    let mut make = Command::new("make");
    make.arg("-C")
        .arg(&k.build)
        .arg(format!("M={}", paths.repo.display()))
        .args(k.make_vars())
        .arg("CLIPPY=1")
        .arg(format!("CLIPPY_DRIVER={KERNEL_CLIPPY_DRIVER}"))
        // cargo gives `cargo xtask` its package's rust-version in this variable, which
        // clippy-driver would take as the module's MSRV over the kernel's clippy.toml.
        .env_remove("CARGO_PKG_RUST_VERSION")
        .arg(format!("-j{}", proc::jobs()))
        .arg("modules");
    println!("[lint] {}", proc::show(&make));
    let out = make
        .output()
        .with_context(|| format!("cannot run `{}`", proc::show(&make)))?;
    let log = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    if out.status.success() {
        crate::module::record_kernel(paths, k)?;
    }
    let found = diagnostics(&log);
    if !out.status.success() || !found.is_empty() {
        println!("{log}");
        failures.push(format!(
            "kernel module clippy: {} diagnostic(s)",
            found.len()
        ));
    }

    if !failures.is_empty() {
        bail!("not lint-clean:\n  {}", failures.join("\n  "));
    }
    println!("[lint] clean ({})", proc::secs(t.elapsed()));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_rustc_and_clippy_diagnostics_only() {
        let log = "  CLIPPY [M] /r/rnvme_main.o\n\
                   warning: unused import: `x`\n\
                   error[E0308]: mismatched types\n\
                   note: not a diagnostic head\n\
                   \x20 MODPOST /r/Module.symvers\n";
        assert_eq!(
            diagnostics(log),
            vec![
                "warning: unused import: `x`",
                "error[E0308]: mismatched types"
            ]
        );
    }
}
