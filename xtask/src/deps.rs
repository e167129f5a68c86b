//! `cargo xtask deps`: make the host able to build the kernel, the module
//! and run the VM (Debian 12, as root). Idempotent and fast when satisfied.

use std::collections::HashMap;
use std::env;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use anyhow::{bail, Context, Result};

use crate::paths;
use crate::proc;

/// Packages from bookworm proper.
pub const BOOKWORM_PKGS: &[&str] = &[
    "linux-source-6.12",
    "rustc-web",
    "rust-web-src",
    "libclang-dev",
    "clang",
    "flex",
    "bison",
    "bc",
    "libelf-dev",
    "libssl-dev",
    "cpio",
    "nvme-cli",
    "fio",
    "pciutils",
    "busybox-static",
    "kmod",
    // clippy-driver for the kernel's rustc (`cargo xtask lint`).
    "rust-web-clippy",
    // Building Documentation/ with warnings as errors (`cargo xtask lint`).
    "python3-sphinx",
    // libFuzzer's C++ runtime, built by the crate libfuzzer-sys (`cargo xtask fuzz`).
    "g++",
    // Building the L0 QEMU from Debian's source (`cargo xtask qemu`).
    "ninja-build",
    "libglib2.0-dev",
    "libpixman-1-dev",
    "libfdt-dev",
    "python3-venv",
    "pkg-config",
    "patch",
    "xz-utils",
    "bzip2",
];

/// Build tools that must come from bookworm-backports, with the lowest version that
/// will do: QEMU 10 needs meson >= 1.5 (bookworm has 1.0) and pycotap (bookworm has none).
pub const BACKPORTS_BUILD_PKGS: &[(&str, &str)] = &[("meson", "1.5"), ("python3-pycotap", "1")];

/// QEMU comes from bookworm-backports (10.x: VFIO migration v2).
pub const QEMU_PKG: &str = "qemu-system-x86";
pub const QEMU_VERSION_PREFIX: &str = "1:10";

pub const SOURCES_FILE: &str = "/etc/apt/sources.list.d/rnvme-backports.sources";
pub const SOURCES_CONTENT: &str = "\
Types: deb deb-src
URIs: http://deb.debian.org/debian
Suites: bookworm-backports
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
";

/// Whether a deb822 sources file has a `Types:` line with both `deb` and `deb-src`.
pub fn has_deb_src(text: &str) -> bool {
    text.lines().any(|l| {
        let Some(types) = l.trim().strip_prefix("Types:") else {
            return false;
        };
        let t: Vec<&str> = types.split_whitespace().collect();
        t.contains(&"deb") && t.contains(&"deb-src")
    })
}

/// The kernel must be built with Debian's rustc (it has rust-src).
pub const KERNEL_RUSTC: &str = "/usr/bin/rustc";
const BINDGEN_SERIES: &str = "0.69.";

/// What the rest of xtask needs from the dependency check.
#[derive(Debug, Clone)]
pub struct Deps {
    /// Absolute path of a bindgen 0.69.x binary.
    pub bindgen: PathBuf,
}

/// One package's state as reported by dpkg-query.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PkgState {
    pub status: String,
    pub version: String,
}

impl PkgState {
    fn installed(&self) -> bool {
        self.status == "install ok installed"
    }
}

/// What apt has to do.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Plan {
    pub missing: Vec<String>,
    /// Build tools to install (or upgrade) from bookworm-backports.
    pub backports: Vec<String>,
    /// What to do about qemu-system-x86 (None: 1:10.x is installed).
    pub qemu: Option<QemuAction>,
}

#[derive(Debug, PartialEq, Eq)]
pub enum QemuAction {
    Install,
    Upgrade { from: String },
}

impl Plan {
    pub fn is_empty(&self) -> bool {
        self.missing.is_empty() && self.backports.is_empty() && self.qemu.is_none()
    }
}

/// The leading numeric components of a Debian version: `1.7.0-1~bpo12+1` -> [1, 7, 0],
/// `1:10.0.2+ds-2` -> [10, 0, 2] (the epoch is skipped).
fn numeric_version(v: &str) -> Vec<u64> {
    let v = v.split_once(':').map(|(_, rest)| rest).unwrap_or(v);
    let end = v
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(v.len());
    v[..end].split('.').map_while(|c| c.parse().ok()).collect()
}

