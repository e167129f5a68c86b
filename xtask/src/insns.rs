//! `cargo xtask bench insns`: guest instructions per I/O in each driver's own code,
//! counted rather than timed, so that a change of a few dozen instructions shows under
//! TCG on a host whose speed swings.
//!
//! QEMU loads the `insn_count` TCG plugin (`tests/vm/insn-count/insn_count.c`, built
//! here against the L0 QEMU's plugin header and cached by what it was built from). The
//! guest benchmark marks a window around each fio run; the plugin writes how often each
//! translation block ran in it (`<rundir>/insns.<n>`). This module adds the blocks up by
//! function (the guest's `/proc/kallsyms`) and counts a driver's own code: the functions
//! of `nvme.ko` and `nvme-core.ko` for the C driver, those of `rnvme.ko` and the kernel's
//! `rust_helper_*` functions (only Rust code calls them) for rnvme. Code both drivers
//! share (blk-mq, the DMA API and IOMMU, locks, interrupt entry) is left out of that
//! count; a second count per cell takes all the kernel code the guest ran in the window,
//! to show what the drivers' differences come to in the whole kernel I/O path. (fio's own
//! instructions are left out of both: how often it polls its clock and its rings depends
//! on timing, by up to a fifth from one run to the next.)

use std::collections::HashMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context, Result};
use sha2::{Digest, Sha256};

use crate::paths::Paths;
use crate::proc;
use crate::qemu::Qemu;

/// The plugin's source, relative to the repository.
pub const PLUGIN_SOURCE: &str = "tests/vm/insn-count/insn_count.c";
/// The prefix of the plugin's dumps in the run directory.
pub const DUMP_PREFIX: &str = "insns";
/// Where the x86-64 kernel's half of the address space begins.
const KERNEL_HALF: u64 = 0xffff_8000_0000_0000;

/// Builds (or reuses) the plugin for `qemu`; returns the shared library.
pub fn plugin(paths: &Paths, qemu: &Qemu) -> Result<PathBuf> {
    let header = qemu.plugin_header();
    if !header.is_file() {
        bail!(
            "{} is missing: `bench insns` needs the L0 QEMU that `cargo xtask qemu` builds \
             (with TCG plugins), not $RNVME_QEMU",
            header.display()
        );
    }
    let source = paths.repo.join(PLUGIN_SOURCE);
    let src = fs::read(&source).with_context(|| format!("cannot read {}", source.display()))?;
    let hdr = fs::read(&header).with_context(|| format!("cannot read {}", header.display()))?;
    let glib = pkg_config_glib()?;
    let key = key(&[&src, &hdr, glib.join(" ").as_bytes()]);
    let dir = paths.cache.join("insn-count");
    let lib = dir.join(format!("insn_count-{key}.so"));
    if lib.is_file() {
        return Ok(lib);
    }
    fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let tmp = dir.join(format!(".insn_count-{key}.so.tmp"));
    let include = header.parent().map(Path::to_path_buf).unwrap_or_default();
    let mut cc = Command::new("cc");
    cc.args(["-O2", "-Wall", "-Werror", "-shared", "-fPIC", "-I"])
        .arg(&include)
        .args(&glib)
        .arg("-o")
        .arg(&tmp)
        .arg(&source);
    proc::run(&mut cc).context("cannot build the insn_count plugin")?;
    fs::rename(&tmp, &lib).with_context(|| format!("cannot create {}", lib.display()))?;
    println!("[insns] built {}", lib.display());
    Ok(lib)
}

/// The compiler and linker flags of glib (`pkg-config --cflags --libs glib-2.0`).
fn pkg_config_glib() -> Result<Vec<String>> {
    let mut pc = Command::new("pkg-config");
    pc.args(["--cflags", "--libs", "glib-2.0"]);
    let (st, out) = proc::capture(&mut pc)?;
    if !st.success() {
        bail!("pkg-config finds no glib-2.0 (run `cargo xtask deps`)");
    }
    Ok(out.split_whitespace().map(str::to_string).collect())
}

