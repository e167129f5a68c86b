// SPDX-License-Identifier: GPL-2.0

//! Error recovery: a request whose completion is lost times out, the driver resets the
//! controller, requeues what was in flight, and no data is lost.

use std::{
    fs,
    io::Read,
    os::fd::AsRawFd,
    path::Path,
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use crate::fixture::{load_fresh, set_mode, with_vfs};
use crate::{
    disk::{pattern, Direct, DISK},
    harness::{ensure, Env, Report, Test},
    kmsg,
    module::{self, RNVME},
    nvme_ioctl::{Cmd, ADMIN_CMD},
    tests::{recovery_reset::vfio_queue_works, vfio::wait_vf_disk},
};

/// The recovery tests.
pub fn tests() -> Vec<Test> {
    vec![
        Test {
            name: "recovery/timeout-aborts-resets-and-requeues",
            groups: &["recovery", "block"],
            run: timeout_resets_and_requeues,
        },
        Test {
            name: "recovery/fio-verify-through-timeouts",
            groups: &["recovery", "block"],
            run: fio_through_timeouts,
        },
        Test {
            name: "recovery/stale-completions-are-dropped",
            groups: &["recovery", "block"],
            run: stale_completions_are_dropped,
        },
        Test {
            name: "recovery/permanent-timeouts-give-the-controller-up",
            groups: &["recovery", "block"],
            run: permanent_timeouts_give_up,
        },
        Test {
            name: "recovery/a-vf-given-up-takes-nothing-else",
            groups: &["recovery", "vfio"],
            run: vf_given_up_alone,
        },
    ]
}

const FAIL_DIR: &str = "/sys/kernel/debug/fail_io_timeout";

/// Makes the next `times` completions of rnvme0n1 vanish (block layer fault injection; -1:
/// every one, for good), with a short request timeout so that the test does not wait 30 s.
fn inject_lost_completions(times: i32) -> Result<(), String> {
    inject_lost_completions_on(DISK, times)
}

/// [`inject_lost_completions`] on block device `disk` (`/dev/<name>`).
fn inject_lost_completions_on(disk: &str, times: i32) -> Result<(), String> {
    let name = disk.trim_start_matches("/dev/");
    let w = |p: &str, v: &str| module::sysfs_write(Path::new(p), v);
    w(&format!("/sys/block/{name}/queue/io_timeout"), "2000")?;
    w(&format!("{FAIL_DIR}/probability"), "100")?;
    w(&format!("{FAIL_DIR}/interval"), "1")?;
    w(&format!("{FAIL_DIR}/verbose"), "0")?;
    w(&format!("{FAIL_DIR}/times"), &times.to_string())?;
    w(&format!("/sys/block/{name}/io-timeout-fail"), "1")
}

fn stop_injection() -> Result<(), String> {
    stop_injection_on(DISK)
}

/// Ends the injection on `disk` (if it still exists) and everywhere else.
fn stop_injection_on(disk: &str) -> Result<(), String> {
    let flag = format!(
        "/sys/block/{}/io-timeout-fail",
        disk.trim_start_matches("/dev/")
    );
    if Path::new(&flag).exists() {
        module::sysfs_write(Path::new(&flag), "0")?;
    }
    module::sysfs_write(Path::new(&format!("{FAIL_DIR}/times")), "0")
}

fn timeout_resets_and_requeues(env: &Env) -> Result<Vec<Report>, String> {
    if !Path::new(FAIL_DIR).exists() {
        return Err(format!(
            "{FAIL_DIR} missing: kernel without CONFIG_FAIL_IO_TIMEOUT"
        ));
    }
    load_fresh(env)?;
    let mark = kmsg::mark()?;
    let result = (|| {
        let data = pattern(256 << 10, 4242);
        let mut disk = Direct::open()?;
        inject_lost_completions(1)?;
        // The write's completion is dropped; it times out and is aborted (the controller
        // finds nothing to abort), times out again, the controller is reset and the
        // write is dispatched again.
        disk.write_at(32 << 20, &data)?;
        stop_injection()?;
        let back = disk.read_at(32 << 20, 256 << 10)?;
        ensure(back == data, || {
            "data written across the reset reads back differently".into()
        })
    })();
    let _ = stop_injection();
    let timeouts = kmsg::count_since(mark, "timed out");
    let aborts = kmsg::count_since(mark, "abort of I/O tag");
    let again = kmsg::count_since(mark, "timed out again after its abort");
    let resets = kmsg::count_since(mark, "controller reset complete");
    module::rmmod(RNVME)?;
    result?;
    ensure(timeouts? >= 1, || "no request timed out".into())?;
    ensure(aborts? >= 1, || {
        "the timed-out request was not aborted first".into()
    })?;
    ensure(again? >= 1, || {
        "the reset did not wait for the aborted request's second timeout".into()
    })?;
    ensure(resets? >= 1, || "the controller was not reset".into())?;
    Ok(vec![])
}

fn fio_through_timeouts(env: &Env) -> Result<Vec<Report>, String> {
    if !Path::new(FAIL_DIR).exists() {
        return Err(format!(
            "{FAIL_DIR} missing: kernel without CONFIG_FAIL_IO_TIMEOUT"
        ));
    }
    load_fresh(env)?;
    let mark = kmsg::mark()?;
    inject_lost_completions(3)?;
    let fio = module::run(
        "fio",
        &[
            "--name=recovery",
            "--filename=/dev/rnvme0n1",
            "--direct=1",
            "--ioengine=libaio",
            "--rw=randwrite",
            "--bs=8k",
            "--iodepth=16",
            "--size=16M",
            "--verify=crc32c",
            "--verify_fatal=1",
            "--do_verify=1",
            "--output=/dev/null",
        ],
    );
    let _ = stop_injection();
    let resets = kmsg::count_since(mark, "controller reset complete");
    let io_timeout = fs::read_to_string("/sys/block/rnvme0n1/queue/io_timeout");
    module::rmmod(RNVME)?;
    fio?;
    ensure(resets? >= 1, || "no controller reset happened".into())?;
    ensure(io_timeout.is_ok(), || {
        "disk vanished during the test".into()
    })?;
    Ok(vec![])
}

/// The PF's controller device.
const CHARDEV: &str = "/dev/rnvme0";

/// The test device model's vendor feature that posts completions a second time
/// (`qemu/patches/0005`, the `x-stale-cqe` property).
const FID_X_STALE_CQE: u32 = 0xc0;

/// Sets the stale completion injection of the PF's controller: a copy of every
/// `every`th I/O completion is posted again (0: off).
fn set_stale_injection(fd: i32, every: u32) -> Result<(), String> {
    let mut cmd = Cmd::raw(0x09, 0, 0, 0, FID_X_STALE_CQE).cdw(11, every);
    cmd.send(fd, ADMIN_CMD)
        .map_err(|e| format!("Set Features C0h ({every}): errno {e}"))
        .and_then(|rc| match rc {
            0 => Ok(()),
            status => Err(format!(
                "Set Features C0h ({every}): NVMe status {status:#x} (QEMU without x-stale-cqe?)"
            )),
        })
}

/// How many stale copies the controller posted since the injection was set (each while
/// another command with its tag was outstanding), and how many it dropped because nothing
/// reused their tag in time.
fn stale_injected(fd: i32) -> Result<(u32, u32), String> {
    let mut cmd = Cmd::raw(0x0a, 0, 0, 0, FID_X_STALE_CQE);
    match cmd.send(fd, ADMIN_CMD) {
        Ok(0) => {
            let result = cmd.result();
            Ok((result & 0xffff, result >> 16))
        }
        Ok(status) => Err(format!("Get Features C0h: NVMe status {status:#x}")),
        Err(e) => Err(format!("Get Features C0h: errno {e}")),
    }
}

/// A controller that posts completions a second time, some while their tag is in use
/// by the next request: the generation count in the command identifiers makes the driver
/// drop them, fio's verify finds every block intact, and nothing times out or resets.
/// Without the generation count, a copy would end the tag's next request before its
/// data moved (fio reads the wrong data, or the device writes an unmapped buffer).
fn stale_completions_are_dropped(env: &Env) -> Result<Vec<Report>, String> {
    load_fresh(env)?;
    let mark = kmsg::mark()?;
    let ctrl = fs::File::open(CHARDEV).map_err(|e| format!("{CHARDEV}: {e}"))?;
    let fd = ctrl.as_raw_fd();
    let run = (|| {
        set_stale_injection(fd, 7)?;
        let fio = module::run(
            "fio",
            &[
                "--name=stale",
                "--filename=/dev/rnvme0n1",
                "--direct=1",
                "--ioengine=libaio",
                "--rw=randwrite",
                "--bs=4k",
                "--iodepth=32",
                "--size=32M",
                "--verify=crc32c",
                "--verify_fatal=1",
                "--do_verify=1",
                "--output=/dev/null",
            ],
        );
        let injected = stale_injected(fd);
        set_stale_injection(fd, 0)?;
        fio?;
        injected
    })();
    let _ = set_stale_injection(fd, 0);
    drop(ctrl);
    let stale = kmsg::count_since(mark, "stale command identifier");
    let invalid = kmsg::count_since(mark, "invalid command identifier");
    let timeouts = kmsg::count_since(mark, "timed out");
    let resets = kmsg::count_since(mark, "controller reset");
    module::rmmod(RNVME)?;
    let (posted, dropped) = run?;
    let (stale, invalid) = (stale?, invalid?);
    println!(
        "# the device posted {posted} stale completions (and dropped {dropped} copies \
         whose tag was not reused); the driver logged {stale} stale, {invalid} not in flight"
    );
    ensure(posted >= 1, || {
        format!("the device posted no stale completion ({dropped} copies dropped)")
    })?;
    // Every copy arrives while the tag's next request is in flight, so each is a stale
    // completion to the driver, none one whose tag is free. Each queue logs its first 16.
    ensure(invalid == 0, || {
        format!("{invalid} stale completions were taken for ones whose tag is not in flight")
    })?;
    ensure(
        (posted.min(16) as usize..=posted as usize).contains(&stale),
        || format!("the driver reported {stale} stale completions, the device posted {posted}"),
    )?;
    ensure(timeouts? == 0, || "a request timed out".into())?;
    ensure(resets? == 0, || "the controller was reset".into())?;
    Ok(vec![])
}

/// The request timeout the permanent-timeout test sets (`inject_lost_completions`).
const SHORT_TIMEOUT: Duration = Duration::from_secs(2);

/// How long the driver may take to give a controller up whose completions never come: the
/// policy's three timeouts (abort, reset, the reset's requests again) and two admin
/// commands' worth of waiting (10 s each), with room for TCG.
const GIVE_UP_BOUND: Duration = Duration::from_secs(60);

/// Every completion of the PF's disk is lost for good (the C driver's operator report of
/// issue 24): the driver aborts, resets, and when a request the reset took back times out
/// again gives the controller up. fio gets `EIO` within the bound, new I/O fails at once,
/// the module unloads, and a reload binds the (healthy) controller again with the data
/// written before intact.
fn permanent_timeouts_give_up(env: &Env) -> Result<Vec<Report>, String> {
    if !Path::new(FAIL_DIR).exists() {
        return Err(format!(
            "{FAIL_DIR} missing: kernel without CONFIG_FAIL_IO_TIMEOUT"
        ));
    }
    load_fresh(env)?;
    let data = pattern(64 << 10, 0xdead);
    Direct::open()?.write_at(8 << 20, &data)?;
    let mark = kmsg::mark()?;
    let run = fio_until_eio(DISK);
    let _ = stop_injection();
    let given_up = kmsg::count_since(mark, "giving the controller up");
    let marked = kmsg::count_since(mark, "disks marked dead");
    let resets = kmsg::count_since(mark, "controller reset complete");
    let unloaded = module::rmmod(RNVME);
    run?;
    unloaded.map_err(|e| format!("rmmod after the controller was given up: {e}"))?;
    ensure(given_up? == 1, || {
        "the controller was not given up exactly once (logged once)".into()
    })?;
    ensure(marked? == 1, || "the disks were not marked dead".into())?;
    ensure(resets? >= 1, || {
        "the controller was given up without a reset first".into()
    })?;
    // The controller itself is healthy: a reload binds it and the data is there.
    load_fresh(env)?;
    let back = Direct::open().and_then(|mut d| d.read_at(8 << 20, data.len()));
    module::rmmod(RNVME)?;
    ensure(back? == data, || {
        "the data written before the controller was given up reads back differently".into()
    })?;
    Ok(vec![])
}

/// Runs fio reads on `disk` with every completion lost for good, and returns how long it
/// took fio to get `EIO` (at most [`GIVE_UP_BOUND`]); then checks that new I/O to the
/// dead disk fails at once. The injection is left on (the caller ends it).
fn fio_until_eio(disk: &str) -> Result<Duration, String> {
    inject_lost_completions_on(disk, -1)?;
    let started = Instant::now();
    let mut fio = Command::new("fio")
        .args([
            "--name=dead",
            &format!("--filename={disk}"),
            "--direct=1",
            "--ioengine=libaio",
            "--rw=randread",
            "--bs=4k",
            "--numjobs=2",
            "--iodepth=4",
            "--size=32M",
            "--time_based",
            "--runtime=600",
            "--output=/dev/null",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("fio: {e}"))?;
    let mut status = None;
    while started.elapsed() < GIVE_UP_BOUND {
        status = fio.try_wait().map_err(|e| format!("fio: {e}"))?;
        if status.is_some() {
            break;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    let took = started.elapsed();
    let Some(status) = status else {
        let _ = fio.kill();
        let _ = fio.wait();
        return Err(format!(
            "fio still runs {} s into lost completions: the controller was not given up",
            took.as_secs()
        ));
    };
    let mut err = String::new();
    if let Some(mut e) = fio.stderr.take() {
        let _ = e.read_to_string(&mut err);
    }
    ensure(!status.success(), || {
        "fio succeeded although no completion arrived".into()
    })?;
    ensure(err.contains("Input/output error"), || {
        format!("fio failed, but not with EIO: {err}")
    })?;
    println!(
        "# fio got EIO {:.1} s into lost completions on {disk} (request timeout {} s)",
        took.as_secs_f64(),
        SHORT_TIMEOUT.as_secs()
    );
    // Dead disks fail new I/O at once: opening refuses, or the read fails.
    let t = Instant::now();
    let read = Direct::open_path(disk).and_then(|mut d| d.read_at(0, 4096));
    ensure(read.is_err(), || "a read of the dead disk succeeded".into())?;
    ensure(t.elapsed() < Duration::from_secs(5), || {
        format!(
            "a read of the dead disk took {} s to fail",
            t.elapsed().as_secs()
        )
    })?;
    Ok(took)
}

/// VF 1's controller (block mode) loses every completion and is given up: only it. The
/// PF's disk keeps its data and serves I/O, and VF 2's controller works (through VFIO).
fn vf_given_up_alone(env: &Env) -> Result<Vec<Report>, String> {
    if !Path::new(FAIL_DIR).exists() {
        return Err(format!(
            "{FAIL_DIR} missing: kernel without CONFIG_FAIL_IO_TIMEOUT"
        ));
    }
    with_vfs(env, 2, true, |_pf, vfs| {
        let (vf1, vf2) = (&vfs[0], &vfs[1]);
        let vf_disk = wait_vf_disk(vf1)?;
        let data = pattern(64 << 10, 0x1f1f);
        Direct::open()?.write_at(6 << 20, &data)?;
        let mark = kmsg::mark()?;
        let run = fio_until_eio(&vf_disk);
        let _ = stop_injection_on(&vf_disk);
        run?;
        let given_up: Vec<String> = kmsg::since(mark)?
            .into_iter()
            .filter(|l| l.contains("giving the controller up"))
            .collect();
        ensure(
            given_up.len() == 1 && given_up[0].contains(&vf1.bdf),
            || format!("not VF 1 alone was given up: {given_up:?}"),
        )?;
        let back = Direct::open()?.read_at(6 << 20, data.len())?;
        ensure(back == data, || {
            "the PF's data changed when VF 1 was given up".into()
        })?;
        set_mode(vf2, "vfio")?;
        vfio_queue_works(vf2)
    })
}
