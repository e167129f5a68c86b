//! `cargo xtask qemu`: the L0 QEMU. Debian's qemu source package (the upstream orig
//! tarball of bookworm-backports, fetched with `apt-get source`), the project's patches
//! (`qemu/patches/*.patch`, in name order: the TP4159 live-migration model in `hw/nvme`)
//! and a lean configuration (x86_64-softmmu, TCG only, nothing the test VM does not use)
//! build `qemu-system-x86_64` into `$RNVME_CACHE/qemu/<version>-<key>/bin/`. The key
//! hashes the source version, every patch (name and bytes) and the configure arguments,
//! so a changed patch builds a new QEMU next to the old one. Locked like the kernel build.

use std::fs::{self, File};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use anyhow::{bail, Context, Result};
use sha2::{Digest, Sha256};

use crate::deps;
use crate::kernel;
use crate::paths::Paths;
use crate::proc;

/// The source package, as `apt-get source` takes it.
pub const SOURCE: &str = "qemu/bookworm-backports";
/// The one target built.
pub const BINARY: &str = "qemu-system-x86_64";

/// Configure arguments (after `<src>/configure`). TCG only for x86_64 system emulation;
/// every optional feature off except what the VM uses (virtio-9p needs attr and virtfs).
/// QOM cast checks and debug information are off (speed of the emulator and of its
/// build); `--disable-werror` keeps a newer compiler's new warnings from failing it.
/// Debian's own build uses `/usr/bin/python3`, whose meson and pycotap come from apt.
/// TCG plugins are on for `cargo xtask bench insns` (they cost nothing unless loaded).
pub const CONFIGURE_ARGS: &[&str] = &[
    "--python=/usr/bin/python3",
    "--target-list=x86_64-softmmu",
    "--without-default-features",
    "--enable-tcg",
    "--enable-plugins",
    "--disable-kvm",
    "--enable-attr",
    "--enable-virtfs",
    "--disable-debug-tcg",
    "--disable-qom-cast-debug",
    "--disable-debug-info",
    "--disable-docs",
    "--disable-werror",
    "--disable-user",
    "--disable-tools",
    "--disable-guest-agent",
    "--disable-rust",
    "--disable-download",
    "--disable-install-blobs",
];

/// Firmware the `+ds` tarball leaves out but configure insists on for x86_64 (it unpacks
/// them for installation). The VM boots with `-kernel` and Debian's SeaBIOS, so each gets
/// an empty bzip2 stream.
pub const EDK2_PLACEHOLDERS: &[&str] = &[
    "edk2-aarch64-code.fd",
    "edk2-arm-code.fd",
    "edk2-arm-vars.fd",
    "edk2-riscv-code.fd",
    "edk2-riscv-vars.fd",
    "edk2-i386-code.fd",
    "edk2-i386-secure-code.fd",
    "edk2-i386-vars.fd",
    "edk2-x86_64-code.fd",
    "edk2-x86_64-secure-code.fd",
    "edk2-loongarch64-code.fd",
    "edk2-loongarch64-vars.fd",
];

/// `bzip2 < /dev/null`.
pub const EMPTY_BZ2: [u8; 14] = [
    0x42, 0x5a, 0x68, 0x39, 0x17, 0x72, 0x45, 0x38, 0x50, 0x90, 0, 0, 0, 0,
];

/// Firmware search paths of Debian's packages (SeaBIOS, the option ROMs of
/// qemu-system-data); the self-built binary has no data directory of its own.
pub const FIRMWARE_DIRS: &[&str] = &["/usr/share/qemu", "/usr/share/seabios"];

/// A built (or cached) QEMU.
#[derive(Debug, Clone)]
pub struct Qemu {
    /// Upstream version of the source (`10.0.2+ds`).
    pub version: String,
    pub key: String,
    /// `<cache>/qemu/<version>-<key>`
    pub dir: PathBuf,
    /// `<dir>/bin/qemu-system-x86_64`
    pub binary: PathBuf,
}

