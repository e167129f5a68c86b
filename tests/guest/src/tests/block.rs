// SPDX-License-Identifier: GPL-2.0

//! Block device tests: data written through rnvme's disk reads back intact, through the
//! page cache and around it, with fio's verification, and across a file system remount and
//! a module reload.

use std::{fs, io::Write, path::Path};

use crate::fixture::{load_fresh, with_loaded};
use crate::{
    disk::{pattern, Direct, DISK},
    harness::{ensure, Env, Report, Test},
    module::{self, RNVME},
};

/// The block tests.
pub fn tests() -> Vec<Test> {
    vec![
        Test {
            name: "block/disk-geometry",
            groups: &["block"],
            run: disk_geometry,
        },
        Test {
            name: "block/direct-io-pattern",
            groups: &["block", "smoke"],
            run: direct_io_pattern,
        },
        Test {
            name: "block/write-zeroes",
            groups: &["block"],
            run: write_zeroes,
        },
        Test {
            name: "block/discard",
            groups: &["block"],
            run: discard,
        },
        Test {
            name: "block/fio-verify",
            groups: &["block"],
            run: fio_verify,
        },
        Test {
            name: "block/ext4-across-reload",
            groups: &["block"],
            run: ext4_across_reload,
        },
        Test {
            name: "block/remove-during-io",
            groups: &["block"],
            run: remove_during_io,
        },
    ]
}

fn sysfs(attr: &str) -> Result<String, String> {
    let path = format!("/sys/block/rnvme0n1/{attr}");
    fs::read_to_string(&path)
        .map(|s| s.trim().to_string())
        .map_err(|e| format!("{path}: {e}"))
}

fn disk_geometry(env: &Env) -> Result<Vec<Report>, String> {
    load_fresh(env)?;
    let size = sysfs("size");
    let lbs = sysfs("queue/logical_block_size");
    let max_kb = sysfs("queue/max_hw_sectors_kb");
    let max_segments = sysfs("queue/max_segments");
    let cache = sysfs("queue/write_cache");
    let boundary = sysfs("queue/virt_boundary_mask");
    module::rmmod(RNVME)?;
    // The emulated namespace 1 is 256 MiB of 512-byte blocks, MDTS 512 KiB, with a volatile
    // write cache. Behind the VM's IOMMU, whose I/O virtual address caches keep ranges up
    // to 128 KiB, a request is at most 128 KiB in 33 segments, as with the C driver.
    ensure(size? == "524288", || {
        "capacity is not 524288 sectors".into()
    })?;
    ensure(lbs? == "512", || "logical block size is not 512".into())?;
    let max_kb = max_kb?;
    ensure(max_kb == "128", || {
        format!("max transfer is {max_kb} KiB, not 128 KiB (the IOMMU's cached mapping size)")
    })?;
    let max_segments = max_segments?;
    ensure(max_segments == "33", || {
        format!("{max_segments} segments per request, not 33 (128 KiB in pages, plus one)")
    })?;
    ensure(cache? == "write back", || {
        "volatile write cache not advertised".into()
    })?;
    ensure(boundary? == "4095", || {
        "PRP virtual boundary is not 4 KiB".into()
    })?;
    Ok(vec![])
}

fn direct_io_pattern(env: &Env) -> Result<Vec<Report>, String> {
    with_loaded(env, |_| {
        let mut disk = Direct::open()?;
        // Sizes from one block to beyond MDTS (the block layer splits those), at offsets
        // across the namespace, including its last block.
        let cases: &[(u64, usize)] = &[
            (0, 512),
            (4096, 4096),
            (1 << 20, 64 << 10),
            (3 << 20, 1 << 20),
            (100 << 20, 2 << 20),
            ((256 << 20) - 512, 512),
        ];
        for (i, &(offset, len)) in cases.iter().enumerate() {
            let data = pattern(len, 0x5eed + i as u64);
            disk.write_at(offset, &data)?;
        }
        for (i, &(offset, len)) in cases.iter().enumerate() {
            let data = pattern(len, 0x5eed + i as u64);
            let back = disk.read_at(offset, len)?;
            ensure(back == data, || {
                format!("{len} bytes at {offset} read back differently")
            })?;
        }
        // Past the end of the namespace: the block layer refuses it.
        ensure(disk.write_at(256 << 20, &[0u8; 512]).is_err(), || {
            "a write past the end succeeded".into()
        })
    })
}

