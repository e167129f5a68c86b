// SPDX-License-Identifier: GPL-2.0

//! The narrated demo (`cargo xtask demo`): what the driver can do today, shown step by step
//! in the VM.

use crate::{
    disk::{pattern, Direct, DISK},
    harness::Env,
    identity, kmsg,
    ktap::{self, CaseStatus},
    mmio::BarMap,
    module::{self, RNVME},
    pci::{self, Function},
    sriov::{list_secondary, scid_of, set_numvfs, vf_disk, vfs, write_attr, CHARDEV},
    tests::migration,
    vfio_client::{self, Client, Path as VfioPath},
    vfio_migration,
};

use std::time::{Duration, Instant};

fn step(n: u32, total: u32, what: &str) {
    println!("\n[{n}/{total}] {what}");
}

/// Runs the demo; an error means a step did not behave as narrated.
pub fn run(env: &Env) -> Result<(), String> {
    const STEPS: u32 = 10;
    // Keep KUnit's and the driver's info messages off the console so the narration stays
    // readable (the demo prints the driver's lines itself); warnings and worse (console
    // level 5 shows levels 0 to 4) still reach the console and the harness's log scan.
    std::fs::write("/proc/sys/kernel/printk", "5")
        .map_err(|e| format!("/proc/sys/kernel/printk: {e}"))?;
    let release = module::run("uname", &["-r"])?;
    println!("==> rnvme: one Rust NVMe driver that owns both lives of an SR-IOV function");
    println!(
        "    (block device and VFIO device). Kernel {}",
        release.trim()
    );
    println!("    This build shows the Rust module binding the emulated NVMe controller through");
    println!("    the project's kernel API layer, serving a namespace as a block device over");
    println!("    MSI-X driven I/O queues, and enabling VFs whose secondary controllers it");
    println!("    brings online itself, each VF running as a disk; then one sysfs write turns");
    println!("    a VF into a VFIO device (vfio-pci-core) and back, data intact, and VFs can");
    println!("    come up as VFIO devices directly; and a VF's controller, I/O in flight, is");
    println!("    live-migrated to another VF through the VFIO migration uAPI, the PF driving");
    println!("    the NVMe live-migration commands (TP4159) of the test device model.");

    step(
        1,
        STEPS,
        "NVMe functions in this VM (QEMU's emulated controller with SR-IOV):",
    );
    print!("{}", module::run("lspci", &["-nn", "-d", "::0108"])?);
    let pf = pci::nvme_pf()?;
    println!(
        "    physical function: {} (driver: {:?})",
        pf.bdf,
        pf.driver()
    );

    step(2, STEPS, &format!("Loading {}", env.module.display()));
    module::ensure_unloaded(RNVME)?;
    let mark = kmsg::mark()?;
    module::insmod(&env.module)?;
    let log = kmsg::since(mark)?;
    let driver = pf.driver();
    println!(
        "    {} is now bound to: {}",
        pf.bdf,
        driver.as_deref().unwrap_or("nothing")
    );
    if driver.as_deref() != Some(RNVME) {
        return Err("rnvme did not bind the PF".into());
    }

    step(
        3,
        STEPS,
        "The controller's identity, as the driver logged it at probe:",
    );
    for line in log.iter().filter(|l| l.starts_with("rnvme ")) {
        println!("    kernel: {line}");
    }
    let id = identity::latest(&log, &pf.bdf).ok_or("no identity line")?;
    let bar = BarMap::open(&pf.dir().join("resource0"), 4096)?;
    let cap = bar.read64(0)?;
    drop(bar);
    println!(
        "    cross-check from userspace through sysfs resource0: CAP {cap:#018x} ({})",
        if cap == id.cap { "matches" } else { "DIFFERS" }
    );
    if cap != id.cap {
        return Err("CAP mismatch".into());
    }

    step(
        4,
        STEPS,
        "In-kernel KUnit suites of the module ran at load:",
    );
    let cases = ktap::parse(&log);
    let passed = cases
        .iter()
        .filter(|c| c.status == CaseStatus::Passed)
        .count();
    for suite in crate::tests::kunit::SUITES {
        let n = cases.iter().filter(|c| c.suite == *suite).count();
        println!("    {suite}: {n} cases");
    }
    println!("    {passed} of {} cases passed", cases.len());
    if passed != cases.len() || cases.is_empty() {
        return Err("KUnit cases failed".into());
    }

    step(
        5,
        STEPS,
        &format!("Block I/O through {DISK}: write a 1 MiB pattern with O_DIRECT, read it back"),
    );
    let size = std::fs::read_to_string("/sys/block/rnvme0n1/size")
        .map_err(|e| format!("/sys/block/rnvme0n1/size: {e}"))?;
    println!("    {DISK}: {} sectors of 512 bytes", size.trim());
    let data = pattern(1 << 20, 2026);
    let mut disk = Direct::open()?;
    disk.write_at(16 << 20, &data)?;
    let back = disk.read_at(16 << 20, 1 << 20)?;
    drop(disk);
    println!(
        "    wrote and read back 1 MiB at offset 16 MiB: {}",
        if back == data {
            "identical"
        } else {
            "DIFFERENT"
        }
    );
    if back != data {
        return Err("data read back differs".into());
    }

    sriov_step(6, STEPS, &pf)?;
    vfio_step(7, STEPS, &pf)?;
    direct_vfio_step(8, STEPS, &pf)?;
    migration_step(9, STEPS, &pf)?;

    step(
        10,
        STEPS,
        "Unloading: the driver removes the disk, shuts the controller down and releases BAR0.",
    );
    let mark = kmsg::mark()?;
    module::rmmod(RNVME)?;
    for line in kmsg::since(mark)?
        .iter()
        .filter(|l| l.starts_with("rnvme "))
    {
        println!("    kernel: {line}");
    }
    println!("    {} driver after unload: {:?}", pf.bdf, pf.driver());
    println!("\n==> demo complete");
    Ok(())
}

