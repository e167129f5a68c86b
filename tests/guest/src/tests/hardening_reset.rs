// SPDX-License-Identifier: GPL-2.0

//! Controller resets (`NVME_IOCTL_RESET`) where they hurt: while fio writes and verifies
//! the PF's disk, and while a VF switches between its two modes (the PF's controller reset,
//! which takes the secondary controllers offline, and the VF's own). Every reset returns
//! (success, or `EBUSY` while one runs), fio's checksums hold, every switch completes or is
//! refused leaving the VF in one consistent mode, and the VF's data reads back in whatever
//! mode it ends up in. Request timeouts by fault injection are `recovery/*`.

use std::{fs, os::fd::AsRawFd, sync::mpsc, thread, time::Duration};

use crate::fixture::{check_mode, load_fresh, mode_path, read_mode, with_vfs};
use crate::{
    disk::{pattern, Direct},
    harness::{ensure, wait_until, Env, Report, Test},
    kmsg,
    module::{self, RNVME},
    nvme_ioctl,
    pci::Function,
    sriov::{vf_disk, write_attr, CHARDEV},
    tests::{
        hardening::Campaign,
        vfio::{disk_ios, wait_vf_disk, FioVerify, FIO_BOUND},
    },
    vfio_client::{Client, Path},
};

/// The reset campaigns.
pub fn tests() -> Vec<Test> {
    vec![
        Test {
            name: "hardening/reset-during-fio-verify",
            groups: &["hardening", "recovery"],
            run: reset_during_fio,
        },
        Test {
            name: "hardening/reset-during-mode-switch",
            groups: &["hardening", "vfio"],
            run: reset_during_switch,
        },
    ]
}

/// `NVME_IOCTL_RESET`.
const RESET: libc::c_ulong = 0x4e44;

/// How long a switch or a reset may take (TCG).
const SETTLE: Duration = Duration::from_secs(60);

/// Resets the controller of character device `dev`; the errno if refused.
fn reset(dev: &str) -> Result<(), i32> {
    let f = fs::File::open(dev).map_err(|e| e.raw_os_error().unwrap_or(0))?;
    nvme_ioctl::ioctl(f.as_raw_fd(), RESET, std::ptr::null_mut()).map(|_| ())
}

/// fio writing 32 MiB of `disk` with checksummed blocks and verifying them; with
/// `verify_only` it reads the same blocks back and checks them.
const RESET_VERIFY: FioVerify = FioVerify {
    name: "reset",
    iodepth: 16,
    size: "32M",
    output: "--output=/dev/null",
};

fn reset_during_fio(env: &Env) -> Result<Vec<Report>, String> {
    load_fresh(env)?;
    let mark = kmsg::mark()?;
    let result = (|| {
        let disk = crate::disk::DISK;
        let mut c = Campaign::start("reset during fio verify")?;
        let mut fio = RESET_VERIFY.spawn(disk, SETTLE)?;
        let started = fio.started;
        let mut done = 0;
        // Each reset only once fio has completed I/O since the last one.
        while started && done < 8 && fio.running()? {
            let ios = disk_ios(disk);
            let r = reset(CHARDEV);
            c.count(&r);
            match r {
                Ok(()) => done += 1,
                Err(libc::EBUSY) => {}
                Err(e) => {
                    fio.kill();
                    return Err(format!("reset during fio: errno {e}"));
                }
            }
            wait_until(SETTLE, || {
                disk_ios(disk) > ios || !matches!(fio.running(), Ok(true))
            });
        }
        fio.finish(FIO_BOUND, "across the resets")?;
        ensure(started, || "fio never did any I/O".into())?;
        ensure(done >= 3, || {
            format!("only {done} resets happened while fio ran")
        })?;
        // Everything fio wrote reads back once more, after the last reset.
        module::run(
            "fio",
            &RESET_VERIFY
                .args(disk, true)
                .iter()
                .map(String::as_str)
                .collect::<Vec<_>>(),
        )?;
        let resets = kmsg::count_since(mark, "controller reset complete")?;
        ensure(resets >= done, || {
            format!("{done} resets returned but {resets} were logged complete")
        })?;
        println!("# {done} controller resets completed during fio");
        c.finish()
    })();
    module::rmmod(RNVME)?;
    result.map(|()| vec![])
}

