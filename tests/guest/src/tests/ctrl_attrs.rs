// SPDX-License-Identifier: GPL-2.0

//! The controller attributes of the C nvme driver, on rnvme's controller device: the misc
//! device `/sys/class/misc/rnvme<N>/` by default, the class device
//! `/sys/class/nvme/nvme<N>/` with `nvme_class=on`. The read-only ones show what Identify
//! Controller and the probe log say; `reset_controller` resets the controller (data
//! intact), `rescan_controller` rescans the namespaces; hostile writes to either are
//! refused with `EINVAL` and change nothing; an unload while a writer resets (or, after a
//! reload, rescans) in a loop finishes (no deadlock between the store callbacks and the
//! device's removal).

use std::{
    fs,
    os::unix::fs::PermissionsExt,
    path::{Path, PathBuf},
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc,
    },
    thread,
    time::{Duration, Instant},
};

use crate::{
    disk::{pattern, Direct},
    harness::{ensure, wait_until, Env, Report, Test},
    kmsg,
    module::{self, RNVME},
    pci::{self, Function},
    tests::hardening::{hostile_values, write_once},
};

/// How long a probe may take to show its devices (TCG).
const SETTLE: Duration = Duration::from_secs(30);

/// How long an unbind with writers hammering the attributes may take before the test
/// calls it a deadlock.
const UNBIND_BOUND: Duration = Duration::from_secs(60);

/// The controller attribute tests.
pub fn tests() -> Vec<Test> {
    vec![
        Test {
            name: "recovery/ctrl-attrs-misc-device",
            groups: &["recovery", "block", "chardev", "ctrl-attrs"],
            run: misc_device,
        },
        Test {
            name: "recovery/ctrl-attrs-nvme-class",
            groups: &["recovery", "nvme-class", "ctrl-attrs"],
            run: nvme_class,
        },
    ]
}

/// Where the attributes are, for one `nvme_class` setting.
struct Layout {
    /// The `nvme_class` parameter given to insmod, if any.
    param: Option<&'static str>,
    /// The controller device's sysfs directory, which has the attributes.
    ctrl: &'static str,
    /// A directory that must not have them.
    not_there: &'static str,
    /// The controller's character device.
    chardev: &'static str,
    /// The disk of namespace 1.
    disk: &'static str,
}

fn misc_device(env: &Env) -> Result<Vec<Report>, String> {
    run(
        env,
        &Layout {
            param: None,
            ctrl: "/sys/class/misc/rnvme0",
            not_there: "/sys/class/nvme",
            chardev: "/dev/rnvme0",
            disk: "/dev/rnvme0n1",
        },
    )
}

fn nvme_class(env: &Env) -> Result<Vec<Report>, String> {
    run(
        env,
        &Layout {
            param: Some("nvme_class=on"),
            ctrl: "/sys/class/nvme/nvme0",
            // The misc device (named nvme0 too) leaves them to the class device.
            not_there: "/sys/class/misc/nvme0/reset_controller",
            chardev: "/dev/nvme0",
            disk: "/dev/nvme0n1",
        },
    )
}

/// Loads rnvme as `l` says and waits for its disk.
fn load(env: &Env, l: &Layout) -> Result<(), String> {
    match l.param {
        Some(p) => module::insmod_with(&env.module, &[p])?,
        None => module::insmod(&env.module)?,
    }
    ensure(wait_until(SETTLE, || Path::new(l.disk).exists()), || {
        format!("no {} after loading rnvme", l.disk)
    })
}

/// Loads rnvme as `l` says, checks the attributes, and unloads it while a writer resets;
/// then again while a writer rescans.
fn run(env: &Env, l: &Layout) -> Result<Vec<Report>, String> {
    module::ensure_unloaded(RNVME)?;
    if module::is_loaded("nvme") {
        module::modprobe_remove(&env.modroot, "nvme")?;
    }
    let pf = pci::nvme_pf()?;
    let probe_mark = kmsg::mark()?;
    let result = (|| {
        load(env, l)?;
        let ctrl = Path::new(l.ctrl);
        ensure(!Path::new(l.not_there).exists(), || {
            format!("{} exists", l.not_there)
        })?;
        read_only(&pf, l, ctrl, probe_mark)?;
        hostile(ctrl)?;
        reset(l, ctrl)?;
        rescan(l, ctrl)?;
        unload_while_writing(&pf, ctrl, "reset_controller")?;
        load(env, l)?;
        unload_while_writing(&pf, ctrl, "rescan_controller")
    })();
    let unloaded = module::ensure_unloaded(RNVME);
    result.and(unloaded).map(|()| vec![])
}

fn attr(dir: &Path, name: &str) -> Result<String, String> {
    module::sysfs_read(&dir.join(name))
}

/// Identify Controller through the character device, as nvme-cli's JSON.
fn id_ctrl(chardev: &str) -> Result<serde_json::Value, String> {
    let out = module::run("nvme", &["id-ctrl", chardev, "-o", "json"])?;
    serde_json::from_str(&out).map_err(|e| format!("id-ctrl json: {e}: {out:.300}"))
}

