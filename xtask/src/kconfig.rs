//! Kconfig fragment parsing and the "did olddefconfig keep every option we
//! asked for" check. Pure functions.

use std::collections::HashMap;

use anyhow::{bail, Result};

/// What a fragment asks for one option.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Want {
    /// `CONFIG_X=val` (val verbatim, e.g. `y`, `m`, `64`, `"str"`).
    Value(String),
    /// `# CONFIG_X is not set` or `CONFIG_X=n`.
    NotSet,
}

/// One option whose value in .config differs from the fragment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mismatch {
    pub option: String,
    pub want: String,
    pub got: String,
}

impl std::fmt::Display for Mismatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: want {}, got {}", self.option, self.want, self.got)
    }
}

fn not_set_name(line: &str) -> Option<&str> {
    line.strip_prefix("# ")?
        .strip_suffix(" is not set")
        .filter(|n| n.starts_with("CONFIG_") && !n.contains(' '))
}

/// Parse one fragment. `name` is used in error messages.
/// Returns the options in file order.
pub fn parse_fragment(name: &str, text: &str) -> Result<Vec<(String, Want)>> {
    let mut out = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        let line = raw.trim();
        if line.is_empty() {
            continue;
        }
        if let Some(opt) = not_set_name(line) {
            out.push((opt.to_string(), Want::NotSet));
            continue;
        }
        if line.starts_with('#') {
            continue;
        }
        let Some((opt, val)) = line.split_once('=') else {
            bail!("{name}:{}: not a Kconfig assignment: {line:?}", i + 1);
        };
        let opt = opt.trim();
        let val = val.trim();
        if !opt.starts_with("CONFIG_") || opt.contains(char::is_whitespace) || val.is_empty() {
            bail!("{name}:{}: not a Kconfig assignment: {line:?}", i + 1);
        }
        let want = if val == "n" {
            Want::NotSet
        } else {
            Want::Value(val.to_string())
        };
        out.push((opt.to_string(), want));
    }
    Ok(out)
}

/// Parse a .config: option -> Some(value) or None ("is not set").
pub fn parse_config(text: &str) -> HashMap<String, Option<String>> {
    let mut m = HashMap::new();
    for line in text.lines() {
        let line = line.trim();
        if let Some(opt) = not_set_name(line) {
            m.insert(opt.to_string(), None);
        } else if let Some((opt, val)) = line.split_once('=') {
            if opt.starts_with("CONFIG_") {
                m.insert(opt.to_string(), Some(val.to_string()));
            }
        }
    }
    m
}

/// Merge fragments in order (a later fragment overrides an earlier one,
/// as merge_config.sh does), keeping first-appearance order.
pub fn merge(fragments: &[Vec<(String, Want)>]) -> Vec<(String, Want)> {
    let mut order: Vec<String> = Vec::new();
    let mut value: HashMap<String, Want> = HashMap::new();
    for frag in fragments {
        for (opt, want) in frag {
            if value.insert(opt.clone(), want.clone()).is_none() {
                order.push(opt.clone());
            }
        }
    }
    order
        .into_iter()
        .filter_map(|o| value.remove(&o).map(|w| (o, w)))
        .collect()
}

/// Every `CONFIG_X=val` must appear identically in .config; every
/// `# CONFIG_X is not set` must not be `y`/`m` there.
pub fn check(wanted: &[(String, Want)], config: &str) -> Vec<Mismatch> {
    let have = parse_config(config);
    let mut bad = Vec::new();
    for (opt, want) in wanted {
        let got = have.get(opt);
        let got_str = match got {
            Some(Some(v)) => v.clone(),
            Some(None) => "is not set".to_string(),
            None => "absent".to_string(),
        };
        match want {
            Want::Value(v) => {
                if got != Some(&Some(v.clone())) {
                    bad.push(Mismatch {
                        option: opt.clone(),
                        want: v.clone(),
                        got: got_str,
                    });
                }
            }
            Want::NotSet => {
                if matches!(got, Some(Some(v)) if v == "y" || v == "m") {
                    bad.push(Mismatch {
                        option: opt.clone(),
                        want: "is not set".to_string(),
                        got: got_str,
                    });
                }
            }
        }
    }
    bad
}

#[cfg(test)]
mod tests {
    use super::*;

    const FRAG: &str = "\
# comment
CONFIG_A=y
CONFIG_B=m

# CONFIG_C is not set
CONFIG_D=\"hello world\"
CONFIG_E=n
CONFIG_F=64
";

    #[test]
    fn parses_fragment() {
        let f = parse_fragment("f", FRAG).unwrap();
        assert_eq!(
            f,
            vec![
                ("CONFIG_A".into(), Want::Value("y".into())),
                ("CONFIG_B".into(), Want::Value("m".into())),
                ("CONFIG_C".into(), Want::NotSet),
                ("CONFIG_D".into(), Want::Value("\"hello world\"".into())),
                ("CONFIG_E".into(), Want::NotSet),
                ("CONFIG_F".into(), Want::Value("64".into())),
            ]
        );
        assert!(parse_fragment("f", "CONFIG_A").is_err());
        assert!(parse_fragment("f", "FOO=y").is_err());
    }

    #[test]
    fn satisfied_config_passes() {
        let f = parse_fragment("f", FRAG).unwrap();
        let cfg = "CONFIG_A=y\nCONFIG_B=m\n# CONFIG_C is not set\nCONFIG_D=\"hello world\"\nCONFIG_F=64\nCONFIG_Z=y\n";
        assert_eq!(check(&f, cfg), vec![]);
        // Absent counts as "not set" for NotSet wants.
        let cfg2 = cfg.replace("# CONFIG_C is not set\n", "");
        assert_eq!(check(&f, &cfg2), vec![]);
    }

    #[test]
    fn reports_each_mismatch() {
        let f = parse_fragment("f", FRAG).unwrap();
        let cfg =
            "# CONFIG_A is not set\nCONFIG_B=y\nCONFIG_C=m\nCONFIG_D=\"hello world\"\nCONFIG_E=y\n";
        let bad = check(&f, cfg);
        let shown: Vec<String> = bad.iter().map(|m| m.to_string()).collect();
        assert_eq!(
            shown,
            vec![
                "CONFIG_A: want y, got is not set",
                "CONFIG_B: want m, got y",
                "CONFIG_C: want is not set, got m",
                "CONFIG_E: want is not set, got y",
                "CONFIG_F: want 64, got absent",
            ]
        );
    }

    #[test]
    fn later_fragment_overrides() {
        let base = parse_fragment("base", "CONFIG_A=y\nCONFIG_B=y\n").unwrap();
        let dbg = parse_fragment("dbg", "# CONFIG_A is not set\nCONFIG_C=y\n").unwrap();
        let m = merge(&[base, dbg]);
        assert_eq!(
            m,
            vec![
                ("CONFIG_A".into(), Want::NotSet),
                ("CONFIG_B".into(), Want::Value("y".into())),
                ("CONFIG_C".into(), Want::Value("y".into())),
            ]
        );
        assert_eq!(check(&m, "CONFIG_B=y\nCONFIG_C=y\n"), vec![]);
    }
}