/// The VF's mode as its attribute shows it.
fn shown_mode(vf: &Function) -> Result<&'static str, String> {
    match read_mode(vf)?.as_str() {
        "[nvme] vfio\n" => Ok("nvme"),
        "nvme [vfio]\n" => Ok("vfio"),
        other => Err(format!("mode shows {other:?}")),
    }
}

/// Checks the VF's namespace-2 page 0 is `want`, through its disk or through VFIO.
fn check_data(vf: &Function, mode: &str, want: &[u8]) -> Result<(), String> {
    if mode == "nvme" {
        let disk = wait_vf_disk(vf)?;
        let got = Direct::open_path(&disk)?.read_at(0, want.len())?;
        ensure(got == want, || "the VF disk's data changed".into())
    } else {
        let mut c = Client::open(&vf.bdf, Path::Container).map_err(String::from)?;
        c.create_io_queue()?;
        let lba = c.lba_size(2)?;
        let got = c.read_page(2, 0, lba)?;
        ensure(got == want, || {
            "the VF's data read through VFIO changed".into()
        })
    }
}

fn reset_during_switch(env: &Env) -> Result<Vec<Report>, String> {
    with_vfs(env, 1, true, |_pf, vfs| {
        let vf = vfs[0].clone();
        let disk = wait_vf_disk(&vf)?;
        let data = pattern(4096, 0x5e7);
        Direct::open_path(&disk)?.write_at(0, &data)?;
        let mut c = Campaign::start("reset during mode switch")?;
        let (mut switched, mut refused) = (0, 0);
        // The PF reset in both directions, the VF's own controller reset on its way out of
        // block mode.
        for (i, own) in [false, false, true, false, false, false, true, false]
            .into_iter()
            .enumerate()
        {
            let from = shown_mode(&vf)?;
            let to = if from == "nvme" { "vfio" } else { "nvme" };
            let dev = match (own, vf_disk(&vf, "2")) {
                // rnvme1n2 -> rnvme1
                (true, Some(d)) if from == "nvme" => {
                    d.rsplit_once('n').map_or(d.clone(), |(c, _)| c.to_string())
                }
                _ => CHARDEV.to_string(),
            };
            // The switch in a thread of its own (not scoped: a switch that never returns
            // must fail the test, not hang it), the reset here at the same time.
            let (tx, rx) = mpsc::channel();
            let path = mode_path(&vf);
            thread::spawn(move || {
                let _ = tx.send(write_attr(&path, to));
            });
            let r = reset(&dev);
            c.count(&r);
            let s = rx
                .recv_timeout(SETTLE)
                .map_err(|_| format!("round {i}: echo {to} > mode did not return"))?;
            c.count(&s);
            // The VF's own controller node goes away with its block mode: if the switch
            // gets there first, the open finds no node (ENOENT). The PF's must always be there.
            ensure(
                matches!(r, Ok(()) | Err(libc::EBUSY | libc::ENODEV))
                    || (dev != CHARDEV && r == Err(libc::ENOENT)),
                || format!("round {i}: reset of {dev} while switching to {to}: {r:?}"),
            )?;
            let now = shown_mode(&vf)?;
            match s {
                Ok(()) => {
                    switched += 1;
                    ensure(now == to, || {
                        format!("round {i}: the switch to {to} succeeded, mode shows {now}")
                    })?
                }
                Err(libc::EBUSY | libc::EIO) => {
                    refused += 1;
                    ensure(now == from, || {
                        format!("round {i}: the switch to {to} failed, mode shows {now}")
                    })?
                }
                Err(e) => return Err(format!("round {i}: echo {to} > mode: errno {e}")),
            }
            check_mode(&vf, now)?;
            check_data(&vf, now, &data).map_err(|e| format!("round {i} ({now}): {e}"))?;
        }
        c.finish()?;
        println!("# {switched} switches completed, {refused} refused during a reset");
        // No request may have waited for its timeout: a VF that came up while the PF was
        // reset must not be left with a controller the reset disabled under it.
        let stalled = kmsg::count_since(c.mark(), "timed out")?;
        ensure(stalled == 0, || {
            format!("{stalled} request(s) timed out during the switches (a VF probed during a PF reset)")
        })?;
        ensure(switched >= 1, || "no switch completed".into())?;
        // It still switches without a reset, its data intact.
        if shown_mode(&vf)? == "vfio" {
            write_attr(&mode_path(&vf), "nvme").map_err(|e| format!("to nvme: errno {e}"))?;
        }
        check_mode(&vf, "nvme")?;
        check_data(&vf, "nvme", &data)
    })
}
