// SPDX-License-Identifier: GPL-2.0

//! VFIO mode: the `mode` attribute of a VF and `sriov_vf_mode` of the PF; switching a VF
//! between its block life and its VFIO life with its data intact; VFs coming up directly
//! in vfio mode without a block probe; a userspace NVMe driver reaching the VF through
//! both VFIO paths (the legacy container and group, and the iommufd device cdev), which
//! exclude each other; refusals while a VF is in use.

use std::{
    fs,
    io::Read,
    os::unix::fs::{FileTypeExt, MetadataExt},
    path::PathBuf,
    process::{Child, Command, Stdio},
    sync::atomic::{AtomicBool, Ordering},
    thread,
    time::Duration,
};

use crate::fixture::{
    check_mode, load_fresh, mode_path, read_mode, set_mode, with_loaded, with_vfs, NSID, RNVME_VFIO,
};
use crate::{
    disk::{pattern, Direct},
    harness::{ensure, wait_until, Env, Report, Test},
    kmsg,
    module::{self, RNVME},
    pci::Function,
    sriov::{list_secondary, numvfs, numvfs_path, set_numvfs, vf_disk, vfs, write_attr},
    vfio_client::{self, Client, Path},
    vfio_migration,
};

/// How long VF disks may take to appear or go (TCG).
const SETTLE: Duration = Duration::from_secs(30);

/// How long a fio verify job of the tests may run (the debug kernel under TCG is slow).
pub(crate) const FIO_BOUND: Duration = Duration::from_secs(600);

/// The VFIO mode tests.
pub fn tests() -> Vec<Test> {
    vec![
        Test {
            name: "vfio/mode-attributes",
            groups: &["vfio"],
            run: mode_attributes,
        },
        Test {
            name: "vfio/switch-keeps-data-both-ways",
            groups: &["vfio"],
            run: switch_keeps_data,
        },
        Test {
            name: "vfio/cdev-and-group-exclusive",
            groups: &["vfio"],
            run: cdev_and_group_exclusive,
        },
        Test {
            name: "vfio/vfs-come-up-in-vfio-mode",
            groups: &["vfio"],
            run: direct_vfio,
        },
        Test {
            name: "vfio/in-use-is-busy",
            groups: &["vfio"],
            run: in_use_is_busy,
        },
        Test {
            name: "vfio/switch-during-fio",
            groups: &["vfio"],
            run: switch_during_fio,
        },
        Test {
            name: "vfio/unload-with-vfs-in-vfio-mode",
            groups: &["vfio"],
            run: unload_in_vfio_mode,
        },
        Test {
            name: "vfio/500-toggles",
            groups: &["vfio", "stress"],
            run: toggles,
        },
    ]
}

/// Checks that VF `vf` of `pf`, whose VFIO device is open (`held` says by whom), is busy:
/// switching it to nvme and disabling the VFs are refused with `EBUSY` and change nothing,
/// and the module cannot be unloaded.
pub(crate) fn check_held(pf: &Function, vf: &Function, held: &str) -> Result<(), String> {
    let got = write_attr(&mode_path(vf), "nvme");
    ensure(got == Err(libc::EBUSY), || {
        format!("echo nvme > mode {held}: got {got:?}, want EBUSY")
    })?;
    check_mode(vf, "vfio")?;
    let before = numvfs(pf)?;
    let got = write_attr(&numvfs_path(pf), "0");
    ensure(got == Err(libc::EBUSY), || {
        format!("echo 0 > sriov_numvfs {held}: got {got:?}, want EBUSY")
    })?;
    ensure(numvfs(pf)? == before, || {
        format!("VFs were disabled {held}")
    })?;
    // An open VFIO device holds the module of its driver.
    ensure(module::rmmod(RNVME).is_err(), || {
        format!("rmmod succeeded {held}")
    })?;
    check_mode(vf, "vfio")
}

