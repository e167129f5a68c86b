// SPDX-License-Identifier: GPL-2.0

//! QEMU assignment of a VF in vfio mode. QEMU runs inside the test VM (the host's
//! `qemu-system-x86_64`, seen over the 9p root) with `-device vfio-pci,host=<VF>` and a QMP
//! socket (the `qapi` crate):
//!
//! * the device is realized (`query-pci` shows the VF's IDs, class and BAR 0) and QEMU holds
//!   the VFIO device: the VF cannot change mode or be disabled under it;
//! * removing the VF (through its PF: Linux gives a VF no `remove` attribute) or unbinding it
//!   while QEMU holds it waits for QEMU: the VFIO core relays a device request, which QEMU
//!   cannot honour for a device on `pcie.0` (no hotplug there) with a paused guest, and the
//!   removal completes once QEMU quits or is killed;
//! * opt-in (group `slow`): a nested guest boots the test kernel with the VF assigned, and
//!   the stock C nvme driver reads and writes the namespace (nested TCG).

use std::{
    fs,
    io::{BufRead, BufReader},
    os::unix::net::UnixStream,
    path::{Path, PathBuf},
    process::{Child, Command, ExitStatus, Stdio},
    sync::mpsc,
    thread,
    time::{Duration, Instant},
};

use qapi::{qmp, Qmp, Stream};

use crate::fixture::{check_mode, read_mode, set_mode, with_loaded, with_vfs};
use crate::{
    disk::{pattern, Direct},
    harness::{ensure, wait_until, Env, Report, Test, SLOW},
    kmsg,
    module::RNVME,
    pci::Function,
    sriov::{set_numvfs, vf_disk, vfs, write_attr},
    tests::vfio::{check_held, wait_vf_disk},
};

/// The vfio-mode driver.
const RNVME_VFIO: &str = "rnvme-vfio";

/// How long VF disks may take to appear or go, and a removal to finish (TCG).
const SETTLE: Duration = Duration::from_secs(30);

/// The QEMU binary (the host's, over the 9p root).
const QEMU: &str = "qemu-system-x86_64";

/// The qdev ID of the assigned VF in QEMU.
const VF_ID: &str = "vf0";

/// How long QEMU may take to start and realize the device (its libraries come over 9p).
const STARTUP: Duration = Duration::from_secs(120);

/// How long one QMP command may take.
const QMP_TIMEOUT: Duration = Duration::from_secs(60);

/// How long a removal must stay blocked, after QEMU got the device request, while QEMU
/// still holds the VF.
const HOLD: Duration = Duration::from_secs(3);

/// How long the nested guest may take to boot, do its I/O and power off (nested TCG).
const NESTED_TIMEOUT: Duration = Duration::from_secs(480);

/// Where the nested guest's init script and data live (tmpfs in the test VM, exported to
/// the nested guest with the rest of `/`).
const NESTED_DIR: &str = "/tmp/rnvme-l2";

/// The static busybox the nested guest runs as init (package `busybox-static`).
pub(crate) const BUSYBOX: &str = "/bin/busybox";

/// Size of each data chunk the nested guest reads or writes (several pages: PRP lists).
const CHUNK: usize = 128 * 1024;

/// Where the nested guest writes (a multiple of [`CHUNK`]).
const L2_OFFSET: u64 = 4 << 20;

/// The QEMU assignment tests.
pub fn tests() -> Vec<Test> {
    vec![
        Test {
            name: "vfio/qemu-assign",
            groups: &["vfio", "vfio-qemu"],
            run: assign,
        },
        Test {
            name: "vfio/remove-while-qemu-holds",
            groups: &["vfio", "vfio-qemu"],
            run: remove_while_held,
        },
        Test {
            name: "vfio/unbind-while-qemu-holds",
            groups: &["vfio", "vfio-qemu"],
            run: unbind_while_held,
        },
        Test {
            name: "vfio/qemu-nested-guest-io",
            groups: &[SLOW, "vfio-qemu"],
            run: nested_guest_io,
        },
    ]
}

// --- QEMU in the test VM --------------------------------------------------------------

/// A child process, killed when dropped.
pub(crate) struct Proc(pub(crate) Child);

