//! Scanning the guest's serial log for kernel problem reports (oops, WARN,
//! lockdep, KASAN, hung tasks, user segfaults, ...). Pure functions.

/// One offending line (0-based index into the scanned lines).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    pub index: usize,
    pub kind: &'static str,
    pub line: String,
}

/// Lines the guest test runner prints about itself; they may quote kernel
/// messages (which the kernel printed on the console anyway), so skip them.
fn is_runner_line(line: &str) -> bool {
    ["PASS ", "FAIL ", "SKIP ", "# "]
        .iter()
        .any(|p| line.starts_with(p))
}

/// `pat` occurs in `line` not preceded by an identifier character
/// (so "BUG:" does not match "DEBUG:").
fn has_word(line: &str, pat: &str) -> bool {
    let mut from = 0;
    while let Some(pos) = line[from..].find(pat) {
        let at = from + pos;
        let prev = line[..at].chars().next_back();
        if !matches!(prev, Some(c) if c.is_ascii_alphanumeric() || c == '_') {
            return true;
        }
        from = at + pat.len();
    }
    false
}

/// Classify a line; None when it is not a problem report.
pub fn classify(line: &str) -> Option<&'static str> {
    if is_runner_line(line) {
        return None;
    }
    // "Oops: 0000 [#1]", "Oops: general protection fault, ..."
    if has_word(line, "Oops:") || has_word(line, "Oops ") {
        return Some("oops");
    }
    const SIMPLE: &[(&str, &str)] = &[
        ("Kernel panic", "panic"),
        ("general protection fault", "general protection fault"),
        ("BUG:", "BUG"),
        ("WARNING:", "WARNING"),
        ("KASAN:", "KASAN"),
        ("UBSAN:", "UBSAN"),
        ("possible circular locking dependency", "lockdep"),
        ("inconsistent lock state", "lockdep"),
        ("Call Trace:", "call trace"),
        ("segfault at", "user segfault"),
    ];
    for (pat, kind) in SIMPLE {
        if has_word(line, pat) {
            return Some(kind);
        }
    }
    if has_word(line, "kmemleak:")
        && (line.contains("unreferenced object") || line.contains("suspected memory leaks"))
    {
        return Some("kmemleak");
    }
    if let Some(pos) = line.find("INFO: task ") {
        if line[pos..].contains(" blocked") {
            return Some("hung task");
        }
    }
    if line.contains("rcu: INFO: rcu_") && line.contains("detected stall") {
        return Some("rcu stall");
    }
    None
}

pub fn scan<S: AsRef<str>>(lines: &[S]) -> Vec<Finding> {
    lines
        .iter()
        .enumerate()
        .filter_map(|(i, l)| {
            classify(l.as_ref()).map(|kind| Finding {
                index: i,
                kind,
                line: l.as_ref().to_string(),
            })
        })
        .collect()
}