impl Qemu {
    /// The TCG plugin API header this QEMU was built with (`<dir>/include/qemu-plugin.h`);
    /// absent for a `$RNVME_QEMU` binary.
    pub fn plugin_header(&self) -> PathBuf {
        self.dir.join("include").join(PLUGIN_HEADER)
    }
}

/// The TCG plugin API header, as QEMU installs it.
pub const PLUGIN_HEADER: &str = "qemu-plugin.h";

/// The orig tarball `apt-get source --print-uris` announces.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrigTarball {
    /// `qemu_10.0.2+ds.orig.tar.xz`
    pub name: String,
    pub size: u64,
    /// Lower-case hex.
    pub sha256: String,
    /// `10.0.2+ds`
    pub version: String,
}

/// Finds the orig tarball in `apt-get source --print-uris` output: a line
/// `'<uri>' <name> <size> SHA256:<hex>` whose name is `<pkg>_<version>.orig.tar.<ext>`.
pub fn parse_print_uris(out: &str) -> Result<OrigTarball> {
    for line in out.lines() {
        let f: Vec<&str> = line.split_whitespace().collect();
        let [uri, name, size, hash] = f.as_slice() else {
            continue;
        };
        if !uri.starts_with('\'') {
            continue;
        }
        let Some(version) = orig_version(name) else {
            continue;
        };
        let Some(sha256) = hash.strip_prefix("SHA256:") else {
            bail!("the orig tarball {name} has no SHA256 in apt's listing: {line}");
        };
        if sha256.len() != 64 || !sha256.chars().all(|c| c.is_ascii_hexdigit()) {
            bail!("bad SHA256 for {name}: {sha256}");
        }
        let size = size
            .parse()
            .with_context(|| format!("bad size for {name}: {size}"))?;
        return Ok(OrigTarball {
            name: name.to_string(),
            size,
            sha256: sha256.to_ascii_lowercase(),
            version: version.to_string(),
        });
    }
    bail!("apt-get source --print-uris {SOURCE} lists no orig tarball (is deb-src for bookworm-backports configured? run `cargo xtask deps`)")
}

/// `qemu_10.0.2+ds.orig.tar.xz` -> `10.0.2+ds`.
pub fn orig_version(name: &str) -> Option<&str> {
    let rest = name.strip_prefix("qemu_")?;
    let (version, ext) = rest.split_once(".orig.tar.")?;
    (!version.is_empty() && !ext.is_empty() && !ext.contains('/')).then_some(version)
}

