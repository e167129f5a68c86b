//! Where things live: the repository, the cache outside it, and the
//! artifacts inside both.

use std::env;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};

/// Directories the guest covers with a tmpfs: host files under them are
/// invisible inside the VM, so neither the repo nor the cache may live there.
pub const GUEST_HIDDEN: &[&str] = &["/tmp", "/var/tmp", "/run"];

/// Top directory inside Debian's linux-source tarball.
pub const KERNEL_SRC_TOPDIR: &str = "linux-source-6.12";
/// Debian's kernel source tarball.
pub const KERNEL_TARBALL: &str = "/usr/src/linux-source-6.12.tar.xz";
/// Debian package that ships the tarball.
pub const KERNEL_SRC_PKG: &str = "linux-source-6.12";

#[derive(Debug, Clone)]
pub struct Paths {
    /// Absolute path of the repository (workspace root).
    pub repo: PathBuf,
    /// Cache root: `$RNVME_CACHE`, else `$HOME/.cache/rnvme`.
    pub cache: PathBuf,
}

impl Paths {
    pub fn discover() -> Result<Self> {
        let repo = Path::new(env!("CARGO_MANIFEST_DIR"))
            .parent()
            .context("xtask manifest dir has no parent")?
            .to_path_buf();
        let cache = match env::var_os("RNVME_CACHE") {
            Some(v) if !v.is_empty() => PathBuf::from(v),
            _ => home()?.join(".cache").join("rnvme"),
        };
        let cache = absolute(&cache)?;
        for (what, p) in [("repository", &repo), ("cache ($RNVME_CACHE)", &cache)] {
            if let Some(h) = hidden_in_guest(p) {
                bail!(
                    "the {what} {} is under {h}, which the test VM covers with a tmpfs; \
                     move it (for the cache, set RNVME_CACHE)",
                    p.display()
                );
            }
        }
        Ok(Paths { repo, cache })
    }

    pub fn kernel_fragment(&self) -> PathBuf {
        self.repo.join("tests/vm/kernel.config")
    }

    pub fn kernel_debug_fragment(&self) -> PathBuf {
        self.repo.join("tests/vm/kernel-debug.config")
    }

    pub fn init_sh(&self) -> PathBuf {
        self.repo.join("tests/vm/init.sh")
    }

    /// `<cache>/linux-src/<version>`
    pub fn kernel_src_parent(&self, version: &str) -> PathBuf {
        self.cache.join("linux-src").join(version)
    }

    /// `<cache>/linux-src/<version>/linux-source-6.12`
    pub fn kernel_src(&self, version: &str) -> PathBuf {
        self.kernel_src_parent(version).join(KERNEL_SRC_TOPDIR)
    }

    /// `<cache>/kernel/<variant>-<key>`
    pub fn kernel_dir(&self, variant: &str, key: &str) -> PathBuf {
        self.cache.join("kernel").join(format!("{variant}-{key}"))
    }

    /// `<cache>/qemu-src`: Debian's QEMU source tarball, as apt fetched it.
    pub fn qemu_src_dir(&self) -> PathBuf {
        self.cache.join("qemu-src")
    }

    /// `<cache>/qemu/<version>-<key>`
    pub fn qemu_dir(&self, version: &str, key: &str) -> PathBuf {
        self.cache.join("qemu").join(format!("{version}-{key}"))
    }

    /// `<repo>/qemu/patches`: the project's patches to QEMU, applied in name order.
    pub fn qemu_patches(&self) -> PathBuf {
        self.repo.join("qemu/patches")
    }

    /// `<cache>/runs`
    pub fn runs_dir(&self) -> PathBuf {
        self.cache.join("runs")
    }

    pub fn kbuild_file(&self) -> PathBuf {
        self.repo.join("Kbuild")
    }

    pub fn module_ko(&self) -> PathBuf {
        self.repo.join("rnvme.ko")
    }

    pub fn guest_tests_manifest(&self) -> PathBuf {
        self.repo.join("tests/guest/Cargo.toml")
    }

    /// Cargo target dir (honours `CARGO_TARGET_DIR`).
    pub fn target_dir(&self) -> PathBuf {
        match env::var_os("CARGO_TARGET_DIR") {
            Some(v) if !v.is_empty() => {
                let p = PathBuf::from(v);
                if p.is_absolute() {
                    p
                } else {
                    self.repo.join(p)
                }
            }
            _ => self.repo.join("target"),
        }
    }

    pub fn guest_tests_bin(&self) -> PathBuf {
        self.target_dir().join("release/rnvme-guest-tests")
    }
}

pub fn home() -> Result<PathBuf> {
    match env::var_os("HOME") {
        Some(h) if !h.is_empty() => Ok(PathBuf::from(h)),
        _ => bail!("$HOME is not set"),
    }
}

fn absolute(p: &Path) -> Result<PathBuf> {
    if p.is_absolute() {
        Ok(p.to_path_buf())
    } else {
        Ok(env::current_dir()
            .context("cannot read the current directory")?
            .join(p))
    }
}

/// Returns the tmpfs mount point that hides `p` inside the guest, if any.
pub fn hidden_in_guest(p: &Path) -> Option<&'static str> {
    GUEST_HIDDEN
        .iter()
        .copied()
        .find(|h| p.starts_with(Path::new(h)))
}

/// Paths end up in QEMU option strings and on the kernel command line:
/// refuse the characters that would need quoting there.
pub fn check_vm_safe(p: &Path) -> Result<String> {
    let s = p
        .to_str()
        .with_context(|| format!("path is not UTF-8: {}", p.display()))?;
    if s.chars().any(|c| c == ',' || c == '"' || c.is_whitespace()) {
        bail!("path {s:?} contains a comma, quote or whitespace, which the VM command line cannot carry");
    }
    Ok(s.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hidden_paths() {
        assert_eq!(hidden_in_guest(Path::new("/tmp/x")), Some("/tmp"));
        assert_eq!(hidden_in_guest(Path::new("/run")), Some("/run"));
        assert_eq!(hidden_in_guest(Path::new("/var/tmp/a/b")), Some("/var/tmp"));
        assert_eq!(hidden_in_guest(Path::new("/tmpfoo")), None);
        assert_eq!(hidden_in_guest(Path::new("/root/.cache/rnvme")), None);
    }

    #[test]
    fn vm_safe_paths() {
        assert!(check_vm_safe(Path::new("/work/main")).is_ok());
        assert!(check_vm_safe(Path::new("/a b")).is_err());
        assert!(check_vm_safe(Path::new("/a,b")).is_err());
    }
}