/// A short hash of `parts`.
fn key(parts: &[&[u8]]) -> String {
    let mut h = Sha256::new();
    for p in parts {
        h.update((p.len() as u64).to_le_bytes());
        h.update(p);
    }
    h.finalize()
        .iter()
        .take(8)
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The `-plugin` argument that loads `lib` with its dumps in `rundir`.
pub fn plugin_arg(lib: &Path, rundir: &Path) -> String {
    format!(
        "{},out={}",
        lib.display(),
        rundir.join(DUMP_PREFIX).display()
    )
}

/// The kernel's text symbols, sorted by address.
#[derive(Debug, Default)]
pub struct Symbols {
    addrs: Vec<u64>,
    /// `(name, module)`; the module is `None` for the kernel image.
    names: Vec<(String, Option<String>)>,
}

impl Symbols {
    /// Parses `/proc/kallsyms` (`<address> <type> <name> [<module>]`): text symbols only.
    pub fn parse(text: &str) -> Self {
        let mut v: Vec<(u64, String, Option<String>)> = text
            .lines()
            .filter_map(|l| {
                let mut f = l.split_whitespace();
                let addr = u64::from_str_radix(f.next()?, 16).ok()?;
                let kind = f.next()?;
                let name = f.next()?;
                let module = f.next().map(|m| m.trim_matches(['[', ']']).to_string());
                (addr != 0 && matches!(kind, "t" | "T" | "w" | "W"))
                    .then(|| (addr, name.to_string(), module))
            })
            .collect();
        v.sort_by_key(|(a, _, _)| *a);
        Self {
            addrs: v.iter().map(|(a, _, _)| *a).collect(),
            names: v.into_iter().map(|(_, n, m)| (n, m)).collect(),
        }
    }

    /// The function `addr` lies in: the last symbol at or below it.
    pub fn lookup(&self, addr: u64) -> Option<(&str, Option<&str>)> {
        let i = self.addrs.partition_point(|a| *a <= addr).checked_sub(1)?;
        let (n, m) = &self.names[i];
        Some((n.as_str(), m.as_deref()))
    }
}

/// The driver whose code a window counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Driver {
    C,
    Rust,
}

impl Driver {
    /// Whether function `name` of `module` is this driver's own code.
    pub fn owns(self, name: &str, module: Option<&str>) -> bool {
        match self {
            Self::C => matches!(module, Some("nvme" | "nvme_core")),
            Self::Rust => {
                module == Some("rnvme") || (module.is_none() && name.starts_with("rust_helper_"))
            }
        }
    }
}

/// One counted window, as the guest benchmark announced it
/// (`insns window <n> <cell> <driver> <I/Os>`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Window {
    pub index: usize,
    pub cell: String,
    pub driver: Driver,
    pub ios: u64,
}

/// The windows announced in the guest's output `lines`.
pub fn windows(lines: &[String]) -> Vec<Window> {
    lines
        .iter()
        .filter_map(|l| {
            let rest = l.trim().strip_prefix("insns window ")?;
            let f: Vec<&str> = rest.split_whitespace().collect();
            let [index, cell, driver, ios] = f.as_slice() else {
                return None;
            };
            let driver = match *driver {
                "nvme" => Driver::C,
                "rnvme" => Driver::Rust,
                _ => return None,
            };
            Some(Window {
                index: index.parse().ok()?,
                cell: cell.to_string(),
                driver,
                ios: ios.parse().ok()?,
            })
        })
        .collect()
}

/// What one driver's code executed in one window.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Tally {
    pub insns: u64,
    /// Translation blocks run (each one a jump, call or return in the guest).
    pub blocks: u64,
    /// Instructions by function.
    pub by_function: HashMap<String, u64>,
    /// Instructions of all the kernel code the guest ran in the window (any vCPU).
    pub kernel_insns: u64,
    /// Translation blocks of all the kernel code the guest ran in the window.
    pub kernel_blocks: u64,
}

