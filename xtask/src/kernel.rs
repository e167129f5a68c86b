//! `cargo xtask kernel`: unpack Debian's linux-source-6.12, configure it from
//! tests/vm/kernel.config (+ kernel-debug.config), build bzImage + modules,
//! install the modules. Keyed by source version + fragment bytes, cached.

use std::fs::{self, File, OpenOptions, TryLockError};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use anyhow::{bail, Context, Result};
use sha2::{Digest, Sha256};

use crate::deps::{self, KERNEL_RUSTC};
use crate::kconfig;
use crate::paths::{self, Paths};
use crate::proc;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Variant {
    Release,
    Debug,
}

impl Variant {
    pub fn from_flag(debug: bool) -> Self {
        if debug {
            Variant::Debug
        } else {
            Variant::Release
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Variant::Release => "release",
            Variant::Debug => "debug",
        }
    }
}

/// A built (or cached) test kernel.
#[derive(Debug, Clone)]
pub struct Kernel {
    pub variant: Variant,
    pub key: String,
    /// `<cache>/kernel/<variant>-<key>`
    pub dir: PathBuf,
    /// `O=` build directory.
    pub build: PathBuf,
    pub bzimage: PathBuf,
    /// `INSTALL_MOD_PATH`; use with `modprobe -d`.
    pub modroot: PathBuf,
    /// Contents of include/config/kernel.release.
    pub release: String,
    pub bindgen: PathBuf,
}

impl Kernel {
    /// `RUSTC=... HOSTRUSTC=... BINDGEN=...` for every kernel make.
    pub fn make_vars(&self) -> Vec<String> {
        make_vars(&self.bindgen)
    }
}

pub fn make_vars(bindgen: &Path) -> Vec<String> {
    vec![
        format!("RUSTC={KERNEL_RUSTC}"),
        format!("HOSTRUSTC={KERNEL_RUSTC}"),
        format!("BINDGEN={}", bindgen.display()),
    ]
}

/// First 16 hex chars of sha256("<version>\n" ++ fragment bytes).
pub fn config_key(version: &str, fragment: &[u8]) -> String {
    let mut h = Sha256::new();
    h.update(version.as_bytes());
    h.update(b"\n");
    h.update(fragment);
    let digest = h.finalize();
    digest.iter().take(8).map(|b| format!("{b:02x}")).collect()
}

/// The fragment files for a variant, in merge order.
pub fn fragment_files(paths: &Paths, variant: Variant) -> Result<Vec<PathBuf>> {
    let base = paths.kernel_fragment();
    if !base.is_file() {
        bail!("kernel config fragment {} is missing", base.display());
    }
    let mut files = vec![base];
    if variant == Variant::Debug {
        let dbg = paths.kernel_debug_fragment();
        if !dbg.is_file() {
            bail!("--debug needs {}, which does not exist yet", dbg.display());
        }
        files.push(dbg);
    }
    Ok(files)
}

pub fn source_version() -> Result<String> {
    let mut cmd = Command::new("dpkg-query");
    cmd.args(["-W", "-f=${Version}", paths::KERNEL_SRC_PKG]);
    let (st, out) = proc::capture(&mut cmd)?;
    let v = out.trim().to_string();
    if !st.success() || v.is_empty() {
        bail!(
            "{} is not installed (run `cargo xtask deps`)",
            paths::KERNEL_SRC_PKG
        );
    }
    Ok(v)
}