fn mode_attributes(env: &Env) -> Result<Vec<Report>, String> {
    with_vfs(env, 1, false, |pf, vfs| {
        let vf = &vfs[0];
        check_mode(vf, "nvme")?;
        let pf_attr = pf.dir().join("sriov_vf_mode");
        let shown = fs::read_to_string(&pf_attr).map_err(|e| format!("sriov_vf_mode: {e}"))?;
        ensure(shown == "[nvme] vfio\n", || {
            format!("sriov_vf_mode shows {shown:?}")
        })?;

        // Garbage is refused and changes nothing.
        for bad in [
            "", "\n", "VFIO", " vfio", "vfio \n", "vfio\n\n", "vfio-pci", "nvme\0", "block",
        ] {
            for path in [mode_path(vf), pf_attr.clone()] {
                let got = write_attr(&path, bad);
                // An empty write never reaches the driver.
                let want = if bad.is_empty() {
                    Ok(())
                } else {
                    Err(libc::EINVAL)
                };
                ensure(got == want, || {
                    format!("{bad:?} > {}: got {got:?}, want {want:?}", path.display())
                })?;
            }
            check_mode(vf, "nvme")?;
        }
        // Writing the current mode is a no-op that succeeds: nothing is unbound.
        let mark = kmsg::mark()?;
        set_mode(vf, "nvme")?;
        set_mode(vf, "nvme\n")?;
        let log = kmsg::since(mark)?;
        ensure(!log.iter().any(|l| l.contains("unbinding")), || {
            format!("writing the current mode unbound the VF: {log:?}")
        })?;
        check_mode(vf, "nvme")?;

        write_attr(&pf_attr, "vfio\n").map_err(|e| format!("sriov_vf_mode=vfio: errno {e}"))?;
        let shown = fs::read_to_string(&pf_attr).map_err(|e| format!("sriov_vf_mode: {e}"))?;
        ensure(shown == "nvme [vfio]\n", || {
            format!("sriov_vf_mode shows {shown:?}")
        })?;
        // Existing VFs keep their mode.
        check_mode(vf, "nvme")
    })
}

fn switch_keeps_data(env: &Env) -> Result<Vec<Report>, String> {
    with_vfs(env, 1, true, |_pf, vfs| {
        let vf = &vfs[0];
        let disk = wait_vf_disk(vf)?;
        let written_by_block = pattern(4096, 0xb10c);
        Direct::open_path(&disk)?.write_at(0, &written_by_block)?;

        // To vfio mode: the disk goes, the VF is a VFIO device in a group of its own.
        set_mode(vf, "vfio")?;
        check_mode(vf, "vfio")?;
        ensure(vf_disk(vf, "2").is_none(), || {
            "the VF disk is still there in vfio mode".into()
        })?;
        let group =
            fs::read_link(vf.dir().join("iommu_group")).map_err(|e| format!("iommu_group: {e}"))?;
        let members = fs::read_dir(vf.dir().join("iommu_group/devices"))
            .map_err(|e| format!("iommu group devices: {e}"))?
            .count();
        ensure(members == 1, || {
            format!("the VF's IOMMU group has {members} devices")
        })?;
        let group_dev = PathBuf::from("/dev/vfio").join(group.file_name().unwrap_or_default());
        ensure(group_dev.exists(), || {
            format!("{} is missing", group_dev.display())
        })?;

        // A userspace driver reaches the controller through each VFIO path in turn: each
        // reads what was written before it (by the block driver, then through the other
        // path) and writes a page the block driver must read back.
        let written_by_container = pattern(4096, 0xf10);
        let written_by_cdev = pattern(4096, 0xcde7);
        vfio_io(
            vf,
            Path::Container,
            &[(0, &written_by_block)],
            (1 << 20, &written_by_container),
        )?;
        vfio_io(
            vf,
            Path::Cdev,
            &[(0, &written_by_block), (1 << 20, &written_by_container)],
            (2 << 20, &written_by_cdev),
        )?;

        // Back to block mode: the disk returns with all three writes.
        set_mode(vf, "nvme")?;
        check_mode(vf, "nvme")?;
        let disk = wait_vf_disk(vf)?;
        let mut d = Direct::open_path(&disk)?;
        ensure(d.read_at(0, 4096)? == written_by_block, || {
            "block data changed across the round trip".into()
        })?;
        ensure(d.read_at(1 << 20, 4096)? == written_by_container, || {
            "data written through the VFIO container path does not read back through the block \
             device"
                .into()
        })?;
        ensure(d.read_at(2 << 20, 4096)? == written_by_cdev, || {
            "data written through the VFIO cdev path does not read back through the block device"
                .into()
        })
    })
}