/// Adds up the dump `text` (`<address> <instructions> <executions>` per line) for the
/// code `driver` owns, and for all of the guest's kernel code.
pub fn tally(text: &str, symbols: &Symbols, driver: Driver) -> Result<Tally> {
    let mut t = Tally::default();
    for (i, line) in text.lines().enumerate() {
        let f: Vec<&str> = line.split_whitespace().collect();
        let [addr, insns, runs] = f.as_slice() else {
            bail!(
                "dump line {}: {line:?} is not `<address> <insns> <runs>`",
                i + 1
            );
        };
        let parse = |s: &str, radix| u64::from_str_radix(s, radix);
        let (Ok(addr), Ok(insns), Ok(runs)) = (parse(addr, 16), parse(insns, 10), parse(runs, 10))
        else {
            bail!("dump line {}: {line:?} has a malformed number", i + 1);
        };
        if addr >= KERNEL_HALF {
            t.kernel_insns += insns * runs;
            t.kernel_blocks += runs;
        }
        let Some((name, module)) = symbols.lookup(addr) else {
            continue;
        };
        if !driver.owns(name, module) {
            continue;
        }
        t.insns += insns * runs;
        t.blocks += runs;
        *t.by_function.entry(name.to_string()).or_default() += insns * runs;
    }
    Ok(t)
}

/// A function name for people: a Rust symbol demangled without its hash, generic
/// arguments and the module's crate name, `<T as Trait>::f` and `<T>::f` as `T::f`.
pub fn pretty(name: &str) -> String {
    let s = format!("{:#}", rustc_demangle::demangle(name)).replace("rnvme_main::", "");
    // Generic arguments: a `<` right after a name or `::` opens them.
    let mut plain = String::new();
    let mut skip = 0;
    let mut prev = ' ';
    for c in s.chars() {
        if skip > 0 {
            match c {
                '<' => skip += 1,
                '>' => skip -= 1,
                _ => {}
            }
        } else if c == '<' && (prev.is_alphanumeric() || prev == '_' || prev == ':') {
            skip = 1;
        } else {
            plain.push(c);
            prev = c;
        }
    }
    let plain = plain.replace("::::", "::");
    // Qualified paths, innermost first.
    let mut out = plain.trim_end_matches("::").to_string();
    while let Some(open) = out.rfind('<') {
        let Some(len) = out[open..].find('>') else {
            break;
        };
        let inner = &out[open + 1..open + len];
        let ty = inner.split(" as ").next().unwrap_or(inner).to_string();
        out.replace_range(open..=open + len, &ty);
    }
    out
}

/// One driver's counts per I/O in one cell.
#[derive(Debug, Clone, PartialEq)]
pub struct PerIo {
    pub insns: f64,
    pub blocks: f64,
    /// The functions with the most instructions per I/O, most first.
    pub top: Vec<(String, f64)>,
    /// Instructions per I/O of all the guest's kernel code.
    pub kernel_insns: f64,
    /// Translation blocks per I/O of all the guest's kernel code.
    pub kernel_blocks: f64,
}

impl PerIo {
    /// `t` divided by `ios`, with the `top` busiest functions.
    fn of(t: &Tally, ios: u64, top: usize) -> Self {
        let n = ios.max(1) as f64;
        let mut f: Vec<(String, f64)> = t
            .by_function
            .iter()
            .map(|(name, i)| (pretty(name), *i as f64 / n))
            .collect();
        f.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
        f.truncate(top);
        Self {
            insns: t.insns as f64 / n,
            blocks: t.blocks as f64 / n,
            top: f,
            kernel_insns: t.kernel_insns as f64 / n,
            kernel_blocks: t.kernel_blocks as f64 / n,
        }
    }
}

/// One cell's counts per I/O.
#[derive(Debug, Clone, PartialEq)]
pub struct CellResult {
    pub cell: String,
    pub c: PerIo,
    pub rust: PerIo,
}

