//! Parsing test results: the guest runner's results.txt and libtest's
//! `test result:` summary lines; and the pass/fail/skip tally. Pure.

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Pass,
    Fail(String),
    Skip(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TestResult {
    pub name: String,
    pub outcome: Outcome,
}

impl TestResult {
    /// The line as results.txt spells it.
    pub fn line(&self) -> String {
        match &self.outcome {
            Outcome::Pass => format!("PASS {}", self.name),
            Outcome::Fail(r) => format!("FAIL {}: {}", self.name, r),
            Outcome::Skip(r) => format!("SKIP {}: {}", self.name, r),
        }
    }
}

/// `name: reason` → (name, reason); reason may be absent.
fn split_reason(rest: &str) -> (String, String) {
    match rest.split_once(": ") {
        Some((n, r)) => (n.trim().to_string(), r.trim().to_string()),
        None => (
            rest.trim().trim_end_matches(':').to_string(),
            "(no reason given)".to_string(),
        ),
    }
}

/// Parse one results.txt line. Ok(None) for blank lines.
pub fn parse_line(line: &str) -> Result<Option<TestResult>, String> {
    let line = line.trim_end_matches(['\r', '\n']);
    if line.trim().is_empty() {
        return Ok(None);
    }
    let (word, rest) = line.split_once(' ').unwrap_or((line, ""));
    if rest.trim().is_empty() {
        return Err(format!("no test name: {line:?}"));
    }
    let r = match word {
        "PASS" => TestResult {
            name: rest.trim().to_string(),
            outcome: Outcome::Pass,
        },
        "FAIL" => {
            let (name, reason) = split_reason(rest);
            TestResult {
                name,
                outcome: Outcome::Fail(reason),
            }
        }
        "SKIP" => {
            let (name, reason) = split_reason(rest);
            TestResult {
                name,
                outcome: Outcome::Skip(reason),
            }
        }
        _ => return Err(format!("not PASS/FAIL/SKIP: {line:?}")),
    };
    Ok(Some(r))
}

/// Parse results.txt: the results, and the lines that did not parse
/// (with 1-based line numbers).
pub fn parse_results(text: &str) -> (Vec<TestResult>, Vec<(usize, String)>) {
    let mut ok = Vec::new();
    let mut bad = Vec::new();
    for (i, l) in text.lines().enumerate() {
        match parse_line(l) {
            Ok(Some(r)) => ok.push(r),
            Ok(None) => {}
            Err(e) => bad.push((i + 1, e)),
        }
    }
    (ok, bad)
}

/// Counts from one libtest `test result:` line.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct LibtestSummary {
    pub passed: u64,
    pub failed: u64,
    pub ignored: u64,
}

/// Every `test result: ok. N passed; M failed; K ignored; ...` line.
pub fn parse_libtest(output: &str) -> Vec<LibtestSummary> {
    let mut v = Vec::new();
    for line in output.lines() {
        let Some(pos) = line.find("test result: ") else {
            continue;
        };
        let rest = &line[pos + "test result: ".len()..];
        let words: Vec<&str> = rest.split_whitespace().collect();
        let mut s = LibtestSummary::default();
        let mut seen = false;
        for w in words.windows(2) {
            let Ok(n) = w[0].parse::<u64>() else { continue };
            match w[1].trim_end_matches([';', ',', '.']) {
                "passed" => s.passed = n,
                "failed" => s.failed = n,
                "ignored" => s.ignored = n,
                _ => continue,
            }
            seen = true;
        }
        if seen {
            v.push(s);
        }
    }
    v
}

/// Names of failed tests in libtest output (`test foo ... FAILED`).
pub fn libtest_failures(output: &str) -> Vec<String> {
    output
        .lines()
        .filter_map(|l| {
            let l = l.trim();
            let name = l.strip_prefix("test ")?.strip_suffix(" ... FAILED")?;
            Some(name.to_string())
        })
        .collect()
}

/// Running total for `cargo xtask test`.
#[derive(Debug, Default)]
pub struct Tally {
    pub passed: u64,
    pub failed: u64,
    pub skipped: u64,
    /// (name, reason) of every failure, in order.
    pub failures: Vec<(String, String)>,
}

impl Tally {
    pub fn add(&mut self, r: &TestResult) {
        match &r.outcome {
            Outcome::Pass => self.passed += 1,
            Outcome::Fail(reason) => self.fail(&r.name, reason),
            Outcome::Skip(_) => self.skipped += 1,
        }
    }

    pub fn fail(&mut self, name: &str, reason: &str) {
        self.failed += 1;
        self.failures.push((name.to_string(), reason.to_string()));
    }

    /// Exactly `N passed, M failed` (+ `, K skipped` when K > 0).
    pub fn summary(&self) -> String {
        let mut s = format!("{} passed, {} failed", self.passed, self.failed);
        if self.skipped > 0 {
            s.push_str(&format!(", {} skipped", self.skipped));
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_results_txt() {
        let text = "PASS smoke::load\nFAIL io::read: short read: got 0 bytes\r\n\nSKIP vfio::migrate: needs patched QEMU\nFAIL bare\nhello\nPASS\n";
        let (ok, bad) = parse_results(text);
        assert_eq!(
            ok,
            vec![
                TestResult {
                    name: "smoke::load".into(),
                    outcome: Outcome::Pass
                },
                TestResult {
                    name: "io::read".into(),
                    outcome: Outcome::Fail("short read: got 0 bytes".into())
                },
                TestResult {
                    name: "vfio::migrate".into(),
                    outcome: Outcome::Skip("needs patched QEMU".into())
                },
                TestResult {
                    name: "bare".into(),
                    outcome: Outcome::Fail("(no reason given)".into())
                },
            ]
        );
        assert_eq!(bad.len(), 2);
        assert_eq!(bad[0].0, 6);
        assert_eq!(bad[1].0, 7);
        assert_eq!(ok[1].line(), "FAIL io::read: short read: got 0 bytes");
    }

    #[test]
    fn parses_libtest_summaries() {
        let out = "\
running 3 tests
test a ... ok
test b ... FAILED
test c ... ignored
test result: FAILED. 1 passed; 1 failed; 1 ignored; 0 measured; 0 filtered out; finished in 0.01s

   Doc-tests spec
test result: ok. 12 passed; 0 failed; 0 ignored; 0 measured; 0 filtered out; finished in 0.50s
";
        assert_eq!(
            parse_libtest(out),
            vec![
                LibtestSummary {
                    passed: 1,
                    failed: 1,
                    ignored: 1
                },
                LibtestSummary {
                    passed: 12,
                    failed: 0,
                    ignored: 0
                },
            ]
        );
        assert_eq!(libtest_failures(out), vec!["b".to_string()]);
        assert!(parse_libtest("no tests here\n").is_empty());
    }

    #[test]
    fn tally_summary() {
        let mut t = Tally {
            passed: 3,
            ..Default::default()
        };
        assert_eq!(t.summary(), "3 passed, 0 failed");
        t.fail("kernel-log", "WARNING: x");
        t.skipped = 2;
        assert_eq!(t.summary(), "3 passed, 1 failed, 2 skipped");
        t.add(&TestResult {
            name: "s".into(),
            outcome: Outcome::Skip("r".into()),
        });
        assert_eq!(t.skipped, 3);
    }
}
