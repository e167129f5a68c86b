//! The test VM: QEMU argv (pure, unit-tested), running QEMU with the serial
//! console teed to `<rundir>/serial.log`, the timeout, the guest exit code.

use std::collections::HashSet;
use std::fs::File;
use std::io::{BufRead, BufReader, Write};
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

use crate::logscan;
use crate::paths::check_vm_safe;
use crate::proc;
use crate::qemu;

/// init.sh prints this before it runs cmd.sh; `Echo::FromInit` starts here.
pub const INIT_MARKER: &str = "rnvme-init:";
/// init.sh prints `RNVME-EXIT: <n>` after cmd.sh.
pub const EXIT_MARKER: &str = "RNVME-EXIT: ";
pub const DEFAULT_VFS: u16 = 8;

/// The most VFs QEMU's NVMe model offers (`NVME_MAX_VFS`).
pub const MAX_VFS: u16 = 127;

/// NVMe PF sizing for N VFs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NvmeParams {
    pub max_vfs: u32,
    pub vq_flexible: u32,
    pub vi_flexible: u32,
    pub max_ioqpairs: u32,
    pub msix_qsize: u32,
    /// Whether the PF tracks the memory its VFs write (the model's `x-lm-track`).
    pub lm_track: bool,
}

/// How many VFs the emulated PF offers and the flexible resources per VF.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VfSizing {
    /// VFs (0: no SR-IOV).
    pub vfs: u16,
    /// Flexible queue resources per VF (the admin queue is one of them).
    pub queues: u32,
    /// Flexible interrupt resources per VF.
    pub vectors: u32,
}

impl VfSizing {
    /// `vfs` VFs with 3 queue resources (an admin and two I/O queues) and 2 vectors each.
    pub const fn default_for(vfs: u16) -> Self {
        Self {
            vfs,
            queues: 3,
            vectors: 2,
        }
    }
}

impl NvmeParams {
    /// `s.queues` flexible queues and `s.vectors` flexible vectors per VF; the PF keeps 8
    /// I/O queue pairs and 9 vectors of its own.
    pub fn for_sizing(s: VfSizing) -> Self {
        let n = u32::from(s.vfs);
        NvmeParams {
            max_vfs: n,
            vq_flexible: s.queues * n,
            vi_flexible: s.vectors * n,
            max_ioqpairs: s.queues * n + 8,
            msix_qsize: s.vectors * n + 9,
            lm_track: true,
        }
    }

    /// QEMU's nvme_check_params rules for SR-IOV.
    pub fn check(&self) -> Result<()> {
        if self.max_vfs == 0 {
            return Ok(());
        }
        if self.vq_flexible < 2 * self.max_vfs {
            bail!("sriov_vq_flexible must be >= 2 * sriov_max_vfs");
        }
        if self.max_ioqpairs < self.vq_flexible + 2 {
            bail!("max_ioqpairs must be >= sriov_vq_flexible + 2");
        }
        if self.vi_flexible < self.max_vfs {
            bail!("sriov_vi_flexible must be >= sriov_max_vfs");
        }
        if self.msix_qsize < self.vi_flexible + 1 {
            bail!("msix_qsize must be >= sriov_vi_flexible + 1");
        }
        if self.msix_qsize > 2048 {
            bail!("msix_qsize must be <= 2048 (MSI-X table size)");
        }
        Ok(())
    }

    fn device(&self) -> String {
        let mut s = String::from("nvme,id=nvme0,bus=rp1,serial=RNVME0001,subsys=subsys0");
        if self.max_vfs > 0 {
            s.push_str(&format!(
                ",sriov_max_vfs={},sriov_vq_flexible={},sriov_vi_flexible={}",
                self.max_vfs, self.vq_flexible, self.vi_flexible
            ));
        }
        s.push_str(&format!(
            ",max_ioqpairs={},msix_qsize={}",
            self.max_ioqpairs, self.msix_qsize
        ));
        // The project's fault injection (qemu/patches/0005): inert until the guest turns
        // it on with Set Features C0h.
        s.push_str(",x-stale-cqe=on");
        // An AER capability on the PF and its VFs (qemu/patches/0006), for the guest
        // kernel's software error injection (/dev/aer_inject) in the recovery tests.
        s.push_str(",x-aer=on");
        // Memory change tracking for the VFs' dirty tracking (qemu/patches/0007) is on by
        // default; one boot of the suite runs without it.
        if !self.lm_track {
            s.push_str(",x-lm-track=off");
        }
        s
    }
}