/// Build or reuse the kernel. Prints the bzImage path on success.
pub fn ensure(paths: &Paths, debug: bool) -> Result<Kernel> {
    let deps = deps::ensure(false)?;
    let t = Instant::now();
    let variant = Variant::from_flag(debug);
    let version = source_version()?;
    let files = fragment_files(paths, variant)?;
    let mut fragment = Vec::new();
    let mut parsed = Vec::new();
    for f in &files {
        let bytes = fs::read(f).with_context(|| format!("cannot read {}", f.display()))?;
        parsed.push(kconfig::parse_fragment(
            &f.display().to_string(),
            &String::from_utf8_lossy(&bytes),
        )?);
        fragment.extend_from_slice(&bytes);
    }
    let wanted = kconfig::merge(&parsed);
    let key = config_key(&version, &fragment);
    let dir = paths.kernel_dir(variant.name(), &key);
    let build = dir.join("build");
    let mut k = Kernel {
        variant,
        key,
        bzimage: build.join("arch/x86/boot/bzImage"),
        modroot: dir.join("modroot"),
        build,
        dir,
        release: String::new(),
        bindgen: deps.bindgen,
    };

    let done = k.dir.join(".done");
    if !done.exists() {
        fs::create_dir_all(&k.dir).with_context(|| format!("cannot create {}", k.dir.display()))?;
        let _lock = lock(&k.dir.join(".lock"), "kernel")?;
        // Another xtask may have finished it while we waited for the lock.
        if !done.exists() {
            cold_build(paths, &version, &files, &wanted, &k)?;
            File::create(&done).with_context(|| format!("cannot create {}", done.display()))?;
            println!("[kernel] built ({})", proc::secs(t.elapsed()));
        }
    } else {
        println!("[kernel] cached ({})", proc::secs(t.elapsed()));
    }
    let rel = k.build.join("include/config/kernel.release");
    k.release = fs::read_to_string(&rel)
        .with_context(|| format!("cannot read {}", rel.display()))?
        .trim()
        .to_string();
    if !k.bzimage.is_file() {
        bail!(
            "{} is missing although {} exists; delete {} to rebuild",
            k.bzimage.display(),
            done.display(),
            k.dir.display()
        );
    }
    Ok(k)
}

/// Exclusive lock on `path`, waiting (with a message) when someone holds it; `what` names
/// what is being built (`kernel`, `qemu`).
pub fn lock(path: &Path, what: &str) -> Result<File> {
    let f = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(path)
        .with_context(|| format!("cannot open {}", path.display()))?;
    match f.try_lock() {
        Ok(()) => {}
        Err(TryLockError::WouldBlock) => {
            println!(
                "[{what}] another xtask is building this {what} ({} is locked); waiting...",
                path.display()
            );
            f.lock()
                .with_context(|| format!("cannot lock {}", path.display()))?;
        }
        Err(TryLockError::Error(e)) => {
            return Err(e).with_context(|| format!("cannot lock {}", path.display()))
        }
    }
    Ok(f)
}

fn cold_build(
    paths: &Paths,
    version: &str,
    files: &[PathBuf],
    wanted: &[(String, kconfig::Want)],
    k: &Kernel,
) -> Result<()> {
    let src = unpack(paths, version)?;
    fs::create_dir_all(&k.build).with_context(|| format!("cannot create {}", k.build.display()))?;
    let log = k.dir.join("build.log");
    File::create(&log).with_context(|| format!("cannot create {}", log.display()))?;
    println!(
        "[kernel] {} {} (log: {})",
        k.variant.name(),
        k.key,
        log.display()
    );

    let config = k.build.join(".config");
    let satisfied = match proc::read_optional(&config)? {
        Some(text) => kconfig::check(wanted, &text).is_empty(),
        None => false,
    };
    let make = |args: &[&str]| -> Command {
        let mut c = Command::new("make");
        c.current_dir(&src)
            .arg(format!("O={}", k.build.display()))
            .arg("ARCH=x86_64")
            .args(k.make_vars())
            .args(args);
        c
    };
    if satisfied {
        println!("[kernel] .config already satisfies the fragment");
    } else {
        let t = Instant::now();
        println!(
            "[kernel] configuring: tinyconfig + {} fragment(s) + olddefconfig",
            files.len()
        );
        proc::run_logged(&mut make(&["tinyconfig"]), &log, "kernel")?;
        let mut merge = Command::new(src.join("scripts/kconfig/merge_config.sh"));
        merge
            .current_dir(&src)
            .arg("-m")
            .arg("-O")
            .arg(&k.build)
            .arg(&config)
            .args(files);
        proc::run_logged(&mut merge, &log, "kernel")?;
        proc::run_logged(&mut make(&["olddefconfig"]), &log, "kernel")?;
        let text = fs::read_to_string(&config)
            .with_context(|| format!("cannot read {}", config.display()))?;
        let bad = kconfig::check(wanted, &text);
        if !bad.is_empty() {
            let list: Vec<String> = bad.iter().map(|m| format!("  {m}")).collect();
            bail!(
                "the kernel .config does not honour the fragment ({} option(s); unmet Kconfig dependencies?):\n{}\n(config: {})",
                bad.len(),
                list.join("\n"),
                config.display()
            );
        }
        println!("[kernel] configured ({})", proc::secs(t.elapsed()));
    }

    let t = Instant::now();
    println!("[kernel] building bzImage + modules (cold build ~5-10 min)...");
    let jobs = format!("-j{}", proc::jobs());
    proc::run_logged(&mut make(&[&jobs, "bzImage", "modules"]), &log, "kernel")?;
    println!("[kernel] make done ({})", proc::secs(t.elapsed()));

    if k.modroot.exists() {
        fs::remove_dir_all(&k.modroot)
            .with_context(|| format!("cannot remove {}", k.modroot.display()))?;
    }
    let modpath = format!("INSTALL_MOD_PATH={}", k.modroot.display());
    proc::run_logged(&mut make(&["modules_install", &modpath]), &log, "kernel")?;
    println!("[kernel] modules installed in {}", k.modroot.display());
    Ok(())
}

