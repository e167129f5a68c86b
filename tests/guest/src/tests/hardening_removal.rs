// SPDX-License-Identifier: GPL-2.0

//! Surprise removal: `echo 1 > /sys/bus/pci/devices/<PF>/remove` with a VF in each mode,
//! VF 1 a disk under fio and VF 2 in vfio mode opened by the userspace VFIO client. Linux
//! gives a VF no `remove` attribute of its own (a VF goes with its PF or with
//! `sriov_numvfs=0`, which is refused while a VF is in use: `vfio/in-use-is-busy`), so the
//! PF's removal is how a VF is removed under its users. The removal takes VF 1's disk
//! away under fio (which fails and exits, it does not hang), waits for the VFIO client to
//! release VF 2 (no device request channel: the kernel says so and blocks), and completes
//! once the client closes. A rescan brings the PF back bound to rnvme, and what was written
//! before through the PF's disk and VF 1's disk reads back.

use std::{
    path::Path as FsPath,
    process::{Command, Stdio},
    sync::mpsc,
    thread,
    time::Duration,
};

use crate::fixture::{check_mode, set_mode, with_loaded};
use crate::{
    disk::{pattern, Direct},
    harness::{ensure, wait_until, Env, Report, Test},
    kmsg,
    module::{self, RNVME},
    pci::Function,
    sriov::{scid_of, set_numvfs, vfs, write_attr, CHARDEV},
    tests::{hardening::Campaign, vfio::wait_vf_disk},
    vfio_client::{Client, Path},
};

/// The removal campaign.
pub fn tests() -> Vec<Test> {
    vec![Test {
        name: "hardening/surprise-removal-with-vfs-in-both-modes",
        groups: &["hardening", "vfio"],
        run: removal,
    }]
}

/// How long removal steps may take (TCG).
const SETTLE: Duration = Duration::from_secs(60);

/// Where the data written before the removal lives, in bytes.
const MARK_AT: u64 = 64 << 20;

/// Attaches (or detaches) namespace 2 to the secondary controllers of VFs 1 and 2.
fn namespace_2(attach: bool) -> Result<String, String> {
    let controllers = format!("{},{}", scid_of(1)?, scid_of(2)?);
    let verb = if attach { "attach-ns" } else { "detach-ns" };
    module::run("nvme", &[verb, CHARDEV, "-n", "2", "-c", &controllers])
}

fn removal(env: &Env) -> Result<Vec<Report>, String> {
    with_loaded(env, |pf| {
        let on_pf = pattern(64 << 10, 0xbf);
        let on_vf = pattern(64 << 10, 0xbf2);
        Direct::open()?.write_at(MARK_AT, &on_pf)?;
        set_numvfs(pf, 2)?;
        let vfs = vfs(pf)?;
        ensure(vfs.len() == 2, || format!("{} VFs, want 2", vfs.len()))?;
        namespace_2(true)?;
        let removed = remove_under_users(pf, &vfs, &on_vf);
        // Whatever happened, the PF comes back.
        let back = rescan(pf);
        back?;
        // The data is checked whatever the removal itself got wrong.
        // What was written before is intact, through the PF and a VF.
        ensure(
            Direct::open()?.read_at(MARK_AT, on_pf.len())? == on_pf,
            || "the PF disk's data changed across the removal".into(),
        )?;
        set_numvfs(pf, 2)?;
        let vfs = crate::sriov::vfs(pf)?;
        check_mode(&vfs[0], "nvme")?;
        // The namespace is still attached to the secondary controllers (attachment is the
        // controller's, not the driver's), or attached again.
        if wait_vf_disk(&vfs[0]).is_err() {
            namespace_2(true)?;
        }
        let disk = wait_vf_disk(&vfs[0])?;
        let size = |d: &str| {
            std::fs::read_to_string(format!("/sys/block/{}/size", d.trim_start_matches("/dev/")))
                .unwrap_or_default()
        };
        let devt = |d: &str| {
            use std::os::unix::fs::MetadataExt;
            let rdev = std::fs::metadata(d).map(|m| m.rdev()).unwrap_or(0);
            let name = d.trim_start_matches("/dev/");
            let sys = std::fs::read_to_string(format!("/sys/block/{name}/dev")).unwrap_or_default();
            format!(
                "node {}:{}, sysfs {}",
                libc::major(rdev),
                libc::minor(rdev),
                sys.trim()
            )
        };
        let got = Direct::open_path(&disk)?
            .read_at(MARK_AT, on_vf.len())
            .map_err(|e| {
                format!(
                    "VF 1 after the rescan: {e} ({disk} has {} sectors, {}); the removal: {:?}",
                    size(&disk).trim(),
                    devt(&disk),
                    removed
                )
            })?;
        namespace_2(false)?;
        set_numvfs(pf, 0)?;
        ensure(got == on_vf, || {
            "VF 1's data changed across the removal".into()
        })?;
        removed
    })
}

