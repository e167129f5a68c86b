// SPDX-License-Identifier: GPL-2.0

//! Loading and unloading modules, and running commands.

use std::{fs, path::Path, process::Command};

/// Name of the module under test (as in `/sys/module`).
pub const RNVME: &str = "rnvme";

/// Runs a command; returns its stdout, or an error with its stderr.
pub fn run(program: &str, args: &[&str]) -> Result<String, String> {
    let out = Command::new(program)
        .args(args)
        .output()
        .map_err(|e| format!("{program}: {e}"))?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(format!(
            "{program} {}: {}: {}",
            args.join(" "),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

/// Whether module `name` is loaded.
pub fn is_loaded(name: &str) -> bool {
    Path::new("/sys/module")
        .join(name)
        .join("initstate")
        .exists()
}

/// Loads the module file `ko`.
pub fn insmod(ko: &Path) -> Result<(), String> {
    run("insmod", &[&ko.to_string_lossy()]).map(|_| ())
}

/// Loads the module file `ko` with module parameters (`name=value`).
pub fn insmod_with(ko: &Path, params: &[&str]) -> Result<(), String> {
    let ko = ko.to_string_lossy();
    let mut args = vec![ko.as_ref()];
    args.extend_from_slice(params);
    run("insmod", &args).map(|_| ())
}

/// Unloads module `name`.
pub fn rmmod(name: &str) -> Result<(), String> {
    run("rmmod", &[name]).map(|_| ())
}

/// Unloads module `name` if it is loaded.
pub fn ensure_unloaded(name: &str) -> Result<(), String> {
    if is_loaded(name) {
        rmmod(name)?;
    }
    Ok(())
}

/// Loads a module of the test kernel with its dependencies from `modroot`.
pub fn modprobe(modroot: &Path, name: &str) -> Result<(), String> {
    run("modprobe", &["-d", &modroot.to_string_lossy(), name]).map(|_| ())
}

/// Unloads a module of the test kernel and its unused dependencies.
pub fn modprobe_remove(modroot: &Path, name: &str) -> Result<(), String> {
    run("modprobe", &["-d", &modroot.to_string_lossy(), "-r", name]).map(|_| ())
}

/// Reads a sysfs attribute (or any small text file), without surrounding whitespace.
pub fn sysfs_read(path: &Path) -> Result<String, String> {
    fs::read_to_string(path)
        .map(|s| s.trim().to_string())
        .map_err(|e| format!("{}: {e}", path.display()))
}

/// Writes `value` to a sysfs attribute.
pub fn sysfs_write(path: &Path, value: &str) -> Result<(), String> {
    fs::write(path, value).map_err(|e| format!("write {value:?} to {}: {e}", path.display()))
}