/// Findings with `context` lines around each (merged when they overlap),
/// at most `max_blocks` blocks. Line numbers are 1-based.
pub fn render<S: AsRef<str>>(
    lines: &[S],
    findings: &[Finding],
    context: usize,
    max_blocks: usize,
) -> String {
    let mut blocks: Vec<(usize, usize)> = Vec::new();
    for f in findings {
        let lo = f.index.saturating_sub(context);
        let hi = (f.index + context).min(lines.len().saturating_sub(1));
        match blocks.last_mut() {
            Some(last) if lo <= last.1 + 1 => last.1 = last.1.max(hi),
            _ => blocks.push((lo, hi)),
        }
    }
    let hits: std::collections::HashSet<usize> = findings.iter().map(|f| f.index).collect();
    let mut out = String::new();
    for (n, (lo, hi)) in blocks.iter().enumerate() {
        if n == max_blocks {
            out.push_str(&format!(
                "  ... {} more block(s) not shown\n",
                blocks.len() - max_blocks
            ));
            break;
        }
        if n > 0 {
            out.push_str("  --\n");
        }
        for (i, line) in lines.iter().enumerate().take(*hi + 1).skip(*lo) {
            let mark = if hits.contains(&i) { ">>" } else { "  " };
            out.push_str(&format!("{mark}{:6}: {}\n", i + 1, line.as_ref()));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn detects_kernel_reports() {
        let cases = [
            ("[    5.1] WARNING: CPU: 1 PID: 77 at drivers/foo.c:12 foo+0x1/0x2", "WARNING"),
            ("[    5.2] BUG: kernel NULL pointer dereference, address: 0000000000000008", "BUG"),
            ("[    5.3] Oops: 0000 [#1] PREEMPT SMP", "oops"),
            ("[    5.3] Oops: general protection fault, probably for non-canonical address", "oops"),
            ("[    5.4] Kernel panic - not syncing: Attempted to kill init!", "panic"),
            ("[    5.5] general protection fault, probably for non-canonical address", "general protection fault"),
            ("[    5.6] BUG: KASAN: slab-out-of-bounds in foo+0x10/0x20", "BUG"),
            ("[    5.6] ==================================================================KASAN: x", "KASAN"),
            ("[    5.7] UBSAN: array-index-out-of-bounds in drivers/x.c:1:2", "UBSAN"),
            ("kmemleak: 2 new suspected memory leaks (see /sys/kernel/debug/kmemleak)", "kmemleak"),
            ("kmemleak: unreferenced object 0xffff888003e1c000 (size 64):", "kmemleak"),
            ("[   9.9] WARNING: possible circular locking dependency detected", "WARNING"),
            ("[   9.9] possible circular locking dependency detected", "lockdep"),
            ("[   9.9] inconsistent lock state", "lockdep"),
            ("[  120.0] INFO: task kworker/0:1:12 blocked for more than 120 seconds.", "hung task"),
            ("[   7.0] Call Trace:", "call trace"),
            ("[  30.0] rcu: INFO: rcu_sched detected stalls on CPUs/tasks:", "rcu stall"),
            ("[   3.3] fio[123]: segfault at 0 ip 00007f sp 00007ff error 4 in libc.so.6", "user segfault"),
        ];
        for (line, kind) in cases {
            assert_eq!(classify(line), Some(kind), "{line}");
        }
    }

    #[test]
    fn ignores_benign_lines() {
        for line in [
            "[    0.000000] Linux version 6.12.117 (root@host) (gcc 12.2.0)",
            "[    1.0] DEBUG: nothing to see",
            "[    1.0] rnvme: unknown parameter 'run' ignored",
            "[    1.1] kmemleak: Kernel memory leak detector initialized",
            "# narrating: a WARNING: in dmesg would fail the run",
            "FAIL smoke::load: dmesg has BUG: x",
            "PASS smoke::no_warning_after_unload",
            "SKIP vfio::migrate: needs patched QEMU",
            "[    2.0] ACPI BIOS Warning (bug): something",
            "sysrq: Resetting",
            "RNVME-EXIT: 0",
        ] {
            assert_eq!(classify(line), None, "{line}");
        }
    }

    #[test]
    fn renders_context() {
        let lines: Vec<String> = (1..=20).map(|i| format!("line {i}")).collect();
        let mut l = lines.clone();
        l[9] = "[ 1.0] WARNING: CPU: 0".into();
        l[10] = "[ 1.0] Call Trace:".into();
        let f = scan(&l);
        assert_eq!(f.len(), 2);
        assert_eq!(f[0].index, 9);
        let r = render(&l, &f, 2, 5);
        assert!(r.contains(">>    10: [ 1.0] WARNING: CPU: 0"));
        assert!(r.contains("      8: line 8"));
        assert!(r.contains("     13: line 13"));
        assert!(!r.contains("--"), "overlapping blocks merge: {r}");
        assert!(!r.contains("line 7\n"));
    }
}