/// VFIO mode: VF 1 (namespace 2 attached) switched to vfio mode, reached by a userspace
/// NVMe driver through the iommufd cdev, and switched back, the data intact both ways.
fn vfio_step(n: u32, total: u32, pf: &Function) -> Result<(), String> {
    step(
        n,
        total,
        "VFIO mode: echo vfio > <VF>/mode, a userspace driver over VFIO, echo nvme back",
    );
    set_numvfs(pf, 1)?;
    let result = (|| {
        let vf = vfs(pf)?.into_iter().next().ok_or("no VF")?;
        let scid = scid_of(1)?;
        module::run("nvme", &["attach-ns", CHARDEV, "-n", "2", "-c", &scid])?;
        let result = vfio_round_trip(&vf);
        back_to_block_mode(&vf);
        module::run("nvme", &["detach-ns", CHARDEV, "-n", "2", "-c", &scid])?;
        result
    })();
    set_numvfs(pf, 0)?;
    result
}

/// Puts `vf` back in block mode if a step left it in vfio mode.
fn back_to_block_mode(vf: &Function) {
    let _ = std::fs::write(vf.dir().join("mode"), "nvme");
}

fn vfio_round_trip(vf: &Function) -> Result<(), String> {
    let mode = vf.dir().join("mode");
    let appeared =
        crate::harness::wait_until(Duration::from_secs(20), || vf_disk(vf, "2").is_some());
    let disk = vf_disk(vf, "2")
        .filter(|_| appeared)
        .ok_or("VF 1 got no disk")?;
    let block_data = pattern(4096, 11);
    let mut d = Direct::open_path(&disk)?;
    d.write_at(0, &block_data)?;
    drop(d);
    println!("    block mode: wrote 4 KiB at offset 0 of {disk}");
    println!("    cat {}/mode: {}", vf.bdf, module::sysfs_read(&mode)?);
    println!("    echo vfio > {}/mode", vf.bdf);
    module::sysfs_write(&mode, "vfio")?;
    let cdev = vfio_client::cdev(&vf.bdf)?;
    println!(
        "    cat mode: {}; driver {:?}; {} exists, no disk any more: {}",
        module::sysfs_read(&mode)?,
        vf.driver(),
        cdev.display(),
        vf_disk(vf, "2").is_none()
    );
    let vfio_data = pattern(4096, 12);
    {
        let mut c = Client::open(&vf.bdf, VfioPath::Cdev)?;
        let id = c.identify()?;
        println!("    userspace NVMe driver over VFIO (iommufd cdev, BAR0 mmapped, DMA mapped):");
        println!("      Identify: serial {}, model {:?}", id.serial, id.model);
        let lba = c.lba_size(2)?;
        c.create_io_queue()?;
        let seen = c.read_page(2, 0, lba)?;
        println!(
            "      read offset 0: {} to what the block driver wrote",
            if seen == block_data {
                "identical"
            } else {
                "DIFFERENT"
            }
        );
        if seen != block_data {
            return Err("VFIO read differs from the block write".into());
        }
        c.write_page(2, 4096, lba, &vfio_data)?;
        println!("      wrote 4 KiB at offset 4096");
        let got = write_attr(&mode, "nvme");
        println!("    echo nvme > mode while the VFIO device is open: {got:?} (EBUSY is 16)");
        if got != Err(libc::EBUSY) {
            return Err("the switch was not refused with EBUSY while open".into());
        }
    }
    println!("    closed; echo nvme > {}/mode", vf.bdf);
    module::sysfs_write(&mode, "nvme")?;
    let appeared =
        crate::harness::wait_until(Duration::from_secs(20), || vf_disk(vf, "2").is_some());
    let disk = vf_disk(vf, "2")
        .filter(|_| appeared)
        .ok_or("the VF disk did not come back")?;
    let mut d = Direct::open_path(&disk)?;
    let back = d.read_at(4096, 4096)?;
    println!(
        "    block mode again ({disk}, driver {:?}): offset 4096 {} to what VFIO wrote",
        vf.driver(),
        if back == vfio_data {
            "identical"
        } else {
            "DIFFERENT"
        }
    );
    if back == vfio_data {
        Ok(())
    } else {
        Err("block read differs from the VFIO write".into())
    }
}