impl Drop for Proc {
    fn drop(&mut self) {
        if let Ok(None) = self.0.try_wait() {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

/// Waits at most `timeout` for `child` to exit.
pub(crate) fn wait_exit(child: &mut Child, timeout: Duration) -> Result<ExitStatus, String> {
    let start = Instant::now();
    loop {
        if let Some(status) = child.try_wait().map_err(|e| format!("wait: {e}"))? {
            return Ok(status);
        }
        if start.elapsed() >= timeout {
            return Err(format!("still running after {} s", timeout.as_secs()));
        }
        thread::sleep(Duration::from_millis(50));
    }
}

/// The last 2000 characters of a log file (what a failure report can show).
pub(crate) fn log_tail(path: &Path) -> String {
    let text = fs::read_to_string(path).unwrap_or_default();
    let text = text.trim();
    let cut = text.char_indices().rev().nth(1999).map_or(0, |(i, _)| i);
    text[cut..].to_string()
}

/// QEMU with a QMP connection; killed when dropped.
pub(crate) struct Vmm {
    /// Dropped (killed) after the QMP connection.
    pub(crate) qmp: Qmp<Stream<BufReader<UnixStream>, UnixStream>>,
    pub(crate) proc: Proc,
    sock: PathBuf,
    /// QEMU's stderr, in the run directory.
    log: PathBuf,
}

impl Vmm {
    /// Starts QEMU (TCG, q35, nothing but what `args` add) with a QMP socket; returns once
    /// QMP is up, which is after the machine and its devices were created.
    pub(crate) fn start(env: &Env, name: &str, args: &[String]) -> Result<Self, String> {
        Self::spawn(env, name, args, Stdio::null(), Stdio::null())
    }

    /// Like [`Self::start`], with QEMU's standard input and output as given (a guest serial
    /// port on `stdio` talks through them).
    pub(crate) fn spawn(
        env: &Env,
        name: &str,
        args: &[String],
        stdin: Stdio,
        stdout: Stdio,
    ) -> Result<Self, String> {
        Self::launch(env, name, args, stdin, stdout, None)
    }

    /// Like [`Self::start`], with QEMU and all its threads restricted to the CPUs `cpus`
    /// (a `taskset -c` list) of the test VM.
    pub(crate) fn start_pinned(
        env: &Env,
        name: &str,
        args: &[String],
        cpus: &str,
    ) -> Result<Self, String> {
        Self::launch(env, name, args, Stdio::null(), Stdio::null(), Some(cpus))
    }

    fn launch(
        env: &Env,
        name: &str,
        args: &[String],
        stdin: Stdio,
        stdout: Stdio,
        cpus: Option<&str>,
    ) -> Result<Self, String> {
        let sock = PathBuf::from(format!("/tmp/rnvme-{name}.qmp"));
        let _ = fs::remove_file(&sock);
        let log = env.out.join(format!("qemu-{name}.log"));
        let log_file =
            fs::File::create(&log).map_err(|e| format!("create {}: {e}", log.display()))?;
        // taskset execs QEMU in its own process: the child is QEMU either way.
        let mut cmd = match cpus {
            Some(cpus) => {
                let mut c = Command::new("taskset");
                c.args(["-c", cpus, QEMU]);
                c
            }
            None => Command::new(QEMU),
        };
        cmd.args([
            "-accel",
            "tcg",
            "-M",
            "q35",
            "-nodefaults",
            "-no-user-config",
        ])
        .args(["-display", "none", "-qmp"])
        .arg(format!("unix:{},server=on,wait=off", sock.display()))
        .args(args)
        .stdin(stdin)
        .stdout(stdout)
        .stderr(log_file);
        let mut proc = Proc(cmd.spawn().map_err(|e| format!("{QEMU}: {e}"))?);
        let start = Instant::now();
        let stream = loop {
            if let Some(status) = proc.0.try_wait().map_err(|e| format!("wait: {e}"))? {
                return Err(format!(
                    "{QEMU} exited ({status}) before QMP was up: {}",
                    log_tail(&log)
                ));
            }
            match UnixStream::connect(&sock) {
                Ok(s) => break s,
                Err(e) if start.elapsed() >= STARTUP => {
                    return Err(format!("QMP socket {}: {e}", sock.display()))
                }
                Err(_) => thread::sleep(Duration::from_millis(50)),
            }
        };
        let timeout = |s: &UnixStream, t| {
            s.set_read_timeout(Some(t))
                .map_err(|e| format!("QMP socket timeout: {e}"))
        };
        timeout(&stream, STARTUP)?;
        let reader = stream.try_clone().map_err(|e| format!("QMP socket: {e}"))?;
        let mut reader = BufReader::new(reader);
        // QEMU greets once the machine and its devices are created. When creating them fails,
        // QEMU exits and the connection ends without a greeting (on which qapi would panic).
        let greeted = reader.fill_buf().map(|b| !b.is_empty());
        if !matches!(greeted, Ok(true)) {
            let status = wait_exit(&mut proc.0, Duration::from_secs(10));
            return Err(format!(
                "no QMP greeting ({greeted:?}); QEMU: {status:?}: {}",
                log_tail(&log)
            ));
        }
        timeout(&stream, QMP_TIMEOUT)?;
        let mut qmp = Qmp::new(Stream::new(reader, stream));
        qmp.handshake().map_err(|e| format!("QMP handshake: {e}"))?;
        Ok(Self {
            qmp,
            proc,
            sock,
            log,
        })
    }

    /// Starts QEMU paused (`-S`: no guest code runs) with `vf` assigned.
    fn paused(env: &Env, name: &str, vf: &Function) -> Result<Self, String> {
        let args = ["-S", "-m", "128M", "-device", &vfio_device(vf)];
        Self::start(env, name, &args.map(String::from))
    }

    /// The device with qdev ID `id` as `query-pci` shows it.
    pub(crate) fn pci_device(&mut self, id: &str) -> Result<qmp::PciDeviceInfo, String> {
        self.qmp
            .execute(&qmp::query_pci {})
            .map_err(|e| format!("query-pci: {e}"))?
            .into_iter()
            .flat_map(|bus| bus.devices)
            .find(|d| d.qdev_id == id)
            .ok_or_else(|| format!("query-pci shows no device {id}"))
    }

    /// Whether QEMU still runs.
    fn running(&mut self) -> bool {
        matches!(self.proc.0.try_wait(), Ok(None))
    }

    /// QEMU's stderr so far.
    fn stderr(&self) -> String {
        fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Quits QEMU through QMP and waits for it to exit successfully.
    pub(crate) fn quit(mut self) -> Result<(), String> {
        // QEMU may close the connection before its reply: the exit status decides.
        let _ = self.qmp.execute(&qmp::quit {});
        let status = wait_exit(&mut self.proc.0, STARTUP).map_err(|e| format!("QEMU: {e}"))?;
        ensure(status.success(), || {
            format!("QEMU exited with {status}: {}", log_tail(&self.log))
        })
    }

    /// Kills QEMU (SIGKILL) and waits for it.
    fn kill(mut self) -> Result<(), String> {
        self.proc.0.kill().map_err(|e| format!("kill QEMU: {e}"))?;
        wait_exit(&mut self.proc.0, STARTUP)
            .map(drop)
            .map_err(|e| format!("QEMU after SIGKILL: {e}"))
    }
}

impl Drop for Vmm {
    fn drop(&mut self) {
        let _ = fs::remove_file(&self.sock);
    }
}

/// The `-device` argument that assigns `vf`.
pub(crate) fn vfio_device(vf: &Function) -> String {
    format!("vfio-pci,host={},id={VF_ID}", vf.bdf)
}

/// The size of BAR `n` of `f` as sysfs `resource` shows it.
fn bar_size(f: &Function, n: usize) -> Result<u64, String> {
    let path = f.dir().join("resource");
    let text = fs::read_to_string(&path).map_err(|e| format!("{}: {e}", path.display()))?;
    let line = text.lines().nth(n).unwrap_or_default();
    let nums: Vec<u64> = line
        .split_whitespace()
        .filter_map(|x| u64::from_str_radix(x.trim_start_matches("0x"), 16).ok())
        .collect();
    match nums[..] {
        [start, end, _] if end > start => Ok(end - start + 1),
        _ => Err(format!("{}: BAR {n} is {line:?}", path.display())),
    }
}

/// Checks QEMU realized `vf` as [`VF_ID`]: the VF's IDs, an NVMe class, its BAR 0 and its
/// host address.
pub(crate) fn check_realized(vmm: &mut Vmm, vf: &Function) -> Result<(), String> {
    let d = vmm.pci_device(VF_ID)?;
    let vendor = i64::from(vf.hex_attr("vendor")?);
    let device = i64::from(vf.hex_attr("device")?);
    ensure(
        (d.id.vendor, d.id.device) == (0x1b36, 0x0010) && (vendor, device) == (0x1b36, 0x0010),
        || {
            format!(
                "QEMU shows {:04x}:{:04x}, sysfs {vendor:04x}:{device:04x}; want 1b36:0010",
                d.id.vendor, d.id.device
            )
        },
    )?;
    ensure(d.class_info.class == 0x0108, || {
        format!("QEMU shows class {:#06x}, want 0x0108", d.class_info.class)
    })?;
    let size = bar_size(vf, 0)?;
    let bar0 = d.regions.iter().find(|r| r.bar == 0);
    ensure(
        bar0.is_some_and(|r| {
            r.type_ == "memory" && r.mem_type_64 == Some(true) && u64::try_from(r.size) == Ok(size)
        }),
        || format!("QEMU shows BAR 0 as {bar0:?}; the VF's BAR 0 is 64-bit memory of {size} bytes"),
    )?;
    let host = vmm
        .qmp
        .execute(&qmp::qom_get {
            path: format!("/machine/peripheral/{VF_ID}"),
            property: "host".into(),
        })
        .map_err(|e| format!("qom-get host: {e}"))?;
    ensure(host.as_str() == Some(vf.bdf.as_str()), || {
        format!("QEMU's {VF_ID} has host {host}, want {}", vf.bdf)
    })
}

/// The VFIO group device of `vf`.
fn group_dev(vf: &Function) -> Result<PathBuf, String> {
    let group =
        fs::read_link(vf.dir().join("iommu_group")).map_err(|e| format!("iommu_group: {e}"))?;
    Ok(PathBuf::from("/dev/vfio").join(group.file_name().unwrap_or_default()))
}

/// Kernel problem reports among log lines.
pub(crate) fn problems(lines: &[String]) -> Vec<&String> {
    const MARKERS: &[&str] = &[
        "WARNING:",
        "Oops",
        "BUG:",
        "Kernel panic",
        "Call Trace:",
        "general protection",
        "blocked for more than",
    ];
    lines
        .iter()
        .filter(|l| MARKERS.iter().any(|m| l.contains(m)))
        .collect()
}

/// Fails when the kernel logged a problem since `mark`.
pub(crate) fn no_problems_since(mark: u64) -> Result<(), String> {
    let log = kmsg::since(mark)?;
    let bad = problems(&log);
    ensure(bad.is_empty(), || format!("the kernel reported {bad:?}"))
}

// --- A sysfs write that may block -----------------------------------------------------

/// A sysfs write running in a thread of its own (it may block until QEMU lets go).
struct Pending {
    what: String,
    done: mpsc::Receiver<Result<(), i32>>,
}

impl Pending {
    /// Starts writing `value` to `path`.
    fn write(path: PathBuf, value: String) -> Self {
        let what = format!("echo {value} > {}", path.display());
        let (tx, done) = mpsc::channel();
        // Not scoped: a write that never returns (a driver bug) must not hang the runner.
        thread::spawn(move || {
            let _ = tx.send(write_attr(&path, &value));
        });
        Self { what, done }
    }

    /// The write's result, if it returned within `timeout`.
    fn result(&self, timeout: Duration) -> Option<Result<(), i32>> {
        self.done.recv_timeout(timeout).ok()
    }
}

/// With QEMU holding `vf` and `pending` removing or unbinding it: checks the VFIO core
/// relayed a device request to QEMU (logged since `mark`), QEMU got it and could not unplug
/// the device, and the write stays blocked while QEMU keeps the device.
fn blocked_while_held(
    vmm: &mut Vmm,
    vf: &Function,
    pending: &Pending,
    mark: u64,
) -> Result<(), String> {
    let relayed = |l: &String| l.contains(&vf.bdf) && l.contains("Relaying device request");
    ensure(
        wait_until(SETTLE, || {
            kmsg::since(mark).is_ok_and(|log| log.iter().any(relayed))
        }),
        || {
            format!(
                "{}: no device request relayed to QEMU; log: {:?}",
                pending.what,
                kmsg::since(mark).unwrap_or_default()
            )
        },
    )?;
    // QEMU answers a device request with an unplug, which pcie.0 does not support: it warns
    // ("vfio <VF>: Bus 'pcie.0' does not support hotplugging") and keeps the device.
    let tried = format!("vfio {}", vf.bdf);
    ensure(
        wait_until(SETTLE, || {
            let err = vmm.stderr();
            err.contains(&tried) && err.contains("hotplug")
        }),
        || {
            format!(
                "QEMU did not act on the device request; its stderr: {:?}",
                vmm.stderr()
            )
        },
    )?;
    if let Some(r) = pending.result(HOLD) {
        return Err(format!(
            "{} returned ({r:?}) while QEMU still held the VFIO device",
            pending.what
        ));
    }
    ensure(vmm.running(), || {
        format!("QEMU exited: {}", log_tail(&vmm.log))
    })?;
    vmm.pci_device(VF_ID)?;
    ensure(vf.dir().exists(), || {
        format!("{} is gone while QEMU holds it", vf.bdf)
    })
}

/// How QEMU goes away.
enum Exit {
    /// QMP `quit`.
    Quit,
    /// SIGKILL: the kernel closes QEMU's VFIO files.
    Kill,
}

/// Ends QEMU and waits for `pending` to complete; returns how long it took after QEMU exited.
fn end_and_complete(vmm: Vmm, exit: Exit, pending: &Pending) -> Result<Duration, String> {
    match exit {
        Exit::Quit => vmm.quit()?,
        Exit::Kill => vmm.kill()?,
    }
    let exited = Instant::now();
    match pending.result(SETTLE) {
        None => Err(format!(
            "{} still blocked {} s after QEMU exited",
            pending.what,
            SETTLE.as_secs()
        )),
        Some(Err(e)) => Err(format!("{}: errno {e}", pending.what)),
        Some(Ok(())) => Ok(exited.elapsed()),
    }
}

// --- The tests ------------------------------------------------------------------------

fn assign(env: &Env) -> Result<Vec<Report>, String> {
    with_vfs(env, 1, false, |pf, vfs| {
        let vf = &vfs[0];
        set_mode(vf, "vfio")?;
        check_mode(vf, "vfio")?;
        let mut vmm = Vmm::paused(env, "assign", vf)?;
        check_realized(&mut vmm, vf)?;

        // QEMU holds the VFIO group and device: nobody else gets the group, and the VF can
        // neither change mode nor be disabled, nor the module go.
        let group = group_dev(vf)?;
        let got = fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(&group)
            .map(drop)
            .map_err(|e| e.raw_os_error());
        ensure(got == Err(Some(libc::EBUSY)), || {
            format!(
                "opening {} while QEMU holds it: {got:?}, want EBUSY",
                group.display()
            )
        })?;
        check_held(pf, vf, "while QEMU holds the VF")?;
        // QEMU still has the device after all that.
        vmm.pci_device(VF_ID)?;

        vmm.quit()?;
        set_mode(vf, "nvme")?;
        check_mode(vf, "nvme")
    })
}

/// Removes the PF (and with it the VF) while QEMU holds the VF; Linux gives a VF no `remove`
/// attribute of its own. The PF comes back through a rescan whatever happened.
fn remove_while_held(env: &Env) -> Result<Vec<Report>, String> {
    with_loaded(env, |pf| {
        let removed = remove_pf_under_qemu(env, pf);
        let back = rescan(pf);
        removed?;
        back?;
        // The PF's SR-IOV works again from a fresh state.
        let shown = fs::read_to_string(pf.dir().join("sriov_vf_mode"))
            .map_err(|e| format!("sriov_vf_mode: {e}"))?;
        ensure(shown == "[nvme] vfio\n", || {
            format!("sriov_vf_mode after the rescan shows {shown:?}")
        })?;
        set_numvfs(pf, 1)?;
        let vfs = vfs(pf)?;
        ensure(vfs.len() == 1, || format!("{} VFs, want 1", vfs.len()))?;
        check_mode(&vfs[0], "nvme")?;
        set_numvfs(pf, 0)
    })
}

fn remove_pf_under_qemu(env: &Env, pf: &Function) -> Result<(), String> {
    write_attr(&pf.dir().join("sriov_vf_mode"), "vfio")
        .map_err(|e| format!("sriov_vf_mode=vfio: errno {e}"))?;
    set_numvfs(pf, 1)?;
    let vfs = vfs(pf)?;
    let vf = vfs.first().ok_or("no VF")?;
    check_mode(vf, "vfio")?;
    ensure(!vf.dir().join("remove").exists(), || {
        format!(
            "{} has a remove attribute now: remove the VF itself",
            vf.bdf
        )
    })?;
    let mut vmm = Vmm::paused(env, "remove", vf)?;
    check_realized(&mut vmm, vf)?;

    let mark = kmsg::mark()?;
    let pending = Pending::write(pf.dir().join("remove"), "1".into());
    blocked_while_held(&mut vmm, vf, &pending, mark)?;
    let after = end_and_complete(vmm, Exit::Quit, &pending)?;
    println!(
        "# the removal completed {:.1} s after QEMU exited",
        after.as_secs_f64()
    );
    ensure(!vf.dir().exists() && !pf.dir().exists(), || {
        format!("{} or {} is still there after the removal", vf.bdf, pf.bdf)
    })?;
    let log = kmsg::since(mark)?;
    ensure(
        log.iter()
            .any(|l| l.contains(&vf.bdf) && l.contains("VFIO device removed")),
        || format!("no VFIO device removal logged for {}: {log:?}", vf.bdf),
    )?;
    no_problems_since(mark)
}

/// Brings a removed PF back with a bus rescan; it binds to rnvme again.
fn rescan(pf: &Function) -> Result<(), String> {
    if !pf.dir().exists() {
        write_attr(Path::new("/sys/bus/pci/rescan"), "1")
            .map_err(|e| format!("echo 1 > /sys/bus/pci/rescan: errno {e}"))?;
    }
    ensure(
        wait_until(SETTLE, || pf.driver().as_deref() == Some(RNVME)),
        || format!("{} did not come back bound to rnvme", pf.bdf),
    )
}

fn unbind_while_held(env: &Env) -> Result<Vec<Report>, String> {
    with_vfs(env, 1, false, |_pf, vfs| {
        let vf = &vfs[0];
        set_mode(vf, "vfio")?;
        let mut vmm = Vmm::paused(env, "unbind", vf)?;
        check_realized(&mut vmm, vf)?;

        let mark = kmsg::mark()?;
        let unbind = PathBuf::from("/sys/bus/pci/drivers")
            .join(RNVME_VFIO)
            .join("unbind");
        let pending = Pending::write(unbind, vf.bdf.clone());
        blocked_while_held(&mut vmm, vf, &pending, mark)?;
        // This time QEMU dies instead of quitting.
        end_and_complete(vmm, Exit::Kill, &pending)?;
        let driver = vf.driver();
        ensure(driver.is_none(), || {
            format!("{} is bound to {driver:?} after the unbind", vf.bdf)
        })?;
        // The recorded mode stays; writing a mode binds the VF again.
        let shown = read_mode(vf)?;
        ensure(shown == "nvme [vfio]\n", || {
            format!("mode after the unbind shows {shown:?}")
        })?;
        no_problems_since(mark)?;
        set_mode(vf, "nvme")?;
        check_mode(vf, "nvme")?;
        set_mode(vf, "vfio")?;
        check_mode(vf, "vfio")
    })
}

/// PID 1 of the nested guest (busybox sh): loads the C nvme driver, checks the data the test
/// VM wrote, writes and reads back its own, reports on the console and powers off.
const NESTED_INIT: &str = r#"B=@BUSYBOX@
say() { $B echo "RNVME-L2: $*"; }
bye() { $B poweroff -f; }
fail() { say "FAIL $*"; bye; }
$B mount -t proc proc /proc || fail "mount /proc"
$B mount -t sysfs sysfs /sys || fail "mount /sys"
$B mount -t devtmpfs devtmpfs /dev || fail "mount /dev"
say "init at $($B cut -d ' ' -f 1 /proc/uptime) s"
$B insmod @MODS@/nvme-core.ko || fail "insmod nvme-core.ko"
$B insmod @MODS@/nvme.ko || fail "insmod nvme.ko"
disk=
i=0
while [ -z "$disk" ]; do
	disk=$($B ls /sys/block | $B grep '^nvme' | $B head -n 1)
	if [ -z "$disk" ]; then
		[ $i -ge 600 ] && fail "no nvme disk after 60 s"
		$B usleep 100000
		i=$((i + 1))
	fi
done
ctrl=/sys/block/$disk/device
pci=$($B readlink -f $ctrl/device)
say "disk $disk driver $($B basename $($B readlink $pci/driver)) id $($B cat $pci/vendor):$($B cat $pci/device) serial $($B cat $ctrl/serial) model $($B cat $ctrl/model)"
dev=/dev/$disk
$B dd if=$dev iflag=direct bs=@BS@ count=1 2>/dev/null | $B cmp -s - @DIR@/from-l1.bin ||
	fail "what the test VM wrote reads back different"
say "read-ok"
$B dd if=@DIR@/from-l2.bin of=$dev oflag=direct bs=@BS@ seek=@SEEK@ conv=notrunc,fsync 2>/dev/null ||
	fail "write failed"
$B dd if=$dev iflag=direct bs=@BS@ skip=@SEEK@ count=1 2>/dev/null | $B cmp -s - @DIR@/from-l2.bin ||
	fail "what the nested guest wrote reads back different"
say "PASS at $($B cut -d ' ' -f 1 /proc/uptime) s"
bye
"#;

/// The path of the test kernel's module file or directory `rel` (under `kernel/` of its
/// module tree, e.g. `drivers/block/virtio_blk.ko`); not checked.
pub(crate) fn test_kernel_module(env: &Env, rel: &str) -> Result<PathBuf, String> {
    let release =
        fs::read_to_string("/proc/sys/kernel/osrelease").map_err(|e| format!("osrelease: {e}"))?;
    Ok(env
        .modroot
        .join("lib/modules")
        .join(release.trim())
        .join("kernel")
        .join(rel))
}

/// The nested guests' kernel (the test VM's own) and the directory of its C nvme modules;
/// with the static busybox they run.
pub(crate) fn nested_kernel(env: &Env) -> Result<(PathBuf, PathBuf), String> {
    let build = env
        .modroot
        .parent()
        .ok_or("modroot has no parent")?
        .join("build");
    let bzimage = build.join("arch/x86/boot/bzImage");
    let mods = test_kernel_module(env, "drivers/nvme/host")?;
    for f in [
        bzimage.clone(),
        mods.join("nvme-core.ko"),
        mods.join("nvme.ko"),
    ] {
        ensure(f.is_file(), || format!("{} is missing", f.display()))?;
    }
    // `cargo xtask deps` installs it: missing means a broken set-up, not a skip.
    ensure(Path::new(BUSYBOX).is_file(), || {
        format!("{BUSYBOX} is missing (package busybox-static; run cargo xtask deps)")
    })?;
    Ok((bzimage, mods))
}

fn nested_guest_io(env: &Env) -> Result<Vec<Report>, String> {
    // The nested guest runs the test VM's own kernel and its C nvme modules.
    let (bzimage, mods) = nested_kernel(env)?;
    with_vfs(env, 1, true, |_pf, vfs| {
        let vf = &vfs[0];
        wait_vf_disk(vf)?;
        let from_l1 = pattern(CHUNK, 0x4c31);
        let from_l2 = pattern(CHUNK, 0x4c32);
        {
            let disk = vf_disk(vf, "2").ok_or("no VF disk")?;
            let mut d = Direct::open_path(&disk)?;
            d.write_at(0, &from_l1)?;
            // Something else where the nested guest writes: a write that does nothing shows.
            d.write_at(L2_OFFSET, &pattern(CHUNK, 0x57a1e))?;
        }
        set_mode(vf, "vfio")?;

        let dir = PathBuf::from(NESTED_DIR);
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        let put = |name: &str, data: &[u8]| {
            fs::write(dir.join(name), data).map_err(|e| format!("{name}: {e}"))
        };
        put("from-l1.bin", &from_l1)?;
        put("from-l2.bin", &from_l2)?;
        let init = NESTED_INIT
            .replace("@BUSYBOX@", BUSYBOX)
            .replace("@MODS@", &mods.to_string_lossy())
            .replace("@DIR@", NESTED_DIR)
            .replace("@BS@", &CHUNK.to_string())
            .replace("@SEEK@", &(L2_OFFSET / CHUNK as u64).to_string());
        put("init.sh", init.as_bytes())?;

        let console = env.out.join("l2-console.log");
        let _ = fs::remove_file(&console);
        // The nested guest's root is the test VM's / over 9p (read-only), its init the
        // static busybox running init.sh; loglevel=5 keeps warnings on the console.
        let cmdline = format!(
            "console=ttyS0 root=/dev/root rootfstype=9p \
             rootflags=trans=virtio,version=9p2000.L,msize=512000 ro init={BUSYBOX} \
             panic=-1 kunit.enable=0 nohz=off no_timer_check loglevel=5 -- sh {NESTED_DIR}/init.sh"
        );
        let args = [
            "-S",
            "-m",
            "256M",
            "-smp",
            "1",
            "-no-reboot",
            "-serial",
            &format!("file:{}", console.display()),
            "-kernel",
            &bzimage.to_string_lossy(),
            "-append",
            &cmdline,
            "-fsdev",
            "local,id=root,path=/,security_model=none,readonly=on,multidevs=remap",
            "-device",
            "virtio-9p-pci,fsdev=root,mount_tag=/dev/root",
            "-device",
            &vfio_device(vf),
        ]
        .map(String::from);
        let started = Instant::now();
        let mut vmm = Vmm::start(env, "nested", &args)?;
        check_realized(&mut vmm, vf)?;
        vmm.qmp
            .execute(&qmp::cont {})
            .map_err(|e| format!("cont: {e}"))?;
        let status = wait_exit(&mut vmm.proc.0, NESTED_TIMEOUT);
        let took = started.elapsed();
        drop(vmm);
        let ended = match &status {
            Ok(s) => s.to_string(),
            Err(e) => e.clone(),
        };
        println!(
            "# the nested guest ran for {:.1} s ({ended})",
            took.as_secs_f64()
        );
        let out = fs::read_to_string(&console).unwrap_or_default();
        let lines: Vec<String> = out.lines().map(|l| l.trim_end().to_string()).collect();
        let said: Vec<&str> = lines
            .iter()
            .filter_map(|l| l.find("RNVME-L2: ").map(|i| &l[i + 10..]))
            .collect();
        let bad = problems(&lines);
        ensure(bad.is_empty(), || {
            format!("the nested guest's kernel reported {bad:?}")
        })?;
        ensure(said.iter().any(|l| l.starts_with("PASS")), || {
            format!(
                "the nested guest did not pass ({ended} after {} s): it said {said:?}; \
                 console tail: {}",
                took.as_secs(),
                log_tail(&console)
            )
        })?;
        let disk_line = said.iter().find(|l| l.starts_with("disk ")).unwrap_or(&"");
        ensure(
            disk_line.contains(" driver nvme ")
                && disk_line.contains(" id 0x1b36:0x0010 ")
                && disk_line.contains(" serial RNVME0001 ")
                && disk_line.contains(" model QEMU NVMe Ctrl"),
            || format!("the nested guest's disk: {disk_line:?}"),
        )?;
        status
            .map_err(|e| format!("QEMU running the nested guest: {e}"))
            .and_then(|s| {
                ensure(s.success(), || {
                    format!("QEMU running the nested guest: {s}")
                })
            })?;

        // Back in block mode, the test VM reads what the nested guest wrote.
        set_mode(vf, "nvme")?;
        let disk = wait_vf_disk(vf)?;
        let mut d = Direct::open_path(&disk)?;
        ensure(d.read_at(0, CHUNK)? == from_l1, || {
            "the data written before the assignment changed".into()
        })?;
        ensure(d.read_at(L2_OFFSET, CHUNK)? == from_l2, || {
            "what the nested guest wrote does not read back in block mode".into()
        })
    })
}