/// Unpack the tarball once (into a temp dir, then rename). Returns the source dir.
fn unpack(paths: &Paths, version: &str) -> Result<PathBuf> {
    let src = paths.kernel_src(version);
    if src.is_dir() {
        return Ok(src);
    }
    let parent = paths.kernel_src_parent(version);
    fs::create_dir_all(&parent).with_context(|| format!("cannot create {}", parent.display()))?;
    let tmp = parent.join(format!(".unpack-{}", std::process::id()));
    if tmp.exists() {
        fs::remove_dir_all(&tmp).with_context(|| format!("cannot remove {}", tmp.display()))?;
    }
    fs::create_dir_all(&tmp).with_context(|| format!("cannot create {}", tmp.display()))?;
    let t = Instant::now();
    println!("[kernel] unpacking {} (~10-30 s)...", paths::KERNEL_TARBALL);
    let mut tar = Command::new("tar");
    tar.arg("-xJf")
        .arg(paths::KERNEL_TARBALL)
        .arg("-C")
        .arg(&tmp);
    proc::run(&mut tar)?;
    let top = tmp.join(paths::KERNEL_SRC_TOPDIR);
    if !top.is_dir() {
        bail!(
            "{} did not unpack to {}/",
            paths::KERNEL_TARBALL,
            paths::KERNEL_SRC_TOPDIR
        );
    }
    fs::rename(&top, &src)
        .with_context(|| format!("cannot rename {} to {}", top.display(), src.display()))?;
    fs::remove_dir_all(&tmp).with_context(|| format!("cannot remove {}", tmp.display()))?;
    println!("[kernel] unpacked ({})", proc::secs(t.elapsed()));
    Ok(src)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_is_sha256_prefix_of_version_newline_fragment() {
        // (printf '%s\n' 6.12.117-1~deb12u1; printf 'CONFIG_A=y\n') | sha256sum | cut -c1-16
        assert_eq!(
            config_key("6.12.117-1~deb12u1", b"CONFIG_A=y\n"),
            "5e87737d48a91269"
        );
        // Debug: the debug fragment's bytes follow the release fragment's directly.
        assert_eq!(
            config_key("6.12.117-1~deb12u1", b"CONFIG_A=y\n# dbg\nCONFIG_B=y\n"),
            "8cc0c903868c839d"
        );
        // sha256("abc\n") = edeaaff3f1774ad2...
        assert_eq!(config_key("abc", b""), "edeaaff3f1774ad2");
    }

    #[test]
    fn key_changes_with_fragment() {
        let a = config_key("v", b"CONFIG_A=y\n");
        let b = config_key("v", b"CONFIG_A=m\n");
        assert_ne!(a, b);
        assert!(a.chars().all(|c| c.is_ascii_hexdigit()));
    }
}
