// SPDX-License-Identifier: GPL-2.0

//! Resets of the PCI function under the block driver (`echo 1 > .../<BDF>/reset`, an FLR):
//! the driver's `reset_prepare` takes the controller out of service and `reset_done`
//! brings it back, so the next read is fast and nothing in flight is lost; on a PF the
//! VFs (whose functions the PF's FLR resets too) come back in block mode, and a VF in
//! vfio mode can be switched back to block mode afterwards.

use std::time::{Duration, Instant};

use crate::fixture::{check_mode, load_fresh, set_mode, with_vfs};
use crate::{
    disk::{pattern, Direct, DISK},
    harness::{ensure, wait_until, Env, Report, Test},
    kmsg,
    module::{self, RNVME},
    pci::Function,
    sriov::write_attr,
    tests::vfio::{disk_ios, wait_vf_disk, FioVerify, FIO_BOUND},
    vfio_client::{Client, Path},
};

/// The function reset tests.
pub fn tests() -> Vec<Test> {
    vec![
        Test {
            name: "recovery/function-reset-idle",
            groups: &["recovery", "block"],
            run: reset_idle,
        },
        Test {
            name: "recovery/function-reset-under-fio-verify",
            groups: &["recovery", "block"],
            run: reset_under_fio,
        },
        Test {
            name: "recovery/function-reset-with-vfs-in-both-modes",
            groups: &["recovery", "vfio"],
            run: reset_with_vfs,
        },
    ]
}

/// How long a reset or the first read after it may take (TCG). Without the driver's
/// reset handlers the first read after a reset took 41 s (a request timeout and a
/// controller reset).
const FAST: Duration = Duration::from_secs(10);

/// How long fio may take to make progress (TCG).
const SETTLE: Duration = Duration::from_secs(60);

/// Resets PCI function `f` through sysfs (the PCI core picks FLR here).
pub(crate) fn function_reset(f: &Function) -> Result<(), String> {
    write_attr(&f.dir().join("reset"), "1")
        .map_err(|e| format!("echo 1 > {}/reset: errno {e}", f.bdf))
}

/// Reads `want.len()` bytes at `offset` of `disk` and checks them, within [`FAST`].
fn read_back_fast(disk: &str, offset: u64, want: &[u8], what: &str) -> Result<(), String> {
    let t = Instant::now();
    let got = Direct::open_path(disk)?.read_at(offset, want.len())?;
    let took = t.elapsed();
    ensure(got == want, || {
        format!("{what}: the data read back differs")
    })?;
    ensure(took < FAST, || {
        format!("{what}: the first read took {} ms", took.as_millis())
    })
}

/// The PF's function reset with the driver idle: logged as such, the controller comes
/// back, the next read is fast and returns the data written before.
fn reset_idle(env: &Env) -> Result<Vec<Report>, String> {
    let pf = load_fresh(env)?;
    let result = (|| {
        let data = pattern(128 << 10, 0xf1f1);
        Direct::open()?.write_at(4 << 20, &data)?;
        let mark = kmsg::mark()?;
        function_reset(&pf)?;
        read_back_fast(DISK, 4 << 20, &data, "after the function reset")?;
        ensure(
            kmsg::count_since(mark, "resetting controller: function reset")? == 1,
            || "the driver was not told of the function reset".into(),
        )?;
        ensure(
            kmsg::count_since(mark, "controller reset complete")? == 1,
            || "the controller did not come back from the function reset".into(),
        )?;
        ensure(kmsg::count_since(mark, "timed out")? == 0, || {
            "a request timed out across the function reset".into()
        })
    })();
    module::rmmod(RNVME)?;
    result.map(|()| vec![])
}

/// fio writing and verifying 32 MiB of the PF's disk while the PF's function is reset
/// three times: fio's checksums hold, it never stalls, nothing times out.
const FLR_VERIFY: FioVerify = FioVerify {
    name: "flr",
    iodepth: 16,
    size: "32M",
    output: "--output=/dev/null",
};

