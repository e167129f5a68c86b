// SPDX-License-Identifier: GPL-2.0

//! Parsing KUnit's KTAP output from the kernel log.

/// The result of one KUnit test case.
#[derive(Debug, PartialEq, Eq)]
pub struct CaseResult {
    /// Suite name.
    pub suite: String,
    /// Case name.
    pub case: String,
    /// `ok`, `not ok`, or `ok ... # SKIP`.
    pub status: CaseStatus,
    /// Diagnostic lines KUnit printed for the case (failure messages).
    pub diagnostics: Vec<String>,
}

/// Status of a KUnit case.
#[derive(Debug, PartialEq, Eq, Clone, Copy)]
pub enum CaseStatus {
    /// `ok N name`
    Passed,
    /// `not ok N name`
    Failed,
    /// `ok N name # SKIP reason`
    Skipped,
}

/// Extracts the case results of every suite in `lines` (kernel log texts, in order).
///
/// Cases are the indented `ok`/`not ok` lines inside a `# Subtest: <suite>` block; `#` lines
/// between cases are kept as the next case's diagnostics (KUnit prints a failure's messages
/// before the case's result line).
pub fn parse(lines: &[String]) -> Vec<CaseResult> {
    let mut out = Vec::new();
    let mut suite: Option<String> = None;
    let mut pending: Vec<String> = Vec::new();
    for line in lines {
        let trimmed = line.trim();
        if let Some(name) = trimmed.strip_prefix("# Subtest: ") {
            suite = Some(name.trim().to_string());
            pending.clear();
            continue;
        }
        let indented = line.starts_with("    ");
        let Some(current) = suite.as_ref() else {
            continue;
        };
        if !indented {
            // End of the suite block (`ok N suite` or `# Totals`).
            if trimmed.starts_with("ok ") || trimmed.starts_with("not ok ") {
                suite = None;
            }
            continue;
        }
        let (status, rest) = if let Some(rest) = trimmed.strip_prefix("not ok ") {
            (CaseStatus::Failed, rest)
        } else if let Some(rest) = trimmed.strip_prefix("ok ") {
            (CaseStatus::Passed, rest)
        } else {
            if trimmed.starts_with('#') {
                pending.push(trimmed.to_string());
            }
            continue;
        };
        // `N name [# SKIP reason]`
        let mut parts = rest.splitn(2, ' ');
        let _number = parts.next();
        let name_and_directive = parts.next().unwrap_or("");
        let (name, status) = match name_and_directive.split_once(" # ") {
            Some((name, directive)) if directive.trim_start().starts_with("SKIP") => {
                (name, CaseStatus::Skipped)
            }
            Some((name, _)) => (name, status),
            None => (name_and_directive, status),
        };
        out.push(CaseResult {
            suite: current.clone(),
            case: name.trim().to_string(),
            status,
            diagnostics: std::mem::take(&mut pending),
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(s: &str) -> Vec<String> {
        s.lines().map(str::to_string).collect()
    }

    #[test]
    fn parses_passing_failing_and_skipped_cases() {
        let log = lines(
            "KTAP version 1\n1..2\n    KTAP version 1\n    # Subtest: rnvme_spec\n    1..3\n\
             \x20   ok 1 cap_fields_decode\n\
             \x20   # cc_encodes: nvme/kunit_tests.rs:30: Expected a == b, but 1 != 2\n\
             \x20   not ok 2 cc_encodes\n\
             \x20   ok 3 later # SKIP not on this machine\n\
             # rnvme_spec: pass:1 fail:1 skip:1 total:3\nnot ok 1 rnvme_spec\n\
             \x20   # Subtest: other\n    1..1\n    ok 1 x\nok 2 other\n\
             \x20   ok 9 stray_line_outside_a_suite\n",
        );
        let r = parse(&log);
        assert_eq!(r.len(), 4);
        assert_eq!(
            (r[0].suite.as_str(), r[0].case.as_str()),
            ("rnvme_spec", "cap_fields_decode")
        );
        assert_eq!(r[0].status, CaseStatus::Passed);
        assert_eq!(r[1].status, CaseStatus::Failed);
        assert_eq!(r[1].case, "cc_encodes");
        assert!(r[1].diagnostics[0].contains("1 != 2"));
        assert_eq!(r[2].status, CaseStatus::Skipped);
        assert_eq!(r[2].case, "later");
        assert_eq!((r[3].suite.as_str(), r[3].case.as_str()), ("other", "x"));
    }
}
