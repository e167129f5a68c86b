// SPDX-License-Identifier: GPL-2.0

//! SR-IOV from the PF: `sriov_numvfs` enables VFs whose secondary controllers the driver
//! brings online with their share of the flexible resources; the VFs run as disks; disable
//! refuses while a VF disk is in use; a PF reset brings the VFs back; bad values fail.

use std::{
    fs,
    path::PathBuf,
    process::{Command, Stdio},
    time::Duration,
};

use crate::fixture::with_loaded;
use crate::{
    disk::{pattern, Direct},
    harness::{ensure, wait_until, Env, Report, Test},
    kmsg,
    module::{self, RNVME},
    pci::Function,
    sriov::{list_secondary, numvfs, numvfs_path, set_numvfs, vf_disk, vfs, write_attr, CHARDEV},
};

/// The shared namespace the VFs get.
const NSID: &str = "2";

/// Its size: every VF writes its own slice of it.
const NS_BYTES: u64 = 256 << 20;

/// How long VF disks may take to appear or go (TCG).
const SETTLE: Duration = Duration::from_secs(30);

/// The SR-IOV tests.
pub fn tests() -> Vec<Test> {
    vec![
        Test {
            name: "sriov/enable-fio-disable",
            groups: &["sriov"],
            run: enable_fio_disable,
        },
        Test {
            name: "sriov/enable-disable-20-cycles",
            groups: &["sriov", "stress"],
            run: cycles,
        },
        Test {
            name: "sriov/disable-while-mounted-is-busy",
            groups: &["sriov"],
            run: disable_while_mounted,
        },
        Test {
            name: "sriov/pf-reset-restores-vfs",
            groups: &["sriov", "recovery"],
            run: pf_reset_restores_vfs,
        },
        Test {
            name: "sriov/bad-values",
            groups: &["sriov"],
            run: bad_values,
        },
    ]
}

/// Enables `n` VFs, checks each is bound to rnvme with its secondary controller online and
/// resourced, attaches namespace 2 to each and waits for their disks.
fn enable_checked(pf: &Function, n: u16) -> Result<Vec<String>, String> {
    set_numvfs(pf, n)?;
    let vfs = vfs(pf)?;
    ensure(vfs.len() == usize::from(n), || {
        format!("{} VFs appeared, wanted {n}", vfs.len())
    })?;
    for vf in &vfs {
        ensure(vf.driver().as_deref() == Some(RNVME), || {
            format!("VF {} is bound to {:?}", vf.bdf, vf.driver())
        })?;
    }
    let secondaries = list_secondary()?;
    for vfn in 1..=u64::from(n) {
        let s = secondaries
            .iter()
            .find(|s| s.vfn == vfn)
            .ok_or_else(|| format!("no secondary controller for VF {vfn}"))?;
        // The test device: 24 flexible queues, 16 vectors, at most 3 and 2 per VF.
        ensure(s.online && s.nvq == 3 && s.nvi == 2, || {
            format!("VF {vfn}: secondary controller {s:?}, want online with 3 VQ and 2 VI")
        })?;
        if vf_disk(&vfs[vfn as usize - 1], NSID).is_none() {
            let c = s.scid.to_string();
            module::run("nvme", &["attach-ns", CHARDEV, "-n", NSID, "-c", &c])?;
        }
    }
    let mut disks = Vec::new();
    for vf in &vfs {
        ensure(wait_until(SETTLE, || vf_disk(vf, NSID).is_some()), || {
            format!("VF {} got no disk for namespace {NSID}", vf.bdf)
        })?;
        disks.extend(vf_disk(vf, NSID));
    }
    Ok(disks)
}

/// Detaches namespace 2 from every VF's controller (while the VFs exist) and disables them.
fn detach_and_disable(pf: &Function) -> Result<(), String> {
    if numvfs(pf)? > 0 {
        // Only where it is attached (the VF has the disk): QEMU's controller aborts on a
        // detach from a controller the namespace is not attached to.
        let secondaries = list_secondary()?;
        for (i, vf) in vfs(pf)?.iter().enumerate() {
            let vfn = i as u64 + 1;
            let scid = secondaries.iter().find(|s| s.vfn == vfn).map(|s| s.scid);
            if let (Some(scid), Some(_)) = (scid, vf_disk(vf, NSID)) {
                let c = scid.to_string();
                module::run("nvme", &["detach-ns", CHARDEV, "-n", NSID, "-c", &c])?;
            }
        }
    }
    set_numvfs(pf, 0)
}