/// Whether Debian version `v` is at least `min` (numeric components only).
pub fn version_at_least(v: &str, min: &str) -> bool {
    let (v, min) = (numeric_version(v), numeric_version(min));
    !v.is_empty() && v >= min
}

/// Parse `dpkg-query -W -f='${Package}\t${Status}\t${Version}\n'` output.
pub fn parse_dpkg(out: &str) -> HashMap<String, PkgState> {
    let mut m = HashMap::new();
    for line in out.lines() {
        let mut it = line.split('\t');
        let (Some(name), Some(status), Some(version)) = (it.next(), it.next(), it.next()) else {
            continue;
        };
        let st = PkgState {
            status: status.trim().to_string(),
            version: version.trim().to_string(),
        };
        // Multi-arch packages may appear more than once: any installed copy wins.
        let keep = m
            .get(name)
            .map(|old: &PkgState| !old.installed())
            .unwrap_or(true);
        if keep {
            m.insert(name.to_string(), st);
        }
    }
    m
}

pub fn plan(states: &HashMap<String, PkgState>) -> Plan {
    let missing = BOOKWORM_PKGS
        .iter()
        .filter(|p| !states.get(**p).map(PkgState::installed).unwrap_or(false))
        .map(|p| p.to_string())
        .collect();
    let backports = BACKPORTS_BUILD_PKGS
        .iter()
        .filter(|(p, min)| {
            !states
                .get(*p)
                .map(|s| s.installed() && version_at_least(&s.version, min))
                .unwrap_or(false)
        })
        .map(|(p, _)| p.to_string())
        .collect();
    let qemu = match states.get(QEMU_PKG) {
        Some(s) if s.installed() && s.version.starts_with(QEMU_VERSION_PREFIX) => None,
        Some(s) if s.installed() => Some(QemuAction::Upgrade {
            from: s.version.clone(),
        }),
        _ => Some(QemuAction::Install),
    };
    Plan {
        missing,
        backports,
        qemu,
    }
}

fn query_packages() -> Result<HashMap<String, PkgState>> {
    let mut cmd = Command::new("dpkg-query");
    cmd.arg("-W")
        .arg("-f=${Package}\t${Status}\t${Version}\n")
        .args(BOOKWORM_PKGS)
        .args(BACKPORTS_BUILD_PKGS.iter().map(|(p, _)| p))
        .arg(QEMU_PKG)
        .stderr(std::process::Stdio::null());
    // dpkg-query exits 1 when some package is unknown: that is an answer, not an error.
    let out = cmd
        .output()
        .context("cannot run dpkg-query (is this a Debian system?)")?;
    Ok(parse_dpkg(&String::from_utf8_lossy(&out.stdout)))
}

fn is_root() -> bool {
    // No libc dependency: ask id(1). Cheap enough for an install path only.
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
}

fn apt(args: &[&str]) -> Result<()> {
    let mut cmd = Command::new("apt-get");
    cmd.args(args).env("DEBIAN_FRONTEND", "noninteractive");
    println!("[deps] $ {}", proc::show(&cmd));
    proc::run(&mut cmd)
}