/// Writes 3 MiB of pattern at `base`, runs `blkdiscard` with `extra` flags over the middle
/// MiB, and checks that exactly that MiB reads back as zeros.
fn zero_middle_mib(env: &Env, extra: &[&str], base: u64, seed: u64) -> Result<Vec<Report>, String> {
    with_loaded(env, |_| {
        let mut disk = Direct::open()?;
        let data = pattern(3 << 20, seed);
        disk.write_at(base, &data)?;
        let offset = (base + (1 << 20)).to_string();
        let length = (1u64 << 20).to_string();
        let mut argv = extra.to_vec();
        argv.extend_from_slice(&["-o", &offset, "-l", &length, DISK]);
        module::run("blkdiscard", &argv)?;
        let back = disk.read_at(base, 3 << 20)?;
        ensure(back[..1 << 20] == data[..1 << 20], || {
            "data before the range changed".into()
        })?;
        ensure(back[1 << 20..2 << 20].iter().all(|&b| b == 0), || {
            "the range does not read back as zeros".into()
        })?;
        ensure(back[2 << 20..] == data[2 << 20..], || {
            "data after the range changed".into()
        })
    })
}

/// BLKZEROOUT (`blkdiscard -z`) becomes Write Zeroes.
fn write_zeroes(env: &Env) -> Result<Vec<Report>, String> {
    zero_middle_mib(env, &["-z"], 8 << 20, 77)
}

/// BLKDISCARD becomes Dataset Management (deallocate); the test device punches a hole,
/// which reads back as zeros.
fn discard(env: &Env) -> Result<Vec<Report>, String> {
    load_fresh(env)?;
    let max = sysfs("queue/discard_max_hw_bytes");
    module::rmmod(RNVME)?;
    ensure(max? != "0", || "discard not advertised".into())?;
    zero_middle_mib(env, &[], 40 << 20, 99)
}

fn fio_verify(env: &Env) -> Result<Vec<Report>, String> {
    load_fresh(env)?;
    let jobs: &[(&str, &[&str])] = &[
        (
            "randwrite-mixed-sizes",
            &[
                "--rw=randwrite",
                "--bsrange=512-1M",
                "--iodepth=16",
                "--numjobs=2",
            ],
        ),
        (
            "seqwrite-qd1",
            &["--rw=write", "--bs=128k", "--iodepth=1", "--numjobs=1"],
        ),
        (
            "randwrite-4k-qd32",
            &["--rw=randwrite", "--bs=4k", "--iodepth=32", "--numjobs=1"],
        ),
    ];
    // With `sgls=1` (the default) the emulated controller gets an SGL descriptor for any
    // transfer beyond two pages (the IOMMU maps each as one segment); the mixed sizes run
    // once more with `sgls=0`, through PRP lists.
    let prp_jobs = [("prp-lists/randwrite-mixed-sizes", jobs[0].1)];
    let mut reports = Vec::new();
    for (i, (name, args)) in jobs.iter().chain(prp_jobs.iter()).enumerate() {
        if i == jobs.len() {
            module::sysfs_write(Path::new(SGLS), "0")?;
        }
        let mut argv = vec![
            "--name=verify",
            "--filename=/dev/rnvme0n1",
            "--direct=1",
            "--ioengine=libaio",
            "--size=32M",
            "--offset_increment=64M",
            "--verify=crc32c",
            "--verify_fatal=1",
            "--do_verify=1",
            "--group_reporting",
            "--output-format=terse",
        ];
        argv.extend_from_slice(args);
        let outcome = match module::run("fio", &argv) {
            Ok(_) => crate::harness::Outcome::Pass,
            Err(e) => crate::harness::Outcome::Fail(e),
        };
        reports.push(Report {
            name: format!("block/fio-verify/{name}"),
            outcome,
        });
    }
    module::sysfs_write(Path::new(SGLS), "1")?;
    module::rmmod(RNVME)?;
    Ok(reports)
}