/// Opens the VF through `path` and drives the controller through it: VS and Identify
/// Controller as QEMU reports them, an I/O queue pair, each `(offset, page)` of `expect`
/// read back, then `write.1` written at byte `write.0` and read back.
fn vfio_io(
    vf: &Function,
    path: Path,
    expect: &[(u64, &[u8])],
    write: (u64, &[u8]),
) -> Result<(), String> {
    (|| {
        let mut c = Client::open(&vf.bdf, path)?;
        let devid = c.iommufd_dev_id();
        ensure(devid.is_some() == (path == Path::Cdev), || {
            format!("iommufd device ID {devid:?}")
        })?;
        let vs = c.version();
        ensure(vs == 0x0001_0400, || format!("VS is {vs:#x}"))?;
        let id = c.identify()?;
        ensure(
            id.serial == "RNVME0001" && id.model == "QEMU NVMe Ctrl",
            || format!("Identify: {id:?}"),
        )?;
        let lba = c.lba_size(NSID)?;
        c.create_io_queue()?;
        for &(at, want) in expect {
            ensure(c.read_page(NSID, at, lba)? == want, || {
                format!("the page at {at} differs from what was written there before")
            })?;
        }
        let (at, data) = write;
        c.write_page(NSID, at, lba, data)?;
        ensure(c.read_page(NSID, at, lba)? == data, || {
            format!("the page written at {at} does not read back")
        })
    })()
    .map_err(|e: String| format!("{} through the {path:?} path: {e}", vf.bdf))
}

/// A VF in vfio mode has a device cdev next to its group. While the device is open through
/// one path, opening it through the other is refused with `EBUSY` (the kernel's
/// `vfio_device_block_group`: binding the cdev to an iommufd fails while the group file is
/// open, and opening the group fails while a cdev is bound), and the VF is busy. Each
/// path opens again once the other is closed.
fn cdev_and_group_exclusive(env: &Env) -> Result<Vec<Report>, String> {
    with_vfs(env, 1, false, |pf, vfs| {
        let vf = &vfs[0];
        set_mode(vf, "vfio")?;
        check_mode(vf, "vfio")?;
        let node = vfio_client::cdev(&vf.bdf)?;
        let meta = fs::metadata(&node).map_err(|e| format!("{}: {e}", node.display()))?;
        let sys_dev = vf
            .dir()
            .join("vfio-dev")
            .join(node.file_name().unwrap_or_default())
            .join("dev");
        let want =
            fs::read_to_string(&sys_dev).map_err(|e| format!("{}: {e}", sys_dev.display()))?;
        let rdev = meta.rdev();
        let got = format!("{}:{}\n", libc::major(rdev), libc::minor(rdev));
        ensure(meta.file_type().is_char_device() && got == want, || {
            format!(
                "{} is {:?} {got:?}, sysfs says {want:?}",
                node.display(),
                meta.file_type()
            )
        })?;

        for (first, second) in [(Path::Cdev, Path::Container), (Path::Container, Path::Cdev)] {
            let mut c = Client::open(&vf.bdf, first)
                .map_err(|e| format!("open through the {first:?} path: {e}"))?;
            match Client::open(&vf.bdf, second) {
                Ok(_) => {
                    return Err(format!(
                        "the {second:?} path opened the device while the {first:?} path had it"
                    ))
                }
                Err(e) => ensure(e.errno == Some(libc::EBUSY), || {
                    format!("{second:?} path with the {first:?} path open: {e}; want EBUSY")
                })?,
            }
            // The refused open left the device working for its user.
            let id = c
                .identify()
                .map_err(|e| format!("{first:?} path after the refused {second:?} open: {e}"))?;
            ensure(id.serial == "RNVME0001", || {
                format!("{first:?} path: Identify {id:?}")
            })?;
            // Open through either path, the VF is in use.
            check_held(pf, vf, &format!("with the {first:?} path open"))?;
        }
        // The group path was the last to close: the cdev path binds again.
        Client::open(&vf.bdf, Path::Cdev)
            .map_err(|e| format!("cdev path after the group path closed: {e}"))?;
        set_mode(vf, "nvme")?;
        check_mode(vf, "nvme")
    })
}