impl CellResult {
    /// rnvme's instructions per I/O over the C driver's.
    pub fn ratio(&self) -> f64 {
        ratio(self.rust.insns, self.c.insns)
    }

    /// rnvme's translation blocks per I/O over the C driver's.
    pub fn blocks_ratio(&self) -> f64 {
        ratio(self.rust.blocks, self.c.blocks)
    }

    /// The guest kernel's instructions per I/O with rnvme over those with the C driver.
    pub fn kernel_ratio(&self) -> f64 {
        ratio(self.rust.kernel_insns, self.c.kernel_insns)
    }
}

fn ratio(a: f64, b: f64) -> f64 {
    if b > 0.0 {
        a / b
    } else {
        f64::INFINITY
    }
}

/// The results of a run: `windows` from the guest's output, dumps `<rundir>/insns.<n>`,
/// symbols from `<rundir>/kallsyms`. Each cell needs one window of each driver.
pub fn analyze(rundir: &Path, windows: &[Window]) -> Result<Vec<CellResult>> {
    let ks = rundir.join("kallsyms");
    let symbols = Symbols::parse(
        &fs::read_to_string(&ks).with_context(|| format!("cannot read {}", ks.display()))?,
    );
    let mut cells: Vec<String> = Vec::new();
    let mut counted: HashMap<(String, Driver), PerIo> = HashMap::new();
    for w in windows {
        let dump = rundir.join(format!("{DUMP_PREFIX}.{}", w.index));
        let text = fs::read_to_string(&dump).with_context(|| {
            format!("cannot read {} (did QEMU load the plugin?)", dump.display())
        })?;
        let t = tally(&text, &symbols, w.driver)?;
        if t.insns == 0 {
            bail!(
                "window {} ({} {:?}) counted no driver code",
                w.index,
                w.cell,
                w.driver
            );
        }
        if !cells.contains(&w.cell) {
            cells.push(w.cell.clone());
        }
        counted.insert((w.cell.clone(), w.driver), PerIo::of(&t, w.ios, 6));
    }
    if cells.is_empty() {
        bail!("the guest announced no counted window");
    }
    cells
        .into_iter()
        .map(|cell| {
            let mut take = |d| {
                counted
                    .remove(&(cell.clone(), d))
                    .with_context(|| format!("{cell}: no window of {d:?}"))
            };
            let c = take(Driver::C)?;
            let rust = take(Driver::Rust)?;
            Ok(CellResult { cell, c, rust })
        })
        .collect()
}

/// Prints `results`, then the largest whole-kernel ratio (`insns kernel-total worst-cell:
/// X.XXX`), last `insns ratio worst-cell: X.XX` (the largest rnvme/C ratio of the drivers'
/// own code).
pub fn report(results: &[CellResult]) {
    let mut worst: f64 = 0.0;
    let mut worst_kernel: f64 = 0.0;
    for r in results {
        println!(
            "insns {}: C {:.0} instructions in {:.0} blocks per I/O, rnvme {:.0} in {:.0}, ratio {:.2} (blocks {:.2})",
            r.cell,
            r.c.insns,
            r.c.blocks,
            r.rust.insns,
            r.rust.blocks,
            r.ratio(),
            r.blocks_ratio()
        );
        for (who, per_io) in [("C", &r.c), ("rnvme", &r.rust)] {
            let list: Vec<String> = per_io
                .top
                .iter()
                .map(|(n, i)| format!("{n} {i:.0}"))
                .collect();
            println!("  {who}: {}", list.join(", "));
        }
        println!(
            "  whole kernel: C {:.0} instructions in {:.0} blocks per I/O, rnvme {:.0} in {:.0}, ratio {:.3}",
            r.c.kernel_insns,
            r.c.kernel_blocks,
            r.rust.kernel_insns,
            r.rust.kernel_blocks,
            r.kernel_ratio()
        );
        worst = worst.max(r.ratio());
        worst_kernel = worst_kernel.max(r.kernel_ratio());
    }
    println!("insns kernel-total worst-cell: {worst_kernel:.3}");
    println!("insns ratio worst-cell: {worst:.2}");
}