/// First 16 hex digits of SHA-256 over `"<version>\n"`, then for each patch
/// `"<name>\n" <bytes> "\n"`, then each configure argument followed by `"\n"`.
pub fn build_key(version: &str, patches: &[(String, Vec<u8>)], args: &[&str]) -> String {
    let mut h = Sha256::new();
    h.update(version.as_bytes());
    h.update(b"\n");
    for (name, bytes) in patches {
        h.update(name.as_bytes());
        h.update(b"\n");
        h.update(bytes);
        h.update(b"\n");
    }
    for a in args {
        h.update(a.as_bytes());
        h.update(b"\n");
    }
    h.finalize()
        .iter()
        .take(8)
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The patch files among `names`, in the order they apply (by name).
pub fn select_patches(names: &[String]) -> Vec<String> {
    let mut v: Vec<String> = names
        .iter()
        .filter(|n| n.ends_with(".patch") && !n.starts_with('.'))
        .cloned()
        .collect();
    v.sort();
    v
}

/// The project's patches: `(file name, bytes)` in apply order.
pub fn read_patches(dir: &Path) -> Result<Vec<(String, Vec<u8>)>> {
    let names: Vec<String> = fs::read_dir(dir)
        .with_context(|| format!("cannot read {}", dir.display()))?
        .map(|e| e.map(|e| e.file_name().to_string_lossy().into_owned()))
        .collect::<std::io::Result<_>>()
        .with_context(|| format!("cannot read {}", dir.display()))?;
    select_patches(&names)
        .into_iter()
        .map(|n| {
            let p = dir.join(&n);
            let bytes = fs::read(&p).with_context(|| format!("cannot read {}", p.display()))?;
            Ok((n, bytes))
        })
        .collect()
}

fn sha256_file(path: &Path) -> Result<String> {
    let mut f = File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
    let mut h = Sha256::new();
    std::io::copy(&mut f, &mut h).with_context(|| format!("cannot read {}", path.display()))?;
    Ok(h.finalize().iter().map(|b| format!("{b:02x}")).collect())
}

/// The orig tarball in `<cache>/qemu-src/`, downloaded with apt when it is not there (or
/// has the wrong size). apt also asks for the .dsc and the Debian tarball, which the
/// mirror may not have (404): its exit status is not trusted, the tarball's SHA-256 is.
fn source_tarball(paths: &Paths) -> Result<(OrigTarball, PathBuf)> {
    let dl = paths.qemu_src_dir();
    // apt leaves out of its listing the files the current directory already has: ask
    // from an empty one.
    let query = dl.join(".query");
    fs::create_dir_all(&query).with_context(|| format!("cannot create {}", query.display()))?;
    let mut cmd = Command::new("apt-get");
    cmd.args(["source", "--print-uris", SOURCE])
        .current_dir(&query);
    let (st, out) = proc::capture(&mut cmd)?;
    if !st.success() {
        bail!(
            "`{}` failed ({}); run `cargo xtask deps`",
            proc::show(&cmd),
            proc::describe_status(st)
        );
    }
    let orig = parse_print_uris(&out)?;
    let path = dl.join(&orig.name);
    let have = fs::metadata(&path).map(|m| m.len()).ok();
    if have == Some(orig.size) {
        return Ok((orig, path));
    }
    let t = Instant::now();
    println!("[qemu] downloading the {SOURCE} source with apt-get ...");
    let log = dl.join("apt-get-source.log");
    let mut cmd = Command::new("apt-get");
    cmd.args(["source", "--download-only", SOURCE])
        .current_dir(&dl);
    let st = proc::run_to_file(&mut cmd, &log, None)?;
    if !path.is_file() {
        proc::print_tail(&log, 20);
        bail!(
            "`{}` ({}) did not fetch {} (log: {})",
            proc::show(&cmd),
            proc::describe_status(st),
            orig.name,
            log.display()
        );
    }
    let sum = sha256_file(&path)?;
    if sum != orig.sha256 {
        let _ = fs::remove_file(&path);
        bail!(
            "{} has SHA-256 {sum}, apt announced {}; deleted it",
            path.display(),
            orig.sha256
        );
    }
    println!(
        "[qemu] {} fetched and verified ({}{})",
        orig.name,
        proc::secs(t.elapsed()),
        if st.success() {
            String::new()
        } else {
            format!(
                "; apt-get exited with {}, for the files not used",
                proc::describe_status(st)
            )
        }
    );
    Ok((orig, path))
}

/// Environment variable naming another L0 QEMU binary to run instead of building one
/// (to compare emulator builds; the live-migration tests need the patched model).
pub const OVERRIDE_ENV: &str = "RNVME_QEMU";

/// Build or reuse the L0 QEMU (or take `$RNVME_QEMU`).
pub fn ensure(paths: &Paths) -> Result<Qemu> {
    if let Some(bin) = std::env::var_os(OVERRIDE_ENV).filter(|v| !v.is_empty()) {
        let binary = PathBuf::from(bin);
        println!(
            "[qemu] ${OVERRIDE_ENV}: using {} (not built from qemu/patches)",
            binary.display()
        );
        return Ok(Qemu {
            version: "external".into(),
            key: OVERRIDE_ENV.into(),
            dir: binary.parent().map(Path::to_path_buf).unwrap_or_default(),
            binary,
        });
    }
    deps::ensure(false)?;
    let t = Instant::now();
    let (orig, tarball) = source_tarball(paths)?;
    let patch_dir = paths.qemu_patches();
    let patches = read_patches(&patch_dir)?;
    let key = build_key(&orig.version, &patches, CONFIGURE_ARGS);
    let dir = paths.qemu_dir(&orig.version, &key);
    let q = Qemu {
        version: orig.version.clone(),
        key,
        binary: dir.join("bin").join(BINARY),
        dir,
    };
    let done = q.dir.join(".done");
    if !done.exists() {
        fs::create_dir_all(&q.dir).with_context(|| format!("cannot create {}", q.dir.display()))?;
        let _lock = kernel::lock(&q.dir.join(".lock"), "qemu")?;
        if !done.exists() {
            cold_build(&tarball, &patch_dir, &patches, &q)?;
            File::create(&done).with_context(|| format!("cannot create {}", done.display()))?;
            println!(
                "[qemu] built {} ({})",
                q.binary.display(),
                proc::secs(t.elapsed())
            );
        }
    } else {
        println!(
            "[qemu] cached {} {}-{} ({})",
            BINARY,
            q.version,
            q.key,
            proc::secs(t.elapsed())
        );
    }
    if !q.binary.is_file() {
        bail!(
            "{} is missing although {} exists; delete {} to rebuild",
            q.binary.display(),
            done.display(),
            q.dir.display()
        );
    }
    Ok(q)
}

fn remove_dir_if_exists(d: &Path) -> Result<()> {
    if d.exists() {
        fs::remove_dir_all(d).with_context(|| format!("cannot remove {}", d.display()))?;
    }
    Ok(())
}

/// Unpack, patch, configure, build and install; the source and build trees are removed
/// afterwards (`build.log` stays).
fn cold_build(
    tarball: &Path,
    patch_dir: &Path,
    patches: &[(String, Vec<u8>)],
    q: &Qemu,
) -> Result<()> {
    let t = Instant::now();
    let log = q.dir.join("build.log");
    File::create(&log).with_context(|| format!("cannot create {}", log.display()))?;
    println!(
        "[qemu] {} {}-{} with {} patch(es) (cold build ~3-8 min; log: {})",
        BINARY,
        q.version,
        q.key,
        patches.len(),
        log.display()
    );
    let src = q.dir.join("src");
    let build = q.dir.join("build");
    let unpack = q.dir.join(".unpack");
    for d in [&src, &build, &unpack] {
        remove_dir_if_exists(d)?;
    }
    fs::create_dir_all(&unpack).with_context(|| format!("cannot create {}", unpack.display()))?;
    let mut tar = Command::new("tar");
    tar.arg("-xf")
        .arg(tarball)
        .arg("--no-same-owner")
        .arg("-C")
        .arg(&unpack);
    proc::run_logged(&mut tar, &log, "qemu")?;
    let tops: Vec<PathBuf> = fs::read_dir(&unpack)
        .with_context(|| format!("cannot read {}", unpack.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .collect();
    let [top] = tops.as_slice() else {
        bail!(
            "{} unpacked to {} entries, want one directory",
            tarball.display(),
            tops.len()
        );
    };
    fs::rename(top, &src)
        .with_context(|| format!("cannot rename {} to {}", top.display(), src.display()))?;
    fs::remove_dir_all(&unpack).with_context(|| format!("cannot remove {}", unpack.display()))?;
    println!("[qemu] unpacked ({})", proc::secs(t.elapsed()));

    for (name, _) in patches {
        let mut p = Command::new("patch");
        p.args(["-p1", "--batch", "--forward", "-i"])
            .arg(patch_dir.join(name))
            .current_dir(&src);
        proc::run_logged(&mut p, &log, "qemu")
            .with_context(|| format!("qemu/patches/{name} does not apply to {}", q.version))?;
        println!("[qemu] applied {name}");
    }

    for f in EDK2_PLACEHOLDERS {
        let p = src.join("pc-bios").join(format!("{f}.bz2"));
        if !p.exists() {
            fs::write(&p, EMPTY_BZ2).with_context(|| format!("cannot write {}", p.display()))?;
        }
    }

    fs::create_dir_all(&build).with_context(|| format!("cannot create {}", build.display()))?;
    let tc = Instant::now();
    let mut configure = Command::new(src.join("configure"));
    configure.args(CONFIGURE_ARGS).current_dir(&build);
    proc::run_logged(&mut configure, &log, "qemu")?;
    println!("[qemu] configured ({})", proc::secs(tc.elapsed()));

    let tb = Instant::now();
    let mut ninja = Command::new("ninja");
    ninja
        .arg(format!("-j{}", proc::jobs()))
        .arg(BINARY)
        .current_dir(&build);
    proc::run_logged(&mut ninja, &log, "qemu")?;
    println!("[qemu] ninja done ({})", proc::secs(tb.elapsed()));

    let text = proc::read_optional(&log)?.unwrap_or_default();
    let warnings = count_warnings(&text);
    if warnings > 0 {
        println!(
            "[qemu] {warnings} compiler warning(s), see {}",
            log.display()
        );
    }

    let bin_dir = q.dir.join("bin");
    fs::create_dir_all(&bin_dir).with_context(|| format!("cannot create {}", bin_dir.display()))?;
    fs::copy(build.join(BINARY), &q.binary)
        .with_context(|| format!("cannot install {}", q.binary.display()))?;
    let header = q.plugin_header();
    if let Some(dir) = header.parent() {
        fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    fs::copy(src.join("include/qemu").join(PLUGIN_HEADER), &header)
        .with_context(|| format!("cannot install {}", header.display()))?;
    remove_dir_if_exists(&build)?;
    remove_dir_if_exists(&src)?;
    println!(
        "[qemu] cold build {} (unpack, patch, configure, build)",
        proc::secs(t.elapsed())
    );
    Ok(())
}

/// Compiler warnings in a build log (`file:line:col: warning: ...` lines).
pub fn count_warnings(log: &str) -> usize {
    log.lines().filter(|l| l.contains(": warning: ")).count()
}

/// `-L` arguments for Debian's firmware.
pub fn firmware_args() -> Vec<String> {
    FIRMWARE_DIRS
        .iter()
        .flat_map(|d| ["-L".to_string(), d.to_string()])
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const PRINT_URIS: &str = "\
Reading package lists...
Selected version '1:10.0.2+ds-2+deb13u1~bpo12+1' (bookworm-backports) for qemu
Need to get 39.6 MB of source archives.
'http://deb.debian.org/debian/pool/main/q/qemu/qemu_10.0.2%2bds-2%2bdeb13u1%7ebpo12%2b1.dsc' qemu_10.0.2+ds-2+deb13u1~bpo12+1.dsc 11887 SHA256:a9eec32b6ddeda8f7e3472b3e9662358a0a764fb2ba9551a8c158c012072bc96
'http://deb.debian.org/debian/pool/main/q/qemu/qemu_10.0.2%2bds.orig.tar.xz' qemu_10.0.2+ds.orig.tar.xz 39449628 SHA256:0901da33844a331bf8b3602b9c1fbd178e60b737c8e3ade678255bd090c9b9f1
'http://deb.debian.org/debian/pool/main/q/qemu/qemu_10.0.2%2bds-2%2bdeb13u1%7ebpo12%2b1.debian.tar.xz' qemu_10.0.2+ds-2+deb13u1~bpo12+1.debian.tar.xz 158100 SHA256:11112222333344445555666677778888999900001111222233334444555566ff
";

    #[test]
    fn print_uris_names_the_orig_tarball() {
        let o = parse_print_uris(PRINT_URIS).unwrap();
        assert_eq!(o.name, "qemu_10.0.2+ds.orig.tar.xz");
        assert_eq!(o.size, 39_449_628);
        assert_eq!(
            o.sha256,
            "0901da33844a331bf8b3602b9c1fbd178e60b737c8e3ade678255bd090c9b9f1"
        );
        assert_eq!(o.version, "10.0.2+ds");
        assert!(parse_print_uris("Reading package lists...\n").is_err());
        let bad = PRINT_URIS.replace("SHA256:0901", "SHA256:zz01");
        assert!(parse_print_uris(&bad).is_err());
    }

    #[test]
    fn orig_versions() {
        assert_eq!(
            orig_version("qemu_10.0.2+ds.orig.tar.xz"),
            Some("10.0.2+ds")
        );
        assert_eq!(orig_version("qemu_7.2+dfsg.orig.tar.gz"), Some("7.2+dfsg"));
        assert_eq!(orig_version("qemu_10.0.2+ds-2.debian.tar.xz"), None);
        assert_eq!(orig_version("qemu_.orig.tar.xz"), None);
        assert_eq!(orig_version("other_1.orig.tar.xz"), None);
    }

    #[test]
    fn key_is_sha256_prefix_of_version_patches_and_args() {
        // printf '10.0.2+ds\n0001-a.patch\nA\n\n--x\n--y\n' | sha256sum | cut -c1-16
        let patches = vec![("0001-a.patch".to_string(), b"A\n".to_vec())];
        assert_eq!(
            build_key("10.0.2+ds", &patches, &["--x", "--y"]),
            "ca4b86f177363802"
        );
        // printf '10.0.2+ds\n--x\n' | sha256sum | cut -c1-16
        assert_eq!(build_key("10.0.2+ds", &[], &["--x"]), "94570116aa7135e5");
        // Every input moves the key.
        let base = build_key("10.0.2+ds", &patches, CONFIGURE_ARGS);
        let renamed = vec![("0002-a.patch".to_string(), b"A\n".to_vec())];
        let edited = vec![("0001-a.patch".to_string(), b"B\n".to_vec())];
        assert_ne!(base, build_key("10.0.2+ds", &renamed, CONFIGURE_ARGS));
        assert_ne!(base, build_key("10.0.2+ds", &edited, CONFIGURE_ARGS));
        assert_ne!(base, build_key("10.0.3+ds", &patches, CONFIGURE_ARGS));
        assert_ne!(base, build_key("10.0.2+ds", &patches, &CONFIGURE_ARGS[1..]));
    }

    #[test]
    fn patches_apply_in_name_order() {
        let names: Vec<String> = [
            "0003-c.patch",
            "README",
            "0001-a.patch",
            ".0002-editor.patch",
            "0002-b.patch",
            "0004-d.patch.orig",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        assert_eq!(
            select_patches(&names),
            vec!["0001-a.patch", "0002-b.patch", "0003-c.patch"]
        );
    }

    #[test]
    fn repository_patches_are_found_in_order() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("..")
            .join("qemu/patches");
        let p = read_patches(&dir).unwrap();
        assert!(p.len() >= 3, "{} patches", p.len());
        for (i, (name, bytes)) in p.iter().enumerate() {
            assert!(name.starts_with(&format!("{:04}-", i + 1)), "{name}");
            assert!(
                String::from_utf8_lossy(bytes).contains("hw/nvme/"),
                "{name}"
            );
        }
    }

    #[test]
    fn configuration_is_lean_and_fast() {
        for want in [
            "--target-list=x86_64-softmmu",
            "--enable-tcg",
            "--disable-kvm",
            "--without-default-features",
            "--enable-virtfs",
            "--disable-debug-tcg",
            "--disable-qom-cast-debug",
            "--disable-download",
        ] {
            assert!(CONFIGURE_ARGS.contains(&want), "{want}");
        }
        assert!(!CONFIGURE_ARGS.contains(&"--enable-debug"));
    }

    #[test]
    fn empty_bzip2_and_warnings() {
        assert_eq!(&EMPTY_BZ2[..3], b"BZh");
        let log = "../hw/nvme/ctrl.c:10:5: warning: unused variable 'x'\nnote: x\n[1/2] cc\n";
        assert_eq!(count_warnings(log), 1);
        assert_eq!(count_warnings("no warnings here\n"), 0);
        assert_eq!(
            firmware_args(),
            ["-L", "/usr/share/qemu", "-L", "/usr/share/seabios"]
        );
    }
}