fn direct_vfio(env: &Env) -> Result<Vec<Report>, String> {
    with_loaded(env, |pf| {
        let pf_attr = pf.dir().join("sriov_vf_mode");
        write_attr(&pf_attr, "vfio").map_err(|e| format!("sriov_vf_mode=vfio: errno {e}"))?;
        let mark = kmsg::mark()?;
        let result = (|| {
            set_numvfs(pf, 8)?;
            let vfs = vfs(pf)?;
            ensure(vfs.len() == 8, || format!("{} VFs, want 8", vfs.len()))?;
            for vf in &vfs {
                check_mode(vf, "vfio")?;
            }
            // No block probe ran: no controller was identified, no disk or controller
            // device appeared for a VF.
            let log = kmsg::since(mark)?;
            let probed: Vec<_> = log
                .iter()
                .filter(|l| l.contains("NVMe VF controller") || l.contains("enabling device"))
                .collect();
            ensure(probed.is_empty(), || {
                format!("VFs were probed in block mode: {probed:?}")
            })?;
            for vf in &vfs {
                ensure(
                    vf_disk(vf, "2").is_none() && !vf.dir().join("block").exists(),
                    || format!("{} has a disk", vf.bdf),
                )?;
            }
            let online = list_secondary()?.iter().filter(|s| s.online).count();
            ensure(online == 8, || {
                format!("{online} secondary controllers online, want 8")
            })?;
            // One of them can still become a disk.
            set_mode(&vfs[7], "nvme")?;
            check_mode(&vfs[7], "nvme")?;
            set_mode(&vfs[7], "vfio")?;
            check_mode(&vfs[7], "vfio")
        })();
        let _ = write_attr(&pf_attr, "nvme");
        result.and(set_numvfs(pf, 0))
    })
}

fn in_use_is_busy(env: &Env) -> Result<Vec<Report>, String> {
    with_vfs(env, 1, true, |pf, vfs| {
        let vf = &vfs[0];
        let disk = wait_vf_disk(vf)?;
        {
            let _open = Direct::open_path(&disk)?;
            let got = write_attr(&mode_path(vf), "vfio");
            ensure(got == Err(libc::EBUSY), || {
                format!("echo vfio with the disk open: got {got:?}, want EBUSY")
            })?;
            check_mode(vf, "nvme")?;
            ensure(vf_disk(vf, "2").is_some(), || "the disk went away".into())?;
        }
        set_mode(vf, "vfio")?;
        {
            let _vmm = Client::open(&vf.bdf, Path::Container)?;
            check_held(pf, vf, "with the VFIO device open")?;
        }
        // Closed: everything is allowed again.
        set_mode(vf, "nvme")?;
        check_mode(vf, "nvme")
    })
}

fn toggles(env: &Env) -> Result<Vec<Report>, String> {
    with_vfs(env, 1, false, |_pf, vfs| {
        let vf = &vfs[0];
        let stop = AtomicBool::new(false);
        let (switched, reads) = thread::scope(|s| {
            // A reader polls `mode` all along: every read must show one of the two
            // modes, never an error or a torn value.
            let reader = s.spawn(|| -> Result<u64, String> {
                let mut reads = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    let shown = read_mode(vf)?;
                    if shown != "[nvme] vfio\n" && shown != "nvme [vfio]\n" {
                        return Err(format!("reader saw {shown:?}"));
                    }
                    reads += 1;
                }
                Ok(reads)
            });
            let switched = (0..500).try_for_each(|i| {
                ["vfio", "nvme"].iter().try_for_each(|&mode| {
                    set_mode(vf, mode).map_err(|e| format!("toggle {i}: {e}"))?;
                    let driver = vf.driver();
                    let want = if mode == "vfio" { RNVME_VFIO } else { RNVME };
                    ensure(driver.as_deref() == Some(want), || {
                        format!("toggle {i}: {mode} mode but bound to {driver:?}")
                    })
                })
            });
            stop.store(true, Ordering::Relaxed);
            let reads = reader
                .join()
                .map_err(|_| "the reader thread panicked".to_string())
                .and_then(|r| r);
            (switched, reads)
        });
        switched?;
        let reads = reads?;
        // The reader must really have run alongside the switches.
        ensure(reads >= 100, || {
            format!("the reader read `mode` only {reads} times during 1000 switches")
        })?;
        check_mode(vf, "nvme")
    })
}

/// Waits for VF `vf`'s disk of namespace 2 and returns its path.
pub(crate) fn wait_vf_disk(vf: &Function) -> Result<String, String> {
    ensure(wait_until(SETTLE, || vf_disk(vf, "2").is_some()), || {
        "the VF got no disk for namespace 2".into()
    })?;
    vf_disk(vf, "2").ok_or_else(|| "the VF disk went away".into())
}