/// The I/O queue count and depth the probe logged ("N I/O queue(s) of D entries").
fn logged_queues(mark: u64) -> Result<(u32, u32), String> {
    let log = kmsg::since(mark)?;
    let line = log
        .iter()
        .find(|l| l.contains(" I/O queue(s) of "))
        .ok_or("the probe logged no I/O queue line")?;
    let words: Vec<&str> = line.split_whitespace().collect();
    let at = words
        .iter()
        .position(|w| *w == "I/O")
        .ok_or_else(|| format!("cannot parse {line:?}"))?;
    let num = |i: usize| -> Result<u32, String> {
        words
            .get(i)
            .and_then(|w| w.parse().ok())
            .ok_or_else(|| format!("cannot parse {line:?}"))
    };
    Ok((num(at.wrapping_sub(1))?, num(at + 3)?))
}

/// Every read-only attribute against Identify, the probe log and the PCI function.
fn read_only(pf: &Function, l: &Layout, ctrl: &Path, probe_mark: u64) -> Result<(), String> {
    let id = id_ctrl(l.chardev)?;
    let id_str = |k: &str| -> Result<String, String> {
        id[k]
            .as_str()
            .map(|s| s.trim().to_string())
            .ok_or_else(|| format!("no {k} in id-ctrl"))
    };
    let cntlid = id["cntlid"].as_u64().ok_or("no cntlid in id-ctrl")?;
    let (queues, depth) = logged_queues(probe_mark)?;
    // A kernel without NUMA has no numa_node attribute on the function: no node (-1).
    let numa = match fs::read_to_string(pf.dir().join("numa_node")) {
        Ok(n) => n,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => "-1".to_string(),
        Err(e) => return Err(format!("{}/numa_node: {e}", pf.bdf)),
    };
    let want = [
        ("state", "live".to_string()),
        ("transport", "pcie".to_string()),
        ("address", pf.bdf.clone()),
        ("serial", id_str("sn")?),
        ("model", id_str("mn")?),
        ("firmware_rev", id_str("fr")?),
        ("subsysnqn", id_str("subnqn")?),
        ("cntlid", cntlid.to_string()),
        ("queue_count", (queues + 1).to_string()),
        ("sqsize", (depth - 1).to_string()),
        ("numa_node", numa.trim().to_string()),
    ];
    for (name, want) in &want {
        let got = attr(ctrl, name)?;
        ensure(&got == want, || {
            format!("{}/{name} is {got:?}, want {want:?}", ctrl.display())
        })?;
        ensure(!got.is_empty(), || format!("{name} is empty"))?;
        let mode = fs::metadata(ctrl.join(name))
            .map_err(|e| format!("{name}: {e}"))?
            .permissions()
            .mode()
            & 0o777;
        ensure(mode == 0o444, || format!("{name} has mode {mode:o}"))?;
    }
    for name in ["reset_controller", "rescan_controller"] {
        let path = ctrl.join(name);
        let mode = fs::metadata(&path)
            .map_err(|e| format!("{}: {e}", path.display()))?
            .permissions()
            .mode()
            & 0o777;
        ensure(mode == 0o200, || format!("{name} has mode {mode:o}"))?;
        // Write-only, even for root.
        let read = fs::read(&path).map_err(|e| e.raw_os_error());
        ensure(read == Err(Some(libc::EACCES)), || {
            format!("reading {name}: {read:?}, want EACCES")
        })?;
    }
    println!(
        "# {}: serial {}, cntlid {cntlid}, {} queues, sqsize {}",
        ctrl.display(),
        want[3].1,
        queues + 1,
        depth - 1
    );
    Ok(())
}

/// Hostile writes: each refused with `EINVAL` (an empty write never reaches the driver and
/// succeeds), and neither a reset nor a scan happens.
fn hostile(ctrl: &Path) -> Result<(), String> {
    let mut values = hostile_values(&["1"]);
    for (what, bytes) in [
        ("0", &b"0"[..]),
        ("0 with a newline", b"0\n"),
        ("2", b"2"),
        ("yes", b"yes"),
        ("1 1", b"1 1"),
        ("11", b"11"),
        ("1 CRLF", b"1\r\n"),
        ("4096 ones", &[b'1'; 4096][..]),
    ] {
        values.push((what.to_string(), bytes.to_vec()));
    }
    let mark = kmsg::mark()?;
    for name in ["reset_controller", "rescan_controller"] {
        let path = ctrl.join(name);
        for (what, bytes) in &values {
            let got = write_once(&path, bytes);
            let want = if bytes.is_empty() {
                Ok(())
            } else {
                Err(libc::EINVAL)
            };
            ensure(got == want, || {
                format!("{what} > {name}: got {got:?}, want {want:?}")
            })?;
        }
    }
    let log = kmsg::since(mark)?;
    ensure(
        !log.iter()
            .any(|l| l.contains("resetting controller") || l.contains("namespace scan")),
        || format!("a hostile write acted: {log:?}"),
    )?;
    ensure(attr(ctrl, "state")? == "live", || {
        "the controller is not live after the hostile writes".into()
    })
}

