//! Per-run directories `<cache>/runs/<unix-time>-<pid>/`: namespace images,
//! the guest's cmd.sh, and everything the run leaves behind (serial.log,
//! results.txt, exit-code). The last few runs are kept.

use std::fs::{self, File};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result};

use crate::paths::Paths;

/// How many run directories survive (including the new one).
pub const KEEP_RUNS: usize = 10;
/// Size of each sparse namespace image.
pub const NS_IMAGE_BYTES: u64 = 256 * 1024 * 1024;
pub const NS_IMAGES: &[&str] = &["ns1.img", "ns2.img"];

/// Copies the module and the guest test runner into the run directory and returns the
/// copies' paths, which the guest loads and runs: another run that rebuilds them in the
/// repository meanwhile (a release and a debug suite side by side) cannot swap them under
/// this one's VM.
pub fn stage(rundir: &Path, ko: &Path, bin: &Path) -> Result<(PathBuf, PathBuf)> {
    let copy = |from: &Path| -> Result<PathBuf> {
        let name = from
            .file_name()
            .with_context(|| format!("{} has no file name", from.display()))?;
        let to = rundir.join(name);
        fs::copy(from, &to)
            .with_context(|| format!("cannot copy {} to {}", from.display(), to.display()))?;
        Ok(to)
    };
    Ok((copy(ko)?, copy(bin)?))
}

/// Create a fresh run directory with its namespace images.
pub fn create(paths: &Paths) -> Result<PathBuf> {
    let runs = paths.runs_dir();
    fs::create_dir_all(&runs).with_context(|| format!("cannot create {}", runs.display()))?;
    prune(&runs, KEEP_RUNS - 1);
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .context("system clock before 1970")?
        .as_secs();
    let dir = runs.join(format!("{now}-{}", std::process::id()));
    fs::create_dir(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    for img in NS_IMAGES {
        let p = dir.join(img);
        let f = File::create(&p).with_context(|| format!("cannot create {}", p.display()))?;
        f.set_len(NS_IMAGE_BYTES)
            .with_context(|| format!("cannot size {}", p.display()))?;
    }
    Ok(dir)
}

/// Names of run directories to delete so that `keep` remain (oldest first).
pub fn select_old(names: &[String], keep: usize) -> Vec<String> {
    let mut runs: Vec<(u64, &String)> = names
        .iter()
        .filter_map(|n| {
            let (t, pid) = n.split_once('-')?;
            pid.parse::<u32>().ok()?;
            Some((t.parse::<u64>().ok()?, n))
        })
        .collect();
    runs.sort();
    let excess = runs.len().saturating_sub(keep);
    runs[..excess].iter().map(|(_, n)| (*n).clone()).collect()
}

fn prune(runs: &Path, keep: usize) {
    let Ok(rd) = fs::read_dir(runs) else { return };
    let names: Vec<String> = rd
        .filter_map(|e| e.ok())
        .filter(|e| e.file_type().map(|t| t.is_dir()).unwrap_or(false))
        .filter_map(|e| e.file_name().into_string().ok())
        .collect();
    for old in select_old(&names, keep) {
        // A run whose xtask still lives is in use (another test run on this machine, from
        // another checkout): never delete it under its VM.
        if owner_alive(&old) {
            continue;
        }
        let p = runs.join(&old);
        if let Err(e) = fs::remove_dir_all(&p) {
            eprintln!("[vm] warning: cannot remove old run {}: {e}", p.display());
        }
    }
}

/// Whether the process that created run directory `name` (`<time>-<pid>`) still runs.
fn owner_alive(name: &str) -> bool {
    name.split_once('-')
        .and_then(|(_, pid)| pid.parse::<u32>().ok())
        .is_some_and(|pid| Path::new("/proc").join(pid.to_string()).exists())
}

/// The shell command line that runs the guest runner `bin` on module `ko` (with the test
/// kernel's modules under `modroot`, results in `rundir`), followed by `extra` arguments.
pub fn guest_runner_command(
    bin: &Path,
    ko: &Path,
    modroot: &Path,
    rundir: &Path,
    extra: &[&str],
) -> String {
    let mut command = format!(
        "{} --module {} --modroot {} --out {}",
        sh_quote(&bin.to_string_lossy()),
        sh_quote(&ko.to_string_lossy()),
        sh_quote(&modroot.to_string_lossy()),
        sh_quote(&rundir.to_string_lossy())
    );
    for arg in extra {
        command.push(' ');
        command.push_str(&sh_quote(arg));
    }
    command
}

/// Quote for /bin/sh (single quotes).
pub fn sh_quote(s: &str) -> String {
    if !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "/._-+=:,@%".contains(c))
    {
        return s.to_string();
    }
    format!("'{}'", s.replace('\'', r#"'\''"#))
}

/// The script init.sh runs: `cd <repo>` then the command line.
pub fn cmd_sh_text(repo: &Path, command: &str) -> String {
    format!(
        "#!/bin/sh\ncd {} || exit 125\n{}\n",
        sh_quote(&repo.to_string_lossy()),
        command
    )
}

pub fn write_cmd_sh(rundir: &Path, repo: &Path, command: &str) -> Result<PathBuf> {
    let p = rundir.join("cmd.sh");
    fs::write(&p, cmd_sh_text(repo, command))
        .with_context(|| format!("cannot write {}", p.display()))?;
    fs::set_permissions(&p, fs::Permissions::from_mode(0o755))
        .with_context(|| format!("cannot chmod {}", p.display()))?;
    Ok(p)
}

#[cfg(test)]
mod tests {
    #[test]
    fn guest_runner_command_quotes_every_argument() {
        let c = super::guest_runner_command(
            Path::new("/r/bin"),
            Path::new("/r/rnvme.ko"),
            Path::new("/c/mod root"),
            Path::new("/c/runs/1"),
            &["--bench", "io", "a b"],
        );
        assert_eq!(
            c,
            "/r/bin --module /r/rnvme.ko --modroot '/c/mod root' --out /c/runs/1 --bench io 'a b'"
        );
    }

    use super::*;

    #[test]
    fn a_run_of_a_live_process_is_in_use() {
        assert!(owner_alive(&format!("1700000000-{}", std::process::id())));
        assert!(!owner_alive("1700000000-notapid"));
        assert!(!owner_alive("junk"));
    }

    #[test]
    fn selects_oldest_runs() {
        let names: Vec<String> = [
            "1700000003-9",
            "1700000001-5",
            "junk",
            "1700000002-7",
            "x-1",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        assert_eq!(select_old(&names, 2), vec!["1700000001-5".to_string()]);
        assert_eq!(select_old(&names, 5), Vec::<String>::new());
        assert_eq!(select_old(&names, 0).len(), 3);
    }

    #[test]
    fn quoting() {
        assert_eq!(sh_quote("/work/main/rnvme.ko"), "/work/main/rnvme.ko");
        assert_eq!(sh_quote("a b"), "'a b'");
        assert_eq!(sh_quote("it's"), r#"'it'\''s'"#);
        assert_eq!(sh_quote(""), "''");
    }

    #[test]
    fn cmd_sh() {
        assert_eq!(
            cmd_sh_text(Path::new("/work/main"), "uname -a; false"),
            "#!/bin/sh\ncd /work/main || exit 125\nuname -a; false\n"
        );
    }
}