/// Check and install everything. Prints what it installs; with `verbose`
/// also what it skips.
pub fn ensure(verbose: bool) -> Result<Deps> {
    let t = Instant::now();
    let mut sources_created = false;
    // The QEMU source package needs deb-src: an older file with binaries only is rewritten.
    let existing = proc::read_optional(Path::new(SOURCES_FILE))?;
    if !existing.as_deref().map(has_deb_src).unwrap_or(false) {
        if !is_root() {
            bail!("{SOURCES_FILE} is missing or has no deb-src; run `cargo xtask deps` as root");
        }
        fs::write(SOURCES_FILE, SOURCES_CONTENT)
            .with_context(|| format!("cannot write {SOURCES_FILE}"))?;
        println!(
            "[deps] {} {SOURCES_FILE} (bookworm-backports, deb + deb-src)",
            if existing.is_some() {
                "rewrote"
            } else {
                "created"
            }
        );
        sources_created = true;
    } else if verbose {
        println!("[deps] skip {SOURCES_FILE}: has deb and deb-src");
    }

    let states = query_packages()?;
    let todo = plan(&states);
    if todo.is_empty() && !sources_created {
        if verbose {
            println!(
                "[deps] skip apt: {} packages installed ({} {})",
                BOOKWORM_PKGS.len() + 1,
                QEMU_PKG,
                states
                    .get(QEMU_PKG)
                    .map(|s| s.version.as_str())
                    .unwrap_or("?")
            );
        }
    } else {
        if !todo.is_empty() && !is_root() {
            bail!(
                "missing packages {:?}{}; run `cargo xtask deps` as root",
                todo.missing,
                if todo.qemu.is_some() || !todo.backports.is_empty() {
                    " and packages from bookworm-backports"
                } else {
                    ""
                }
            );
        }
        apt(&["update"])?;
        if !todo.missing.is_empty() {
            println!("[deps] installing: {}", todo.missing.join(" "));
            let mut args = vec!["install", "-y"];
            args.extend(todo.missing.iter().map(String::as_str));
            apt(&args)?;
        }
        match &todo.qemu {
            Some(QemuAction::Install) => {
                println!("[deps] installing {QEMU_PKG} from bookworm-backports");
            }
            Some(QemuAction::Upgrade { from }) => {
                println!("[deps] {QEMU_PKG} is {from}; upgrading from bookworm-backports");
            }
            None => {}
        }
        if todo.qemu.is_some() {
            apt(&["install", "-y", "-t", "bookworm-backports", QEMU_PKG])?;
        }
        if !todo.backports.is_empty() {
            println!(
                "[deps] installing from bookworm-backports: {}",
                todo.backports.join(" ")
            );
            let mut args = vec!["install", "-y", "-t", "bookworm-backports"];
            args.extend(todo.backports.iter().map(String::as_str));
            apt(&args)?;
        }
        let after = plan(&query_packages()?);
        if !after.is_empty() {
            bail!("packages still missing after apt-get: {after:?}");
        }
    }

    if !Path::new(KERNEL_RUSTC).exists() {
        bail!("{KERNEL_RUSTC} is missing although rustc-web is installed");
    }

    let bindgen = ensure_bindgen(verbose)?;
    println!("[deps] ok ({})", proc::secs(t.elapsed()));
    Ok(Deps { bindgen })
}

fn cargo_bin_dir() -> Result<PathBuf> {
    match env::var_os("CARGO_HOME") {
        Some(h) if !h.is_empty() => Ok(PathBuf::from(h).join("bin")),
        _ => Ok(paths::home()?.join(".cargo").join("bin")),
    }
}

fn find_in_path(name: &str) -> Option<PathBuf> {
    env::var_os("PATH").and_then(|p| {
        env::split_paths(&p)
            .map(|d| d.join(name))
            .find(|c| c.is_file())
    })
}

/// `bindgen 0.69.5` → true.
pub fn bindgen_version_ok(version_output: &str) -> bool {
    version_output
        .split_whitespace()
        .nth(1)
        .map(|v| v.starts_with(BINDGEN_SERIES))
        .unwrap_or(false)
}

fn bindgen_ok(path: &Path) -> Option<String> {
    let out = Command::new(path).arg("--version").output().ok()?;
    let text = String::from_utf8_lossy(&out.stdout).trim().to_string();
    bindgen_version_ok(&text).then_some(text)
}