#[cfg(test)]
mod tests {
    use super::*;

    const KALLSYMS: &str = "\
ffffffff81000000 T _stext
ffffffff81001000 T rust_helper_spin_unlock
ffffffff81001010 t blk_mq_start_request
0000000000000000 T hidden
ffffffffc0001000 t nvme_poll_cq\t[nvme]
ffffffffc0001400 T nvme_setup_cmd\t[nvme_core]
ffffffffc0002000 t _RNvNtNtCs6xIbsHnkqEM_10rnvme_main4nvme9block_ops7prepare\t[rnvme]
ffffffffc0003000 d some_data\t[rnvme]
";

    #[test]
    fn symbols_map_addresses_to_functions_and_modules() {
        let s = Symbols::parse(KALLSYMS);
        assert_eq!(
            s.lookup(0xffffffff81001004),
            Some(("rust_helper_spin_unlock", None))
        );
        assert_eq!(
            s.lookup(0xffffffffc0001010),
            Some(("nvme_poll_cq", Some("nvme")))
        );
        assert_eq!(
            s.lookup(0xffffffffc0001400),
            Some(("nvme_setup_cmd", Some("nvme_core")))
        );
        // Data symbols are not functions: the address stays in the function before.
        assert_eq!(
            s.lookup(0xffffffffc0003008).map(|(n, _)| n),
            Some("_RNvNtNtCs6xIbsHnkqEM_10rnvme_main4nvme9block_ops7prepare")
        );
        assert_eq!(s.lookup(0x1000), None);
    }

    #[test]
    fn drivers_own_their_modules_and_rust_helpers() {
        assert!(Driver::C.owns("nvme_poll_cq", Some("nvme")));
        assert!(Driver::C.owns("nvme_setup_cmd", Some("nvme_core")));
        assert!(!Driver::C.owns("blk_mq_start_request", None));
        assert!(!Driver::C.owns("prepare", Some("rnvme")));
        assert!(Driver::Rust.owns("prepare", Some("rnvme")));
        assert!(Driver::Rust.owns("rust_helper_spin_unlock", None));
        assert!(!Driver::Rust.owns("rust_helper_x", Some("other")));
        assert!(!Driver::Rust.owns("nvme_poll_cq", Some("nvme")));
    }