/// Everything the argv depends on.
#[derive(Debug, Clone)]
pub struct VmSpec {
    /// The L0 QEMU binary (`cargo xtask qemu`).
    pub qemu: PathBuf,
    pub bzimage: PathBuf,
    pub init: PathBuf,
    pub rundir: PathBuf,
    pub sizing: VfSizing,
    /// Multi-threaded TCG (one host thread per vCPU). Faster for the benchmarks, but a
    /// halted vCPU occasionally stops getting timer interrupts for good and the run hangs
    /// (see `qemu_args`), so the tests and the demo use single-threaded TCG.
    pub mttcg: bool,
    /// A TCG plugin to load: the value of `-plugin` (`<library>,<arg>=<value>,...`).
    pub plugin: Option<String>,
    /// Whether the emulated PF tracks the memory its VFs write (`x-lm-track`).
    pub lm_track: bool,
}

/// The kernel command line. `nohz=off` keeps the periodic tick on idle vCPUs (see
/// `qemu_args` for the hang it was meant to prevent). `no_timer_check` skips the boot-time
/// check that the timer interrupt arrives through the (interrupt-remapped) IO-APIC within a
/// few ticks: under TCG on a loaded host it can miss them and the kernel panics ("timer
/// doesn't work through Interrupt-remapped IO-APIC"), as seen once in a test run.
pub fn cmdline(init: &str, rundir: &str) -> String {
    format!(
        "console=ttyS0 root=/dev/root rootfstype=9p \
         rootflags=trans=virtio,version=9p2000.L,msize=512000 ro init={init} \
         intel_iommu=on panic=-1 kunit.enable=1 nohz=off no_timer_check rnvme_vm.run={rundir}"
    )
}

/// QEMU arguments (without the program name).
pub fn qemu_args(spec: &VmSpec) -> Result<Vec<String>> {
    let bz = check_vm_safe(&spec.bzimage)?;
    let init = check_vm_safe(&spec.init)?;
    let run = check_vm_safe(&spec.rundir)?;
    let nvme = NvmeParams {
        lm_track: spec.lm_track,
        ..NvmeParams::for_sizing(spec.sizing)
    };
    nvme.check()?;
    // discard=unmap: a deallocated range becomes a hole in the sparse image and reads back
    // as zeros, so the driver's Dataset Management can be verified.
    let ns = |n: u32| format!("file={run}/ns{n}.img,if=none,id=ns{n},format=raw,discard=unmap");
    // Single-threaded TCG unless asked: under multi-threaded TCG a halted vCPU occasionally
    // stopped getting its LAPIC timer interrupts for good (RCU stall, "timer wakeup didn't
    // happen", even with the periodic tick of nohz=off), hanging a run about once in ten.
    let accel = if spec.mttcg {
        "tcg,thread=multi"
    } else {
        "tcg,thread=single"
    };
    #[rustfmt::skip]
    let mut a: Vec<String> = [
        "-accel", accel,
        "-M", "q35,kernel-irqchip=split",
        "-cpu", "max",
        "-m", "2G",
        "-smp", "2",
        "-nodefaults",
        "-display", "none",
        "-no-reboot",
        "-serial", "stdio",
        "-monitor", "none",
        "-device", "intel-iommu,intremap=on,caching-mode=on",
        "-kernel", &bz,
        "-append", &cmdline(&init, &run),
        "-fsdev", "local,id=root,path=/,security_model=none,readonly=on,multidevs=remap",
        "-device", "virtio-9p-pci,fsdev=root,mount_tag=/dev/root",
        "-fsdev", &format!("local,id=run,path={run},security_model=none,multidevs=remap"),
        "-device", "virtio-9p-pci,fsdev=run,mount_tag=rnvmerun",
        // 16 MiB of window: the BARs of 127 VFs do not fit the default one. A 5 GT/s link:
        // after a secondary bus reset (AER recovery of a fatal error) Linux then waits for
        // the functions' configuration space, not for the port's Data Link Layer Link
        // Active bit, which it waits for on faster links and which QEMU never sets here
        // (q35's ACPI PCI hotplug takes the port's hotplug handling, where QEMU sets it).
        "-device", "pcie-root-port,id=rp1,chassis=1,slot=1,mem-reserve=16M,x-speed=5",
        "-device", "nvme-subsys,id=subsys0,nqn=rnvme-subsys0",
        "-device", &nvme.device(),
        "-drive", &ns(1),
        "-device", "nvme-ns,bus=nvme0,drive=ns1,nsid=1,shared=false",
        "-drive", &ns(2),
        "-device", "nvme-ns,bus=nvme0,drive=ns2,nsid=2,shared=true,detached=true",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    // The self-built QEMU has no firmware of its own: Debian's SeaBIOS and option ROMs.
    a.extend(qemu::firmware_args());
    if let Some(plugin) = &spec.plugin {
        a.extend(["-plugin".to_string(), plugin.clone()]);
    }
    Ok(a)
}

/// What to show on the terminal while the guest runs (everything always
/// goes to serial.log).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Echo {
    /// Every console line.
    All,
    /// Console lines from init.sh's first line on (hides the kernel boot).
    FromInit,
    /// Only the runner's `PASS `/`FAIL `/`SKIP `/`# ` lines.
    Results,
}