/// VFs coming up directly as VFIO devices: no block probe, no disk.
fn direct_vfio_step(n: u32, total: u32, pf: &Function) -> Result<(), String> {
    step(
        n,
        total,
        "echo vfio > <PF>/sriov_vf_mode; echo 8 > sriov_numvfs: VFs come up as VFIO devices",
    );
    module::sysfs_write(&pf.dir().join("sriov_vf_mode"), "vfio")?;
    let start = Instant::now();
    let result = set_numvfs(pf, 8).and_then(|()| {
        let took = start.elapsed();
        let vfs = vfs(pf)?;
        let ready = vfs
            .iter()
            .filter(|vf| {
                vf.driver().as_deref() == Some("rnvme-vfio")
                    && vfio_client::cdev(&vf.bdf).is_ok_and(|p| p.exists())
            })
            .count();
        println!(
            "    {} VFs in {:.0} ms; bound to rnvme-vfio with a VFIO device: {ready}",
            vfs.len(),
            took.as_secs_f64() * 1e3
        );
        let online = list_secondary()?.iter().filter(|s| s.online).count();
        let disks = vfs
            .iter()
            .filter(|vf| vf.dir().join("block").exists())
            .count();
        println!("    secondary controllers online: {online}; VF block devices: {disks}");
        if ready == vfs.len() && ready == 8 && online == 8 && disks == 0 {
            Ok(())
        } else {
            Err("not every VF is a VFIO device".into())
        }
    });
    set_numvfs(pf, 0)?;
    module::sysfs_write(&pf.dir().join("sriov_vf_mode"), "nvme")?;
    result
}