/// A fio verify job: random writes of 4 to 128 KiB, each block checked with crc32c after
/// the write phase (or, with `verify_only`, only the check of what an earlier run wrote).
pub(crate) struct FioVerify {
    /// The job name.
    pub(crate) name: &'static str,
    /// Queue depth.
    pub(crate) iodepth: u32,
    /// Bytes of the disk covered, as fio writes it (e.g. `16M`).
    pub(crate) size: &'static str,
    /// fio's output option (`--output-format=terse`, `--output=/dev/null`).
    pub(crate) output: &'static str,
}

impl FioVerify {
    /// fio's arguments for the job on `disk`.
    pub(crate) fn args(&self, disk: &str, verify_only: bool) -> Vec<String> {
        let mut a = vec![format!("--name={}", self.name)];
        a.extend(
            [
                "--direct=1",
                "--ioengine=libaio",
                "--rw=randwrite",
                "--bsrange=4k-128k",
                "--verify=crc32c",
                "--verify_fatal=1",
                "--do_verify=1",
                "--randrepeat=1",
                self.output,
            ]
            .iter()
            .map(|s| s.to_string()),
        );
        a.push(format!("--iodepth={}", self.iodepth));
        a.push(format!("--size={}", self.size));
        a.push(format!("--filename={disk}"));
        if verify_only {
            a.push("--verify_only".into());
        }
        a
    }
}

/// A fio job running in the background ([`FioVerify::spawn`]).
pub(crate) struct RunningFio {
    child: Child,
    /// Whether the disk completed I/O within the settle time after the start (fio then
    /// certainly has it open).
    pub(crate) started: bool,
}

impl FioVerify {
    /// Starts the write-and-verify job on `disk` in the background and waits up to
    /// `settle` for the disk to complete I/O.
    pub(crate) fn spawn(&self, disk: &str, settle: Duration) -> Result<RunningFio, String> {
        let before = disk_ios(disk);
        let child = Command::new("fio")
            .args(self.args(disk, false))
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| format!("fio: {e}"))?;
        let started = wait_until(settle, || disk_ios(disk) > before);
        Ok(RunningFio { child, started })
    }
}

impl RunningFio {
    /// Whether fio still runs.
    pub(crate) fn running(&mut self) -> Result<bool, String> {
        Ok(self
            .child
            .try_wait()
            .map_err(|e| format!("fio: {e}"))?
            .is_none())
    }