fn ensure_bindgen(verbose: bool) -> Result<PathBuf> {
    let cargo_bin = cargo_bin_dir()?.join("bindgen");
    let mut candidates = vec![cargo_bin.clone()];
    if let Some(p) = find_in_path("bindgen") {
        candidates.push(p);
    }
    for c in &candidates {
        if !c.is_file() {
            continue;
        }
        if let Some(v) = bindgen_ok(c) {
            if verbose {
                println!("[deps] skip bindgen: {v} at {}", c.display());
            }
            return Ok(c.clone());
        }
    }
    println!("[deps] installing bindgen-cli 0.69 with cargo install (~2 min)");
    let mut cmd = Command::new("cargo");
    cmd.args(["install", "bindgen-cli", "--version", "^0.69", "--locked"]);
    proc::run(&mut cmd).context("cargo install bindgen-cli failed")?;
    match bindgen_ok(&cargo_bin) {
        Some(v) => {
            println!("[deps] {v} at {}", cargo_bin.display());
            Ok(cargo_bin)
        }
        None => bail!(
            "{} does not report bindgen 0.69.x after cargo install",
            cargo_bin.display()
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all_installed() -> String {
        let mut s = String::new();
        for p in BOOKWORM_PKGS {
            s.push_str(&format!("{p}\tinstall ok installed\t1.0\n"));
        }
        s.push_str("meson\tinstall ok installed\t1.7.0-1~bpo12+1\n");
        s.push_str("python3-pycotap\tinstall ok installed\t1.3.1-2~bpo12+1\n");
        s.push_str("qemu-system-x86\tinstall ok installed\t1:10.0.2+ds-2+deb13u1~bpo12+1\n");
        s
    }

    #[test]
    fn nothing_to_do_when_all_installed() {
        assert!(plan(&parse_dpkg(&all_installed())).is_empty());
    }

    #[test]
    fn missing_and_removed_packages() {
        let text = all_installed()
            .replace(
                "fio\tinstall ok installed",
                "fio\tdeinstall ok config-files",
            )
            .replace("kmod\tinstall ok installed\t1.0\n", "");
        let p = plan(&parse_dpkg(&text));
        assert_eq!(p.missing, vec!["fio".to_string(), "kmod".to_string()]);
        assert_eq!(p.qemu, None);
    }

    #[test]
    fn old_qemu_needs_backports() {
        let text =
            all_installed().replace("1:10.0.2+ds-2+deb13u1~bpo12+1", "1:7.2+dfsg-7+deb12u18+b3");
        let p = plan(&parse_dpkg(&text));
        assert!(p.missing.is_empty());
        assert_eq!(
            p.qemu,
            Some(QemuAction::Upgrade {
                from: "1:7.2+dfsg-7+deb12u18+b3".into()
            })
        );
        let none = all_installed().replace("qemu-system-x86\t", "other\t");
        assert_eq!(plan(&parse_dpkg(&none)).qemu, Some(QemuAction::Install));
    }

    #[test]
    fn old_meson_and_missing_pycotap_need_backports() {
        let text = all_installed()
            .replace("1.7.0-1~bpo12+1", "1.0.1-5")
            .replace("python3-pycotap\t", "other\t");
        let p = plan(&parse_dpkg(&text));
        assert!(p.missing.is_empty());
        assert_eq!(
            p.backports,
            vec!["meson".to_string(), "python3-pycotap".to_string()]
        );
        assert!(!p.is_empty());
    }

    #[test]
    fn debian_versions_compare_numerically() {
        assert!(version_at_least("1.7.0-1~bpo12+1", "1.5"));
        assert!(version_at_least("1.5", "1.5"));
        assert!(version_at_least("1.10.0", "1.5"));
        assert!(!version_at_least("1.0.1-5", "1.5"));
        assert!(version_at_least("1:10.0.2+ds-2", "10"));
        assert!(!version_at_least("", "1"));
    }

    #[test]
    fn sources_need_deb_src() {
        assert!(has_deb_src(SOURCES_CONTENT));
        assert!(!has_deb_src(&SOURCES_CONTENT.replace(" deb-src", "")));
        assert!(!has_deb_src("Types: deb-src\n"));
        assert!(has_deb_src("Types:  deb-src   deb\nURIs: x\n"));
    }

    #[test]
    fn bindgen_versions() {
        assert!(bindgen_version_ok("bindgen 0.69.5"));
        assert!(!bindgen_version_ok("bindgen 0.60.1"));
        assert!(!bindgen_version_ok("bindgen 0.690.1"));
        assert!(!bindgen_version_ok(""));
    }
}