pub fn is_result_line(l: &str) -> bool {
    ["PASS ", "FAIL ", "SKIP ", "# "]
        .iter()
        .any(|p| l.starts_with(p))
}

/// How a VM run ended.
#[derive(Debug)]
pub struct VmOutcome {
    /// The guest command's exit code (exit-code file, else console marker).
    pub guest_exit: Option<i32>,
    pub timed_out: bool,
    pub qemu_status: Option<ExitStatus>,
    pub elapsed: Duration,
    pub serial_log: PathBuf,
    pub lines: Vec<String>,
    pub problems: Vec<logscan::Finding>,
    /// Result lines already shown on the terminal.
    pub shown: HashSet<String>,
}

impl VmOutcome {
    /// Problems with the run itself (not the guest command's exit code).
    pub fn run_error(&self, timeout: Duration) -> Option<String> {
        if self.timed_out {
            Some(format!(
                "timed out after {} s (QEMU killed)",
                timeout.as_secs()
            ))
        } else if self.guest_exit.is_none() {
            let qemu = match self.qemu_status {
                Some(st) if !st.success() => {
                    format!("; QEMU ended with {}", proc::describe_status(st))
                }
                _ => String::new(),
            };
            Some(format!(
                "guest died: no exit code{qemu} (see {})",
                self.serial_log.display()
            ))
        } else {
            None
        }
    }

    pub fn print_tail(&self, n: usize) {
        let from = self.lines.len().saturating_sub(n);
        eprintln!(
            "---- last {} lines of {} ----",
            self.lines.len() - from,
            self.serial_log.display()
        );
        for l in &self.lines[from..] {
            eprintln!("  {l}");
        }
        eprintln!("----");
    }

    pub fn print_problems(&self) {
        eprintln!(
            "[vm] kernel log problems ({} line(s)) in {}:",
            self.problems.len(),
            self.serial_log.display()
        );
        eprint!("{}", logscan::render(&self.lines, &self.problems, 4, 8));
    }
}

/// Last `RNVME-EXIT: <n>` on the console.
pub fn exit_from_marker<S: AsRef<str>>(lines: &[S]) -> Option<i32> {
    lines.iter().rev().find_map(|l| {
        let l = l.as_ref();
        let pos = l.find(EXIT_MARKER)?;
        l[pos + EXIT_MARKER.len()..]
            .split_whitespace()
            .next()?
            .parse()
            .ok()
    })
}

