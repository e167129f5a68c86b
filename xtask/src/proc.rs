//! Running host commands: plain (inherited stdio), captured, or logged to a
//! file with a progress line every 30 s. Also small log-tail helpers.

use std::fs::{self, File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::Path;
use std::process::{Command, ExitStatus, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

/// How often a long logged command prints a progress line.
const PROGRESS_EVERY: Duration = Duration::from_secs(30);

/// Human-readable form of a command line (for messages).
pub fn show(cmd: &Command) -> String {
    let mut s = cmd.get_program().to_string_lossy().into_owned();
    for a in cmd.get_args() {
        s.push(' ');
        s.push_str(&a.to_string_lossy());
    }
    s
}

/// `12.3 s`
pub fn secs(d: Duration) -> String {
    format!("{:.1} s", d.as_secs_f64())
}

/// `4m05s`
fn mmss(d: Duration) -> String {
    let s = d.as_secs();
    format!("{}m{:02}s", s / 60, s % 60)
}

pub fn describe_status(st: ExitStatus) -> String {
    match st.code() {
        Some(c) => format!("exit code {c}"),
        None => format!("{st}"),
    }
}

/// Run with inherited stdio; fail unless it exits 0.
pub fn run(cmd: &mut Command) -> Result<()> {
    let shown = show(cmd);
    let st = cmd
        .stdin(Stdio::null())
        .status()
        .with_context(|| format!("cannot run `{shown}`"))?;
    if !st.success() {
        bail!("`{shown}` failed ({})", describe_status(st));
    }
    Ok(())
}

/// Run and capture stdout (stderr inherited). Does not check the status.
pub fn capture(cmd: &mut Command) -> Result<(ExitStatus, String)> {
    let shown = show(cmd);
    let out = cmd
        .stdin(Stdio::null())
        .stderr(Stdio::inherit())
        .output()
        .with_context(|| format!("cannot run `{shown}`"))?;
    Ok((
        out.status,
        String::from_utf8_lossy(&out.stdout).into_owned(),
    ))
}

/// Run with stdout+stderr appended to `log`. Prints `[label] <last log line>`
/// every 30 s. On failure prints the log tail and fails.
pub fn run_logged(cmd: &mut Command, log: &Path, label: &str) -> Result<()> {
    let st = run_to_file(cmd, log, Some(label))?;
    if !st.success() {
        print_tail(log, 40);
        bail!(
            "`{}` failed ({}); full log: {}",
            show(cmd),
            describe_status(st),
            log.display()
        );
    }
    Ok(())
}

/// Run with stdout+stderr appended to `log`; returns the exit status.
/// With `progress`, prints the last log line every 30 s under that label.
pub fn run_to_file(cmd: &mut Command, log: &Path, progress: Option<&str>) -> Result<ExitStatus> {
    let shown = show(cmd);
    let mut f = OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .with_context(|| format!("cannot open log {}", log.display()))?;
    writeln!(f, "\n$ {shown}").with_context(|| format!("cannot write {}", log.display()))?;
    let out = f.try_clone().context("cannot duplicate log handle")?;
    let err = f.try_clone().context("cannot duplicate log handle")?;
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err)
        .spawn()
        .with_context(|| format!("cannot run `{shown}`"))?;
    let start = Instant::now();
    let mut next = start + PROGRESS_EVERY;
    loop {
        if let Some(st) = child
            .try_wait()
            .with_context(|| format!("waiting for `{shown}`"))?
        {
            return Ok(st);
        }
        if let Some(label) = progress {
            if Instant::now() >= next {
                next += PROGRESS_EVERY;
                let last = last_line(log).unwrap_or_default();
                println!("[{label}]   {} {}", mmss(start.elapsed()), last.trim());
            }
        }
        thread::sleep(Duration::from_millis(200));
    }
}

/// Last `n` lines of a file (reads at most the last 256 KiB).
pub fn tail(path: &Path, n: usize) -> Vec<String> {
    let Ok(mut f) = File::open(path) else {
        return Vec::new();
    };
    let len = f.metadata().map(|m| m.len()).unwrap_or(0);
    let start = len.saturating_sub(256 * 1024);
    if f.seek(SeekFrom::Start(start)).is_err() {
        return Vec::new();
    }
    let mut buf = Vec::new();
    if f.read_to_end(&mut buf).is_err() {
        return Vec::new();
    }
    let text = String::from_utf8_lossy(&buf);
    let lines: Vec<&str> = text.lines().collect();
    let from = lines.len().saturating_sub(n);
    lines[from..].iter().map(|l| l.to_string()).collect()
}

fn last_line(path: &Path) -> Option<String> {
    tail(path, 5)
        .into_iter()
        .rev()
        .find(|l| !l.trim().is_empty())
}

pub fn print_tail(path: &Path, n: usize) {
    let lines = tail(path, n);
    if lines.is_empty() {
        eprintln!("  ({} is empty or missing)", path.display());
        return;
    }
    eprintln!("---- last {} lines of {} ----", lines.len(), path.display());
    for l in lines {
        eprintln!("  {l}");
    }
    eprintln!("----");
}

/// Read a file that may be absent: Ok(None) when it does not exist.
pub fn read_optional(path: &Path) -> Result<Option<String>> {
    match fs::read(path) {
        Ok(b) => Ok(Some(String::from_utf8_lossy(&b).into_owned())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e).with_context(|| format!("cannot read {}", path.display())),
    }
}

pub fn jobs() -> usize {
    thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
}

/// Print an error with its causes (never a backtrace).
pub fn print_error(prefix: &str, e: &anyhow::Error) {
    eprintln!("{prefix}{e}");
    for c in e.chain().skip(1) {
        eprintln!("  caused by: {c}");
    }
}