/// Checks that VFs are gone and their secondary controllers offline without resources.
fn check_disabled(pf: &Function) -> Result<(), String> {
    ensure(numvfs(pf)? == 0 && vfs(pf)?.is_empty(), || {
        "VFs still present after echo 0".into()
    })?;
    let left: Vec<_> = list_secondary()?
        .into_iter()
        .filter(|s| s.online || s.nvq != 0 || s.nvi != 0)
        .collect();
    ensure(left.is_empty(), || {
        format!("secondary controllers still online or resourced: {left:?}")
    })
}

/// Runs `f` with the rnvme module loaded on the PF and cleans up whatever happened.
fn with_pf(
    env: &Env,
    f: impl FnOnce(&Function) -> Result<(), String>,
) -> Result<Vec<Report>, String> {
    with_loaded(env, |pf| {
        let result = f(pf);
        let cleanup = detach_and_disable(pf);
        result.and(cleanup)
    })
}

fn enable_fio_disable(env: &Env) -> Result<Vec<Report>, String> {
    with_pf(env, |pf| {
        for n in [1u16, 4, 8] {
            let disks = enable_checked(pf, n)?;
            // fio verify on every VF at once, each in its own slice of the namespace.
            let slice = NS_BYTES / u64::from(n);
            let mut children = Vec::new();
            for (i, disk) in disks.iter().enumerate() {
                let child = Command::new("fio")
                    .args([
                        "--name=vf",
                        &format!("--filename={disk}"),
                        "--direct=1",
                        "--ioengine=libaio",
                        "--rw=randwrite",
                        "--bsrange=4k-256k",
                        "--iodepth=8",
                        &format!("--offset={}", i as u64 * slice),
                        &format!("--size={}", (slice / 2).min(16 << 20)),
                        "--verify=crc32c",
                        "--verify_fatal=1",
                        "--do_verify=1",
                        "--output-format=terse",
                    ])
                    .stdout(Stdio::piped())
                    .stderr(Stdio::piped())
                    .spawn();
                children.push((disk.clone(), child));
            }
            for (disk, child) in children {
                let out = child
                    .and_then(|c| c.wait_with_output())
                    .map_err(|e| format!("fio on {disk}: {e}"))?;
                ensure(out.status.success(), || {
                    format!(
                        "{n} VFs: fio verify on {disk} failed: {}",
                        String::from_utf8_lossy(&out.stderr)
                    )
                })?;
            }
            detach_and_disable(pf)?;
            check_disabled(pf)?;
        }
        Ok(())
    })
}

fn cycles(env: &Env) -> Result<Vec<Report>, String> {
    with_pf(env, |pf| {
        for cycle in 0..20 {
            set_numvfs(pf, 8).map_err(|e| format!("cycle {cycle}: {e}"))?;
            let bound = vfs(pf)?
                .iter()
                .filter(|vf| vf.driver().as_deref() == Some(RNVME))
                .count();
            let online = list_secondary()?.iter().filter(|s| s.online).count();
            ensure(bound == 8 && online == 8, || {
                format!("cycle {cycle}: {bound} VFs bound, {online} controllers online")
            })?;
            set_numvfs(pf, 0).map_err(|e| format!("cycle {cycle}: {e}"))?;
            check_disabled(pf).map_err(|e| format!("cycle {cycle}: {e}"))?;
        }
        Ok(())
    })
}

fn disable_while_mounted(env: &Env) -> Result<Vec<Report>, String> {
    with_pf(env, |pf| {
        let disks = enable_checked(pf, 1)?;
        let disk = &disks[0];
        let mnt = "/tmp/sriov-mnt";
        fs::create_dir_all(mnt).map_err(|e| format!("{mnt}: {e}"))?;
        module::run("mkfs.ext4", &["-q", "-F", disk])?;
        module::run("mount", &[disk, mnt])?;
        let data = pattern(1 << 20, 0x5e1f);
        let file = format!("{mnt}/data");
        let checks = (|| {
            fs::write(&file, &data).map_err(|e| format!("{file}: {e}"))?;
            let got = write_attr(&numvfs_path(pf), "0");
            ensure(got == Err(libc::EBUSY), || {
                format!("echo 0 while mounted: got {got:?}, want EBUSY")
            })?;
            ensure(
                numvfs(pf)? == 1 && vf_disk(&vfs(pf)?[0], NSID).is_some(),
                || "the VF or its disk went away after the refused disable".into(),
            )?;
            let back = fs::read(&file).map_err(|e| format!("{file}: {e}"))?;
            ensure(back == data, || {
                "file changed after the refused disable".into()
            })
        })();
        let umount = module::run("umount", &[mnt]);
        checks?;
        umount?;
        Ok(())
    })
}