fn remove_under_users(pf: &Function, vfs: &[Function], on_vf: &[u8]) -> Result<(), String> {
    let (vf1, vf2) = (&vfs[0], &vfs[1]);
    let disk = wait_vf_disk(vf1)?;
    Direct::open_path(&disk)?.write_at(MARK_AT, on_vf)?;
    set_mode(vf2, "vfio")?;
    let mut client = Client::open(&vf2.bdf, Path::Container).map_err(String::from)?;
    client.create_io_queue()?;
    let lba = client.lba_size(2)?;
    ensure(client.read_page(2, MARK_AT, lba)? == on_vf[..4096], || {
        "VF 2 does not read what VF 1 wrote".into()
    })?;
    let mut fio = Command::new("fio")
        .args([
            "--name=removal",
            "--direct=1",
            "--ioengine=libaio",
            "--rw=randwrite",
            "--bs=4k",
            "--iodepth=8",
            "--size=16M",
            "--time_based",
            "--runtime=600",
            // Once the disk is gone, fio must not create a regular file in its place (the
            // default: it did, wrote on into /dev, and the new disk found its name taken).
            "--allow_file_create=0",
            &format!("--filename={disk}"),
            "--output=/dev/null",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| format!("fio: {e}"))?;
    let stat = format!("/sys/block/{}/stat", disk.trim_start_matches("/dev/"));
    let ios = || {
        std::fs::read_to_string(&stat)
            .ok()
            .and_then(|s| {
                s.split_whitespace()
                    .nth(4)
                    .and_then(|w| w.parse::<u64>().ok())
            })
            .unwrap_or(0)
    };
    let started = wait_until(SETTLE, || ios() > 0);
    let mut c = Campaign::start("surprise removal")?;
    // The removal, in a thread of its own: it blocks while the client holds VF 2.
    let (tx, rx) = mpsc::channel();
    let remove = pf.dir().join("remove");
    thread::spawn(move || {
        let _ = tx.send(write_attr(&remove, "1"));
    });
    let result = (|| -> Result<(), String> {
        ensure(started, || "fio never wrote to VF 1's disk".into())?;
        let blocked =
            |l: &String| l.contains(&vf2.bdf) && l.contains("blocked until released by user");
        ensure(
            wait_until(SETTLE, || {
                kmsg::since(c.mark()).is_ok_and(|log| log.iter().any(blocked))
            }),
            || format!("the removal did not wait for the user of {}", vf2.bdf),
        )?;
        // VF 1 went under fio, which fails instead of hanging.
        ensure(!FsPath::new(&disk).exists(), || {
            format!("{disk} is still there while the removal waits for VF 2")
        })?;
        ensure(rx.recv_timeout(Duration::from_millis(500)).is_err(), || {
            "the removal completed while the client held VF 2".into()
        })?;
        let fio_done = wait_until(SETTLE, || fio.try_wait().is_ok_and(|s| s.is_some()));
        ensure(fio_done, || {
            format!(
                "fio hangs on the removed disk; its processes: {}",
                fio_states()
            )
        })?;
        let st = fio.wait().map_err(|e| e.to_string())?;
        ensure(!st.success(), || "fio succeeded on a removed disk".into())?;
        Ok(())
    })();
    // The client lets go; the removal completes. vfio-ioctls 0.10 panics in the drop of a
    // device whose sysfs directory is gone (`InvalidPath`, after it closed the device fd):
    // that panic is the library's, caught and silenced here.
    let hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(|_| {}));
    let dropped = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| drop(client)));
    std::panic::set_hook(hook);
    if dropped.is_err() {
        println!("# vfio-ioctls panicked dropping the removed VF (caught)");
    }
    let done = rx.recv_timeout(SETTLE);
    let _ = fio.kill();
    let _ = fio.wait();
    let r: Result<(), i32> = done.unwrap_or(Err(libc::ETIMEDOUT));
    c.count(&r);
    result?;
    ensure(r.is_ok(), || format!("echo 1 > remove: {r:?}"))?;
    ensure(
        !pf.dir().exists() && !vf1.dir().exists() && !vf2.dir().exists(),
        || "a function is still there after the removal".into(),
    )?;
    c.finish()
}

/// The state and syscall of every fio process (`/proc/<pid>/stat` and `syscall`).
fn fio_states() -> String {
    let mut out = Vec::new();
    for e in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let dir = e.path();
        let Ok(stat) = std::fs::read_to_string(dir.join("stat")) else {
            continue;
        };
        if !stat.contains("(fio)") {
            continue;
        }
        let state = stat
            .rsplit(')')
            .next()
            .unwrap_or("")
            .split_whitespace()
            .next();
        let syscall = std::fs::read_to_string(dir.join("syscall")).unwrap_or_default();
        let first = syscall.split_whitespace().next().unwrap_or("?").to_string();
        out.push(format!(
            "{} state {} syscall {first}",
            e.file_name().to_string_lossy(),
            state.unwrap_or("?")
        ));
    }
    out.join(", ")
}

/// Brings a removed PF back with a bus rescan; it binds to rnvme again.
fn rescan(pf: &Function) -> Result<(), String> {
    if !pf.dir().exists() {
        write_attr(FsPath::new("/sys/bus/pci/rescan"), "1")
            .map_err(|e| format!("echo 1 > /sys/bus/pci/rescan: errno {e}"))?;
    }
    ensure(
        wait_until(SETTLE, || pf.driver().as_deref() == Some(RNVME)),
        || format!("{} did not come back bound to rnvme", pf.bdf),
    )?;
    ensure(
        wait_until(SETTLE, || FsPath::new("/dev/rnvme0n1").exists()),
        || "the PF's disk did not come back".into(),
    )
}