    #[test]
    fn windows_are_read_from_the_guest_output() {
        let lines: Vec<String> = [
            "PASS something",
            "insns window 0 4k-randread-qd1 nvme 16384",
            "insns window 1 4k-randread-qd1 rnvme 16384",
            "insns window 2 4k-randread-qd1 other 1",
            "insns window x 4k-randread-qd1 nvme 1",
            "insns windows: 2",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        let w = windows(&lines);
        assert_eq!(w.len(), 2);
        assert_eq!(
            w[1],
            Window {
                index: 1,
                cell: "4k-randread-qd1".into(),
                driver: Driver::Rust,
                ios: 16384
            }
        );
    }

    #[test]
    fn a_tally_counts_only_the_drivers_code() {
        let s = Symbols::parse(KALLSYMS);
        let dump = "ffffffffc0001000 10 4\nffffffffc0001404 3 2\nffffffff81001010 50 100\n\
                    ffffffffc0002000 7 1\nffffffff81001000 2 5\n";
        let c = tally(dump, &s, Driver::C).unwrap();
        assert_eq!((c.insns, c.blocks), (46, 6));
        assert_eq!(c.by_function["nvme_poll_cq"], 40);
        let r = tally(dump, &s, Driver::Rust).unwrap();
        assert_eq!((r.insns, r.blocks), (17, 6));
        // The whole kernel: every kernel line, whoever's code it is, and no user code.
        let with_user = format!("{dump}400000 9 1000\n");
        for d in [Driver::C, Driver::Rust] {
            let t = tally(&with_user, &s, d).unwrap();
            assert_eq!((t.kernel_insns, t.kernel_blocks), (5063, 112));
        }
        assert!(tally("ffffffffc0001000 10\n", &s, Driver::C).is_err());
        assert!(tally("zz 1 1\n", &s, Driver::C).is_err());
    }

    #[test]
    fn analysis_pairs_the_drivers_of_each_cell() {
        let dir = std::env::temp_dir().join(format!("rnvme-insns-test-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        fs::write(dir.join("kallsyms"), KALLSYMS).unwrap();
        fs::write(dir.join("insns.0"), "ffffffffc0001000 10 400\n").unwrap();
        fs::write(
            dir.join("insns.1"),
            "ffffffffc0002000 11 400\nffffffff81001000 1 100\n",
        )
        .unwrap();
        let w = |index, driver| Window {
            index,
            cell: "4k".into(),
            driver,
            ios: 100,
        };
        let r = analyze(&dir, &[w(0, Driver::C), w(1, Driver::Rust)]).unwrap();
        assert_eq!(r.len(), 1);
        assert_eq!((r[0].c.insns, r[0].c.blocks), (40.0, 4.0));
        assert_eq!((r[0].rust.insns, r[0].rust.blocks), (45.0, 5.0));
        assert!((r[0].ratio() - 1.125).abs() < 1e-9);
        assert!((r[0].blocks_ratio() - 1.25).abs() < 1e-9);
        assert_eq!(
            (r[0].rust.kernel_insns, r[0].rust.kernel_blocks),
            (45.0, 5.0)
        );
        assert!((r[0].kernel_ratio() - 1.125).abs() < 1e-9);
        assert_eq!(
            r[0].rust.top[0],
            ("nvme::block_ops::prepare".to_string(), 44.0)
        );
        assert_eq!(
            r[0].rust.top[1],
            ("rust_helper_spin_unlock".to_string(), 1.0)
        );
        // A cell without both drivers, or a missing dump, is an error.
        assert!(analyze(&dir, &[w(0, Driver::C)]).is_err());
        assert!(analyze(&dir, &[w(0, Driver::C), w(7, Driver::Rust)]).is_err());
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn rust_names_are_demangled_and_shortened() {
        assert_eq!(
            pretty("_RNvNtNtCs6xIbsHnkqEM_10rnvme_main4nvme9block_ops7prepare"),
            "nvme::block_ops::prepare"
        );
        assert_eq!(pretty("nvme_poll_cq"), "nvme_poll_cq");
        // The fixtures below are symbols of the tree before its restructuring (io_ops at
        // the crate root): any valid v0 name exercises the back-references.
        // <IoOps as Operations>::submit_rqs
        assert_eq!(
            pretty("_RNvXs1_NtCs6xIbsHnkqEM_10rnvme_main6io_opsNtB5_5IoOpsNtNtNtNtNtB7_4kapi5block2mq10operations10Operations10submit_rqs"),
            "io_ops::IoOps::submit_rqs"
        );
        // plug_list::queue_rqs_callback::<IoOps>
        assert_eq!(
            pretty("_RINvNtNtNtNtCs6xIbsHnkqEM_10rnvme_main4kapi5block2mq9plug_list18queue_rqs_callbackNtNtBa_6io_ops5IoOpsEBa_"),
            "kapi::block::mq::plug_list::queue_rqs_callback"
        );
        // <RequestSg<64>>::map_sg::<IoOps>
        assert_eq!(
            pretty("_RINvMs_NtNtNtNtCs6xIbsHnkqEM_10rnvme_main4kapi5block2mq2sgINtB5_9RequestSgKj40_E6map_sgNtNtBd_6io_ops5IoOpsEBd_"),
            "kapi::block::mq::sg::RequestSg::map_sg"
        );
    }

    #[test]
    fn the_plugin_argument_names_the_dump_prefix() {
        assert_eq!(
            plugin_arg(Path::new("/c/p.so"), Path::new("/c/runs/1")),
            "/c/p.so,out=/c/runs/1/insns"
        );
    }
}