/// `1` resets the controller synchronously: logged once, live when the write returns,
/// data written before reads back after, and new I/O works.
fn reset(l: &Layout, ctrl: &Path) -> Result<(), String> {
    let data = pattern(128 << 10, 0x7e5e7);
    let mut disk = Direct::open_path(l.disk)?;
    disk.write_at(8 << 20, &data)?;
    for input in [&b"1\n"[..], b"1"] {
        let mark = kmsg::mark()?;
        let started = Instant::now();
        write_once(&ctrl.join("reset_controller"), input)
            .map_err(|e| format!("{input:?} > reset_controller: errno {e}"))?;
        let took = started.elapsed();
        // Synchronous: the reset is over when the write returns.
        let log = kmsg::since(mark)?;
        let complete = log
            .iter()
            .filter(|l| l.contains("controller reset complete"))
            .count();
        ensure(complete == 1, || {
            format!("{input:?} > reset_controller: {complete} resets logged: {log:?}")
        })?;
        ensure(attr(ctrl, "state")? == "live", || {
            "not live right after the reset".into()
        })?;
        println!(
            "# reset_controller ({}) took {took:?}",
            input.escape_ascii()
        );
    }
    ensure(disk.read_at(8 << 20, data.len())? == data, || {
        "data written before the reset reads back differently".into()
    })?;
    let more = pattern(64 << 10, 0x7e5e8);
    disk.write_at(16 << 20, &more)?;
    ensure(disk.read_at(16 << 20, more.len())? == more, || {
        "a write after the reset reads back differently".into()
    })
}

/// `1` rescans: succeeds, keeps the disk and changes nothing when nothing changed.
fn rescan(l: &Layout, ctrl: &Path) -> Result<(), String> {
    let mark = kmsg::mark()?;
    for input in [&b"1\n"[..], b"1"] {
        write_once(&ctrl.join("rescan_controller"), input)
            .map_err(|e| format!("{input:?} > rescan_controller: errno {e}"))?;
    }
    let log = kmsg::since(mark)?;
    ensure(!log.iter().any(|l| l.contains("namespace scan")), || {
        format!("a rescan with nothing new changed disks: {log:?}")
    })?;
    ensure(Path::new(l.disk).exists(), || {
        format!("{} is gone after the rescan", l.disk)
    })?;
    let data = pattern(4096, 0x5ca9);
    let mut disk = Direct::open_path(l.disk)?;
    disk.write_at(1 << 20, &data)?;
    ensure(disk.read_at(1 << 20, data.len())? == data, || {
        "the disk does not read back after the rescan".into()
    })
}

/// Unloads the module while a thread writes `1` to attribute `name` in a loop: the
/// unload finishes within [`UNBIND_BOUND`], and each write succeeded or failed with
/// `EBUSY` (the unbind began) until the attribute was gone (`ENODEV`, `ENOENT`). One
/// writer at a time: a rescan's Identify that a reset overtakes waits for its timeout.
fn unload_while_writing(pf: &Function, ctrl: &Path, name: &'static str) -> Result<(), String> {
    let stop = Arc::new(AtomicBool::new(false));
    let writer = {
        let path: PathBuf = ctrl.join(name);
        let stop = stop.clone();
        thread::spawn(move || {
            let mut done = 0u32;
            let mut refused = Vec::new();
            while !stop.load(Ordering::Relaxed) {
                match write_once(&path, b"1") {
                    Ok(()) => done += 1,
                    // The attribute (or its device) is gone: the unbind got there.
                    Err(libc::ENOENT) | Err(libc::ENODEV) => break,
                    Err(e) => refused.push(e),
                }
            }
            (done, refused)
        })
    };
    // Let it run a little first.
    thread::sleep(Duration::from_millis(300));
    let started = Instant::now();
    let unloaded = module::rmmod(RNVME);
    let took = started.elapsed();
    stop.store(true, Ordering::Relaxed);
    let (done, refused) = writer.join().map_err(|_| "the writer thread panicked")?;
    unloaded?;
    println!(
        "# unload while writing {name} took {took:?}; {done} writes done, refused {refused:?}"
    );
    ensure(took < UNBIND_BOUND, || {
        format!("the unload took {took:?} while writing {name}")
    })?;
    ensure(done >= 1, || format!("no write to {name} succeeded"))?;
    ensure(refused.iter().all(|e| *e == libc::EBUSY), || {
        format!("{name}: unexpected errors {refused:?}")
    })?;
    ensure(pf.driver().is_none(), || {
        format!("{} is still bound after rmmod", pf.bdf)
    })
}