fn pf_reset_restores_vfs(env: &Env) -> Result<Vec<Report>, String> {
    with_pf(env, |pf| {
        let disks = enable_checked(pf, 2)?;
        let mut first = Direct::open_path(&disks[0])?;
        let data = pattern(64 << 10, 0xf0);
        first.write_at(0, &data)?;

        let mark = kmsg::mark()?;
        module::run("nvme", &["reset", CHARDEV])?;
        let restored = wait_until(SETTLE, || {
            kmsg::since(mark)
                .map(|l| l.iter().filter(|l| l.contains("online again")).count() == 2)
                .unwrap_or(false)
        });
        ensure(restored, || {
            "the VFs' controllers were not brought back online".into()
        })?;
        ensure(
            list_secondary()?.iter().filter(|s| s.online).count() == 2,
            || "secondary controllers not online after the PF reset".into(),
        )?;

        // I/O resumes on both VFs: the data written before the reset is there, new data
        // goes through.
        for (i, disk) in disks.iter().enumerate() {
            let mut d = Direct::open_path(disk)?;
            if i == 0 {
                ensure(d.read_at(0, data.len())? == data, || {
                    format!("{disk}: data written before the PF reset is gone")
                })?;
            }
            let fresh = pattern(16 << 10, 0xf1 + i as u64);
            let at = (64 << 20) * (i as u64 + 1);
            d.write_at(at, &fresh)?;
            ensure(d.read_at(at, fresh.len())? == fresh, || {
                format!("{disk}: I/O after the PF reset reads back differently")
            })?;
        }
        Ok(())
    })
}

fn bad_values(env: &Env) -> Result<Vec<Report>, String> {
    with_pf(env, |pf| {
        let path = numvfs_path(pf);
        for (value, errno) in [
            ("999", libc::ERANGE),
            ("-1", libc::EINVAL),
            ("abc", libc::EINVAL),
            ("\n", libc::EINVAL),
        ] {
            let got = write_attr(&path, value);
            ensure(got == Err(errno), || {
                format!("echo {value:?} > sriov_numvfs: got {got:?}, want errno {errno}")
            })?;
            ensure(numvfs(pf)? == 0, || format!("{value:?} enabled VFs"))?;
        }

        // Module parameters are validated when written...
        let param = |name: &str| PathBuf::from(format!("/sys/module/{RNVME}/parameters/{name}"));
        for (name, value) in [
            ("vf_queues", "1"),
            ("vf_queues", "x"),
            ("vf_vectors", "9999"),
        ] {
            let got = write_attr(&param(name), value);
            ensure(got == Err(libc::EINVAL), || {
                format!("{name}={value}: got {got:?}, want EINVAL")
            })?;
        }
        // ...and against the controller when VFs are enabled: 4 queues per VF exceed the
        // test device's maximum of 3, so nothing is enabled or half-configured.
        write_attr(&param("vf_queues"), "4").map_err(|e| format!("vf_queues=4: errno {e}"))?;
        let got = write_attr(&path, "2");
        let _ = write_attr(&param("vf_queues"), "0");
        ensure(got == Err(libc::EINVAL), || {
            format!("2 VFs with vf_queues=4: got {got:?}, want EINVAL")
        })?;
        check_disabled(pf)?;

        // A second enable while VFs are enabled is refused and changes nothing.
        set_numvfs(pf, 2)?;
        let got = write_attr(&path, "4");
        ensure(got == Err(libc::EBUSY), || {
            format!("echo 4 with 2 VFs enabled: got {got:?}, want EBUSY")
        })?;
        ensure(numvfs(pf)? == 2, || {
            "the refused enable changed the VF count".into()
        })
    })
}