/// Kills QEMU unless it already exited (timeouts, errors, panics).
struct KillOnDrop(Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        if let Ok(None) = self.0.try_wait() {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

/// Boot the VM and wait for it (at most `timeout`).
pub fn run(spec: &VmSpec, echo: Echo, timeout: Duration, verbose: bool) -> Result<VmOutcome> {
    let args = qemu_args(spec)?;
    let serial_log = spec.rundir.join("serial.log");
    let qemu_log = spec.rundir.join("qemu.log");
    let program = spec.qemu.display().to_string();
    if verbose {
        println!("[vm] {program} {}", args.join(" "));
    }
    let argv_file = spec.rundir.join("qemu-argv.txt");
    std::fs::write(&argv_file, format!("{program} {}\n", args.join(" ")))
        .with_context(|| format!("cannot write {}", argv_file.display()))?;

    let start = Instant::now();
    let child = Command::new(&spec.qemu)
        .args(&args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| format!("cannot start {program}"))?;
    let mut guard = KillOnDrop(child);
    let stdout = guard.0.stdout.take().context("no QEMU stdout")?;
    let stderr = guard.0.stderr.take().context("no QEMU stderr")?;

    let shown = Arc::new(Mutex::new(HashSet::new()));
    let log = File::create(&serial_log)
        .with_context(|| format!("cannot create {}", serial_log.display()))?;
    let shown_w = Arc::clone(&shown);
    let out_thread = thread::spawn(move || tee_console(stdout, log, echo, &shown_w));
    let qlog =
        File::create(&qemu_log).with_context(|| format!("cannot create {}", qemu_log.display()))?;
    let err_thread = thread::spawn(move || tee_stderr(stderr, qlog));

    let deadline = start + timeout;
    let mut timed_out = false;
    let qemu_status = loop {
        if let Some(st) = guard.0.try_wait().context("waiting for QEMU")? {
            break Some(st);
        }
        if Instant::now() >= deadline {
            timed_out = true;
            let _ = guard.0.kill();
            break guard.0.wait().ok();
        }
        thread::sleep(Duration::from_millis(100));
    };
    let elapsed = start.elapsed();
    let lines = out_thread
        .join()
        .map_err(|_| anyhow::anyhow!("serial reader thread panicked"))?;
    let _ = err_thread.join();

    let guest_exit = match proc::read_optional(&spec.rundir.join("exit-code"))? {
        Some(t) => t.trim().parse().ok(),
        None => None,
    }
    .or_else(|| exit_from_marker(&lines));
    let problems = logscan::scan(&lines);
    let shown = shown.lock().map(|s| s.clone()).unwrap_or_default();
    Ok(VmOutcome {
        guest_exit,
        timed_out,
        qemu_status,
        elapsed,
        serial_log,
        lines,
        problems,
        shown,
    })
}

/// Copy the console to the log and (per `echo`) to the terminal; returns all lines.
fn tee_console(
    stdout: impl std::io::Read,
    mut log: File,
    echo: Echo,
    shown: &Mutex<HashSet<String>>,
) -> Vec<String> {
    let mut r = BufReader::new(stdout);
    let mut buf = Vec::new();
    let mut lines = Vec::new();
    let mut after_init = false;
    let term = std::io::stdout();
    loop {
        buf.clear();
        match r.read_until(b'\n', &mut buf) {
            Ok(0) | Err(_) => break,
            Ok(_) => {}
        }
        let text = String::from_utf8_lossy(&buf);
        let line = text.trim_end_matches(['\n', '\r']).replace('\r', "");
        let _ = writeln!(log, "{line}");
        if line.contains(INIT_MARKER) {
            after_init = true;
        }
        let show = match echo {
            Echo::All => true,
            Echo::FromInit => after_init,
            Echo::Results => is_result_line(&line),
        };
        if show {
            let mut t = term.lock();
            let _ = writeln!(t, "{line}");
            if is_result_line(&line) {
                if let Ok(mut s) = shown.lock() {
                    s.insert(line.clone());
                }
            }
        }
        lines.push(line);
    }
    let _ = log.flush();
    lines
}

fn tee_stderr(stderr: impl std::io::Read, mut log: File) {
    for line in BufReader::new(stderr).lines() {
        let Ok(line) = line else { break };
        let _ = writeln!(log, "{line}");
        eprintln!("[qemu] {line}");
    }
}

/// Check the QEMU binary exists (nicer error than a spawn failure).
pub fn check_qemu(binary: &std::path::Path) -> Result<()> {
    if !binary.is_file() {
        bail!(
            "{} does not exist (run `cargo xtask qemu`)",
            binary.display()
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(vfs: u16) -> VmSpec {
        VmSpec {
            qemu: "/c/qemu/10.0.2+ds-k/bin/qemu-system-x86_64".into(),
            bzimage: "/c/kernel/release-k/build/arch/x86/boot/bzImage".into(),
            init: "/work/main/tests/vm/init.sh".into(),
            rundir: "/c/runs/1-2".into(),
            sizing: VfSizing::default_for(vfs),
            mttcg: false,
            plugin: None,
            lm_track: true,
        }
    }

    fn value_of<'a>(args: &'a [String], flag: &str, containing: &str) -> &'a str {
        args.windows(2)
            .find(|w| w[0] == flag && w[1].contains(containing))
            .map(|w| w[1].as_str())
            .unwrap_or_else(|| panic!("no {flag} containing {containing}"))
    }

    #[test]
    fn nvme_rules_hold_for_all_vf_counts() {
        for n in 0..=127u16 {
            let p = NvmeParams::for_sizing(VfSizing::default_for(n));
            p.check().unwrap();
            if n > 0 {
                assert!(p.vq_flexible >= 2 * p.max_vfs);
                assert!(p.max_ioqpairs >= p.vq_flexible + 2);
                assert!(p.vi_flexible >= p.max_vfs);
                assert!(p.msix_qsize > p.vi_flexible);
            }
        }
        let bad = NvmeParams {
            vq_flexible: 3,
            ..NvmeParams::for_sizing(VfSizing::default_for(2))
        };
        assert!(bad.check().is_err());
        let bad = NvmeParams {
            max_ioqpairs: 7,
            ..NvmeParams::for_sizing(VfSizing::default_for(2))
        };
        assert!(bad.check().is_err());
        let bad = NvmeParams {
            msix_qsize: 4,
            ..NvmeParams::for_sizing(VfSizing::default_for(2))
        };
        assert!(bad.check().is_err());
    }

    #[test]
    fn argv_has_the_expected_devices() {
        let a = qemu_args(&spec(8)).unwrap();
        assert_eq!(
            &a[..4],
            [
                "-accel",
                "tcg,thread=single",
                "-M",
                "q35,kernel-irqchip=split"
            ]
        );
        let multi = qemu_args(&VmSpec {
            mttcg: true,
            ..spec(8)
        })
        .unwrap();
        assert_eq!(multi[1], "tcg,thread=multi");
        assert!(!a.iter().any(|x| x == "-plugin"));
        let counted = qemu_args(&VmSpec {
            plugin: Some("/c/p.so,out=/c/runs/1-2/insns".into()),
            ..spec(8)
        })
        .unwrap();
        assert_eq!(
            value_of(&counted, "-plugin", "p.so"),
            "/c/p.so,out=/c/runs/1-2/insns"
        );
        assert!(!value_of(&a, "-device", "nvme,id=nvme0").contains("x-lm-track"));
        let untracked = qemu_args(&VmSpec {
            lm_track: false,
            ..spec(8)
        })
        .unwrap();
        assert!(value_of(&untracked, "-device", "nvme,id=nvme0").ends_with(",x-lm-track=off"));
        assert!(a.iter().any(|x| x == "-no-reboot"));
        assert!(a.iter().any(|x| x == "-nodefaults"));
        // Debian's firmware for the self-built L0 QEMU.
        assert_eq!(value_of(&a, "-L", "/usr/share/qemu"), "/usr/share/qemu");
        assert_eq!(value_of(&a, "-L", "seabios"), "/usr/share/seabios");
        assert_eq!(
            value_of(&a, "-device", "nvme,id=nvme0"),
            "nvme,id=nvme0,bus=rp1,serial=RNVME0001,subsys=subsys0,sriov_max_vfs=8,\
             sriov_vq_flexible=24,sriov_vi_flexible=16,max_ioqpairs=32,msix_qsize=25,\
             x-stale-cqe=on,x-aer=on"
        );
        assert_eq!(
            value_of(&a, "-fsdev", "id=run"),
            "local,id=run,path=/c/runs/1-2,security_model=none,multidevs=remap"
        );
        assert_eq!(
            value_of(&a, "-drive", "ns2"),
            "file=/c/runs/1-2/ns2.img,if=none,id=ns2,format=raw,discard=unmap"
        );
        assert!(value_of(&a, "-device", "drive=ns2").contains("shared=true,detached=true"));
        assert!(value_of(&a, "-device", "drive=ns1").contains("shared=false"));
        let append = value_of(&a, "-append", "console=");
        assert!(append.contains(" init=/work/main/tests/vm/init.sh "));
        assert!(append.ends_with(" rnvme_vm.run=/c/runs/1-2"));
        assert!(append.contains("panic=-1"));
        assert!(append.contains("intel_iommu=on"));
        assert_eq!(
            value_of(&a, "-kernel", "bzImage"),
            "/c/kernel/release-k/build/arch/x86/boot/bzImage"
        );
    }

    #[test]
    fn argv_without_vfs_has_no_sriov() {
        let a = qemu_args(&spec(0)).unwrap();
        let d = value_of(&a, "-device", "nvme,id=nvme0");
        assert!(!d.contains("sriov"));
        assert!(d.ends_with("max_ioqpairs=8,msix_qsize=9,x-stale-cqe=on,x-aer=on"));
    }

    #[test]
    fn argv_rejects_unsafe_paths() {
        let mut s = spec(2);
        s.rundir = "/c/runs/a,b".into();
        assert!(qemu_args(&s).is_err());
    }

    #[test]
    fn exit_marker() {
        let lines = [
            "[ 1.0] Run /work/main/tests/vm/init.sh as init process",
            "RNVME-EXIT: 3",
            "[ 2.0] sysrq: Resetting",
        ];
        assert_eq!(exit_from_marker(&lines), Some(3));
        assert_eq!(exit_from_marker(&["noise RNVME-EXIT: 0"]), Some(0));
        assert_eq!(exit_from_marker(&["nothing"]), None);
        assert_eq!(exit_from_marker(&["RNVME-EXIT: x"]), None);
    }
}