fn reset_under_fio(env: &Env) -> Result<Vec<Report>, String> {
    let pf = load_fresh(env)?;
    let mark = kmsg::mark()?;
    let result = (|| {
        let mut fio = FLR_VERIFY.spawn(DISK, SETTLE)?;
        let started = fio.started;
        let mut done = 0;
        let mut slowest = Duration::ZERO;
        while started && done < 3 && fio.running()? {
            if let Err(e) = function_reset(&pf) {
                fio.kill();
                return Err(e);
            }
            done += 1;
            // fio goes on at once: its I/O was requeued, not left to time out.
            let ios = disk_ios(DISK);
            let t = Instant::now();
            wait_until(SETTLE, || {
                disk_ios(DISK) > ios || !matches!(fio.running(), Ok(true))
            });
            slowest = slowest.max(t.elapsed());
        }
        fio.finish(FIO_BOUND, "across the function resets")?;
        ensure(started, || "fio never did any I/O".into())?;
        ensure(done >= 1, || {
            "no function reset happened while fio ran".into()
        })?;
        ensure(slowest < FAST, || {
            format!(
                "fio made no progress for {} ms after a function reset",
                slowest.as_millis()
            )
        })?;
        module::run(
            "fio",
            &FLR_VERIFY
                .args(DISK, true)
                .iter()
                .map(String::as_str)
                .collect::<Vec<_>>(),
        )?;
        println!(
            "# {done} function resets during fio, fio stalled at most {} ms",
            slowest.as_millis()
        );
        ensure(kmsg::count_since(mark, "timed out")? == 0, || {
            "a request timed out across the function resets".into()
        })?;
        ensure(
            kmsg::count_since(mark, "controller reset complete")? >= done,
            || "not every function reset brought the controller back".into(),
        )
    })();
    module::rmmod(RNVME)?;
    result.map(|()| vec![])
}

/// The PF's function reset with VF 1 in block mode (its disk holding data) and VF 2 in
/// vfio mode: the PF's and VF 1's disks read back their data at once, VF 1's own function
/// reset works too, and VF 2 works through VFIO and switches back to block mode.
fn reset_with_vfs(env: &Env) -> Result<Vec<Report>, String> {
    with_vfs(env, 2, true, |pf, vfs| {
        let (vf1, vf2) = (&vfs[0], &vfs[1]);
        let vf_disk = wait_vf_disk(vf1)?;
        let data = pattern(64 << 10, 0x7f7f);
        Direct::open_path(&vf_disk)?.write_at(1 << 20, &data)?;
        Direct::open()?.write_at(2 << 20, &data)?;
        set_mode(vf2, "vfio")?;
        check_mode(vf2, "vfio")?;
        let mark = kmsg::mark()?;
        function_reset(pf)?;
        read_back_fast(DISK, 2 << 20, &data, "the PF after its function reset")?;
        read_back_fast(
            &vf_disk,
            1 << 20,
            &data,
            "VF 1 after its PF's function reset",
        )?;
        ensure(
            kmsg::count_since(mark, "resetting controller: function reset of its PF")? == 1,
            || "VF 1 was not taken out of service before its PF's function reset".into(),
        )?;
        ensure(
            kmsg::count_since(mark, "controller reset complete")? == 2,
            || "the PF and VF 1 did not both come back".into(),
        )?;
        // VF 1's own function reset.
        function_reset(vf1)?;
        read_back_fast(
            &vf_disk,
            1 << 20,
            &data,
            "VF 1 after its own function reset",
        )?;
        // VF 2 lost its controller's state with the PF's reset: a VFIO user opening it
        // (which resets the function) brings its controller up again, and it switches
        // back to block mode (it has no namespace: its controller binds without a disk).
        vfio_queue_works(vf2)?;
        set_mode(vf2, "nvme")?;
        check_mode(vf2, "nvme")?;
        ensure(kmsg::count_since(mark, "timed out")? == 0, || {
            "a request timed out across the function resets".into()
        })
    })
}

/// Opens VF `vf` (in vfio mode) through VFIO as a userspace driver and creates an I/O
/// queue pair on its controller: the VF's function and controller work.
pub(crate) fn vfio_queue_works(vf: &Function) -> Result<(), String> {
    let mut c = Client::open(&vf.bdf, Path::Container).map_err(String::from)?;
    c.create_io_queue()
        .map_err(|e| format!("{}: no I/O queue through VFIO: {e}", vf.bdf))
}