/// Live migration: VF 1's controller, driven by the userspace NVMe driver over VFIO, moves
/// to VF 2 through the VFIO migration uAPI with writes in flight, twice (there and back).
fn migration_step(n: u32, total: u32, pf: &Function) -> Result<(), String> {
    step(
        n,
        total,
        "Live migration: a VF's NVMe controller moves to another VF with I/O in flight",
    );
    set_numvfs(pf, 2)?;
    let controllers = format!("{},{}", scid_of(1)?, scid_of(2)?);
    module::run(
        "nvme",
        &["attach-ns", CHARDEV, "-n", "2", "-c", &controllers],
    )?;
    let vfs = vfs(pf)?;
    let result = (|| {
        let [vf1, vf2] = vfs.as_slice() else {
            return Err("want 2 VFs".to_string());
        };
        println!("    namespace 2 attached to both VFs; echo vfio > mode on both");
        let (mut a, mut b) = migration::open_pair(vf1, vf2)?;
        let flags = vfio_migration::flags(&a).map_err(|e| e.to_string())?;
        println!(
            "    VFIO_DEVICE_FEATURE_MIGRATION on {}: {:#x} (STOP_COPY | P2P | PRE_COPY)",
            vf1.bdf, flags
        );
        let lba = a.lba_size(2)?;
        for round in 0..2u64 {
            let (src, dst, from, to) = if round == 0 {
                (&mut a, &mut b, &vf1.bdf, &vf2.bdf)
            } else {
                (&mut b, &mut a, &vf2.bdf, &vf1.bdf)
            };
            let t = Instant::now();
            let m = migration::migrate(src, dst, lba, 16 + 16 * round, 4, 4)?;
            println!(
                "    {from} -> {to}: PRE_COPY {} bytes (compatibility), stream {} bytes;\n      \
                 {} writes completed on the source before it suspended, {} completed on the\n      \
                 destination (queued on the suspended source); all read back ({:.0} ms)",
                m.precopy,
                m.stream,
                m.on_source,
                m.on_destination,
                t.elapsed().as_secs_f64() * 1e3
            );
        }
        Ok(())
    })();
    for vf in &vfs {
        let _ = write_attr(&vf.dir().join("mode"), "nvme");
    }
    module::run(
        "nvme",
        &["detach-ns", CHARDEV, "-n", "2", "-c", &controllers],
    )?;
    set_numvfs(pf, 0)?;
    result
}

/// SR-IOV: two VFs enabled through `sriov_numvfs`, their controllers online with their
/// share of the flexible resources, namespace 2 attached to VF 1, I/O on VF 1's disk.
fn sriov_step(n: u32, total: u32, pf: &Function) -> Result<(), String> {
    step(
        n,
        total,
        "SR-IOV: echo 2 > sriov_numvfs; the PF driver assigns resources and brings the VFs online",
    );
    set_numvfs(pf, 2)?;
    let result = (|| {
        let vfs = vfs(pf)?;
        let secondaries = list_secondary()?;
        for (i, vf) in vfs.iter().enumerate() {
            let s = secondaries
                .iter()
                .find(|s| s.vfn == i as u64 + 1)
                .ok_or("no secondary controller")?;
            println!(
                "    VF {} ({}): secondary controller {} {}, {} queues, {} vectors, driver {:?}",
                s.vfn,
                vf.bdf,
                s.scid,
                if s.online { "online" } else { "OFFLINE" },
                s.nvq,
                s.nvi,
                vf.driver()
            );
            if !s.online || vf.driver().as_deref() != Some(RNVME) {
                return Err(format!("VF {} is not online and bound to rnvme", s.vfn));
            }
        }
        let vf1 = vfs.first().ok_or("no VF")?;
        let scid = secondaries
            .iter()
            .find(|s| s.vfn == 1)
            .map(|s| s.scid.to_string())
            .ok_or("no secondary controller for VF 1")?;
        println!("    nvme attach-ns {CHARDEV} -n 2 -c {scid}   (namespace 2 to VF 1)");
        module::run("nvme", &["attach-ns", CHARDEV, "-n", "2", "-c", &scid])?;
        let appeared = crate::harness::wait_until(std::time::Duration::from_secs(20), || {
            vf_disk(vf1, "2").is_some()
        });
        let disk = vf_disk(vf1, "2")
            .filter(|_| appeared)
            .ok_or("VF 1 got no disk")?;
        let data = pattern(256 << 10, 77);
        let mut d = Direct::open_path(&disk)?;
        d.write_at(0, &data)?;
        let same = d.read_at(0, data.len())? == data;
        drop(d);
        println!(
            "    VF 1's disk {disk}: wrote and read back 256 KiB: {}",
            if same { "identical" } else { "DIFFERENT" }
        );
        module::run("nvme", &["detach-ns", CHARDEV, "-n", "2", "-c", &scid])?;
        if same {
            Ok(())
        } else {
            Err("VF data read back differs".into())
        }
    })();
    set_numvfs(pf, 0)?;
    println!("    echo 0 > sriov_numvfs: VFs disabled, secondary controllers offline");
    result
}