/// The `sgls` module parameter.
const SGLS: &str = "/sys/module/rnvme/parameters/sgls";

fn sha256_files(dir: &Path) -> Result<String, String> {
    let out = module::run(
        "sh",
        &[
            "-c",
            &format!("cd {} && sha256sum f* | sort", dir.display()),
        ],
    )?;
    ensure(out.lines().count() == 8, || {
        format!("expected 8 files, got {out:?}")
    })?;
    Ok(out)
}

fn ext4_across_reload(env: &Env) -> Result<Vec<Report>, String> {
    load_fresh(env)?;
    let mnt = Path::new("/tmp/rnvme-mnt");
    fs::create_dir_all(mnt).map_err(|e| e.to_string())?;
    let m = mnt.to_string_lossy().to_string();
    module::run("mkfs.ext4", &["-q", "-F", DISK])?;
    module::run("mount", &[DISK, &m])?;
    for i in 0..8u64 {
        let data = pattern(((i as usize) + 1) * 300_000, 1000 + i);
        fs::File::create(mnt.join(format!("f{i}")))
            .and_then(|mut f| f.write_all(&data))
            .map_err(|e| e.to_string())?;
    }
    let before = sha256_files(mnt)?;
    // Unloading the module while the file system is mounted must fail: the open disk holds
    // a reference on the module.
    let busy = module::rmmod(RNVME);
    module::run("umount", &[&m])?;
    ensure(busy.is_err(), || {
        "rmmod succeeded with a mounted disk".into()
    })?;
    module::rmmod(RNVME)?;
    module::insmod(&env.module)?;
    module::run("mount", &[DISK, &m])?;
    let after = sha256_files(mnt);
    module::run("umount", &[&m])?;
    module::run("fsck.ext4", &["-f", "-n", DISK])?;
    module::rmmod(RNVME)?;
    ensure(after? == before, || {
        "file contents changed across the reload".into()
    })?;
    Ok(vec![])
}

/// Removes the PCI function (sysfs `remove`) while fio writes to its disk: every request
/// completes or fails, fio ends with an error instead of hanging, the disk and the binding
/// are gone, and a rescan brings the function back to a working disk.
fn remove_during_io(env: &Env) -> Result<Vec<Report>, String> {
    let pf = load_fresh(env)?;
    let mut fio = std::process::Command::new("fio")
        .args([
            "--name=remove",
            "--filename=/dev/rnvme0n1",
            "--direct=1",
            "--ioengine=libaio",
            "--rw=randwrite",
            "--bs=16k",
            "--iodepth=32",
            "--time_based",
            "--runtime=30",
            "--output=/dev/null",
        ])
        .spawn()
        .map_err(|e| format!("fio: {e}"))?;
    std::thread::sleep(std::time::Duration::from_secs(2));
    let removed = module::sysfs_write(&pf.dir().join("remove"), "1");
    let status = fio.wait().map_err(|e| format!("wait for fio: {e}"))?;
    removed?;
    let gone = !pf.dir().exists() && !Path::new("/sys/block/rnvme0n1").exists();
    module::sysfs_write(Path::new("/sys/bus/pci/rescan"), "1")?;
    let back = pf.driver().as_deref() == Some(RNVME);
    let readable = back && Direct::open().and_then(|mut d| d.read_at(0, 4096)).is_ok();
    module::rmmod(RNVME)?;
    ensure(!status.success(), || {
        "fio did not notice the disk going away".into()
    })?;
    ensure(gone, || {
        "the function or its disk is still present after remove".into()
    })?;
    ensure(back, || {
        format!("rnvme did not bind {} after rescan", pf.bdf)
    })?;
    ensure(readable, || "the disk is not readable after rescan".into())?;
    Ok(vec![])
}