    /// Stops fio (the test failed).
    pub(crate) fn kill(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Waits up to `bound` for fio to end and checks that it succeeded; a fio still
    /// running then is stopped and fails the test. `during` names what fio ran through,
    /// for the messages.
    pub(crate) fn finish(mut self, bound: Duration, during: &str) -> Result<(), String> {
        let ended = wait_until(bound, || !matches!(self.running(), Ok(true)));
        if !ended {
            self.kill();
            return Err(format!("fio stalled for {} s {during}", bound.as_secs()));
        }
        let out = self
            .child
            .wait_with_output()
            .map_err(|e| format!("fio: {e}"))?;
        ensure(out.status.success(), || {
            format!(
                "fio verify failed {during}: {}",
                String::from_utf8_lossy(&out.stderr)
            )
        })
    }
}

/// The verify job of the VF tests.
const VF_VERIFY: FioVerify = FioVerify {
    name: "vf",
    iodepth: 8,
    size: "16M",
    output: "--output-format=terse",
};

/// Completed I/Os of block device `disk` (reads + writes, from its `stat`).
pub(crate) fn disk_ios(disk: &str) -> u64 {
    let name = disk.trim_start_matches("/dev/");
    fs::read_to_string(format!("/sys/block/{name}/stat"))
        .ok()
        .map(|s| {
            let f: Vec<u64> = s
                .split_whitespace()
                .filter_map(|x| x.parse().ok())
                .collect();
            f.first().copied().unwrap_or(0) + f.get(4).copied().unwrap_or(0)
        })
        .unwrap_or(0)
}

fn switch_during_fio(env: &Env) -> Result<Vec<Report>, String> {
    with_vfs(env, 1, true, |_pf, vfs| {
        let vf = &vfs[0];
        let disk = wait_vf_disk(vf)?;
        // The test holds the disk open for as long as fio runs: fio itself closes and
        // reopens it between its write and its verify phase, and a switch in that window
        // is rightly taken (the disk is not in use), after which fio's reopen fails. (Found
        // by the soak: 2 runs in 66 under load, fio failing to open the disk again.)
        let holder = fs::File::open(&disk).map_err(|e| format!("open {disk}: {e}"))?;
        // Only once fio is doing I/O is the disk certainly open by it too.
        let mut fio = VF_VERIFY.spawn(&disk, SETTLE)?;
        let started = fio.started;
        let mut refused = 0u32;
        while started && fio.running()? {
            match write_attr(&mode_path(vf), "vfio") {
                Err(libc::EBUSY) => refused += 1,
                Ok(()) => {
                    fio.kill();
                    return Err("echo vfio succeeded while the disk was open".into());
                }
                Err(errno) => {
                    fio.kill();
                    return Err(format!("echo vfio during fio: errno {errno}"));
                }
            }
            check_mode(vf, "nvme")?;
            thread::sleep(Duration::from_millis(20));
        }
        fio.finish(FIO_BOUND, "during the switch attempts")?;
        ensure(started, || "fio never did any I/O".into())?;
        ensure(refused >= 3, || {
            format!("only {refused} switch attempt(s) fell while fio ran")
        })?;
        drop(holder);
        // Idle now: to vfio and back, and every block fio wrote reads back intact.
        set_mode(vf, "vfio")?;
        check_mode(vf, "vfio")?;
        set_mode(vf, "nvme")?;
        let disk = wait_vf_disk(vf)?;
        let out = module::run(
            "fio",
            &VF_VERIFY
                .args(&disk, true)
                .iter()
                .map(String::as_str)
                .collect::<Vec<_>>(),
        )?;
        ensure(!out.is_empty(), || {
            "fio --verify_only printed nothing".into()
        })
    })
}

fn unload_in_vfio_mode(env: &Env) -> Result<Vec<Report>, String> {
    let pf = load_fresh(env)?;
    let mark = kmsg::mark()?;
    let result = (|| {
        write_attr(&pf.dir().join("sriov_vf_mode"), "vfio")
            .map_err(|e| format!("echo vfio > sriov_vf_mode: errno {e}"))?;
        set_numvfs(&pf, 4)?;
        let vfs = vfs(&pf)?;
        for vf in &vfs {
            check_mode(vf, "vfio")?;
        }
        // A migration data fd holds the module even once its VFIO device closed (the
        // driver closed the fd for use): unloading is refused and takes nothing down until
        // the fd is closed too.
        {
            let c = Client::open(&vfs[0].bdf, Path::Container).map_err(String::from)?;
            let mut fd = vfio_migration::set_state(&c, vfio_migration::State::PreCopy)
                .map_err(|e| format!("PRE_COPY: {e}"))?
                .ok_or("no saving fd")?;
            drop(c);
            let r = fd.read(&mut [0u8; 16]);
            ensure(
                r.as_ref().err().and_then(|e| e.raw_os_error()) == Some(libc::ENODEV),
                || format!("reading the data fd after its device closed: {r:?}, want ENODEV"),
            )?;
            let got = module::rmmod(RNVME);
            ensure(got.is_err() && module::is_loaded(RNVME), || {
                "rmmod succeeded with a migration data fd open".into()
            })?;
            for vf in &vfs {
                check_mode(vf, "vfio")?;
            }
        }
        // Closed VFIO devices do not hold the module: unloading takes the VFs down.
        module::rmmod(RNVME)?;
        for vf in &vfs {
            ensure(!vf.dir().exists(), || format!("{} still exists", vf.bdf))?;
        }
        ensure(numvfs(&pf)? == 0, || "VFs still enabled after rmmod".into())?;
        let log = kmsg::since(mark)?;
        let removed = log
            .iter()
            .filter(|l| l.contains("VFIO device removed"))
            .count();
        ensure(removed == 4, || {
            format!("{removed} VFIO devices removed, want 4: {log:?}")
        })?;
        // Loading again starts from the defaults: the PF binds, new VFs are block VFs.
        module::insmod(&env.module)?;
        ensure(pf.driver().as_deref() == Some(RNVME), || {
            format!("{} bound to {:?} after reloading", pf.bdf, pf.driver())
        })?;
        let shown = fs::read_to_string(pf.dir().join("sriov_vf_mode"))
            .map_err(|e| format!("sriov_vf_mode: {e}"))?;
        ensure(shown == "[nvme] vfio\n", || {
            format!("sriov_vf_mode after reloading shows {shown:?}")
        })
    })();
    module::ensure_unloaded(RNVME)?;
    result.map(|()| vec![])
}
