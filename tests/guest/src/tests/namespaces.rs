// SPDX-License-Identifier: GPL-2.0

//! Namespaces coming and going while the driver runs: attaching a namespace through the
//! controller's character device raises a namespace-change event, and the driver adds or
//! removes the disk by itself.

use std::{path::Path, time::Duration};

use crate::fixture::with_loaded;
use crate::{
    disk::{pattern, Direct},
    harness::{ensure, wait_until, Env, Report, Test},
    kmsg, module,
};

/// The controller's character device.
const CHARDEV: &str = "/dev/rnvme0";

/// The shared namespace the test device starts with detached.
const NSID: &str = "2";

/// Its disk once attached.
const NS2_DISK: &str = "/dev/rnvme0n2";

/// The disk of namespace 1.
const DISK1: &str = "/dev/rnvme0n1";

/// How long the event and the rescan may take (TCG).
const EVENT_TIMEOUT: Duration = Duration::from_secs(20);

/// The namespace tests.
pub fn tests() -> Vec<Test> {
    vec![
        Test {
            name: "namespaces/attach-detach-follows-events",
            groups: &["namespaces", "block"],
            run: attach_detach_follows_events,
        },
        Test {
            name: "namespaces/format-changes-block-size",
            groups: &["namespaces", "block", "format"],
            run: format_changes_block_size,
        },
    ]
}

/// The controller ID of the controller behind `dev`, from Identify Controller.
pub fn controller_id(dev: &str) -> Result<u64, String> {
    let out = module::run("nvme", &["id-ctrl", dev, "-o", "json"])?;
    let v: serde_json::Value =
        serde_json::from_str(&out).map_err(|e| format!("id-ctrl json: {e}"))?;
    v["cntlid"]
        .as_u64()
        .ok_or_else(|| format!("no cntlid in id-ctrl output {out:.200}"))
}

fn attach_detach_follows_events(env: &Env) -> Result<Vec<Report>, String> {
    with_loaded(env, |_| {
        let result = attach_detach();
        // Leave the namespace detached for later tests, whatever happened.
        if Path::new(NS2_DISK).exists() || result.is_err() {
            if let Ok(cntlid) = controller_id(CHARDEV) {
                let c = cntlid.to_string();
                let _ = module::run("nvme", &["detach-ns", CHARDEV, "-n", NSID, "-c", &c]);
            }
        }
        result
    })
}

fn attach_detach() -> Result<(), String> {
    ensure(!Path::new(NS2_DISK).exists(), || {
        format!("{NS2_DISK} exists before namespace {NSID} is attached")
    })?;
    let cntlid = controller_id(CHARDEV)?.to_string();
    let mark = kmsg::mark()?;

    module::run("nvme", &["attach-ns", CHARDEV, "-n", NSID, "-c", &cntlid])?;
    ensure(
        wait_until(EVENT_TIMEOUT, || Path::new(NS2_DISK).exists()),
        || format!("{NS2_DISK} did not appear within {EVENT_TIMEOUT:?} of attach-ns"),
    )?;
    // An explicit rescan (nvme-cli ns-rescan, NVME_IOCTL_RESCAN) finds nothing new.
    let before = kmsg::since(mark)?;
    module::run("nvme", &["ns-rescan", CHARDEV])?;
    let after = kmsg::since(mark)?;
    ensure(
        Path::new(NS2_DISK).exists() && after.len() == before.len(),
        || format!("ns-rescan changed something: {:?}", &after[before.len()..]),
    )?;
    let data = pattern(64 * 1024, 0x2a2a);
    let mut disk = Direct::open_path(NS2_DISK)?;
    disk.write_at(1 << 20, &data)?;
    ensure(disk.read_at(1 << 20, data.len())? == data, || {
        format!("data read back from {NS2_DISK} differs from what was written")
    })?;
    drop(disk);

    module::run("nvme", &["detach-ns", CHARDEV, "-n", NSID, "-c", &cntlid])?;
    ensure(
        wait_until(EVENT_TIMEOUT, || !Path::new(NS2_DISK).exists()),
        || format!("{NS2_DISK} still exists {EVENT_TIMEOUT:?} after detach-ns"),
    )?;
    let log = kmsg::since(mark)?;
    for needle in ["asynchronous event: Notice", "namespace 2 is gone"] {
        ensure(log.iter().any(|l| l.contains(needle)), || {
            format!("kernel log lacks {needle:?}")
        })?;
    }
    Ok(())
}

/// An LBA format: index, data size, metadata size.
type LbaFormat = (usize, u64, u64);

/// The LBA formats of namespace 1, and the index in use.
fn lba_formats() -> Result<(Vec<LbaFormat>, usize), String> {
    let out = module::run("nvme", &["id-ns", CHARDEV, "-n", "1", "-o", "json"])?;
    let v: serde_json::Value =
        serde_json::from_str(&out).map_err(|e| format!("id-ns json: {e}"))?;
    let lbafs = v["lbafs"]
        .as_array()
        .ok_or_else(|| format!("no lbafs in id-ns output {out:.300}"))?;
    let formats = lbafs
        .iter()
        .enumerate()
        .map(|(i, f)| {
            (
                i,
                1u64 << f["ds"].as_u64().unwrap_or(0),
                f["ms"].as_u64().unwrap_or(u64::MAX),
            )
        })
        .collect();
    let flbas = v["flbas"].as_u64().ok_or("no flbas")?;
    Ok((formats, (flbas & 0xf) as usize))
}

/// The first LBA format of `size`-byte blocks with `metadata` bytes of metadata.
fn format_index(formats: &[LbaFormat], size: u64, metadata: bool) -> Result<usize, String> {
    formats
        .iter()
        .find(|(_, ds, ms)| *ds == size && (*ms > 0) == metadata)
        .map(|(i, _, _)| *i)
        .ok_or_else(|| format!("no {size}-byte format (metadata {metadata}) in {formats:?}"))
}

fn nvme_format(lbaf: usize) -> Result<(), String> {
    let l = lbaf.to_string();
    module::run("nvme", &["format", CHARDEV, "-n", "1", "-l", &l, "-f"]).map(|_| ())
}

fn disk_attr(name: &str) -> Result<String, String> {
    module::sysfs_read(Path::new(&format!("/sys/block/rnvme0n1/{name}")))
}

fn format_changes_block_size(env: &Env) -> Result<Vec<Report>, String> {
    with_loaded(env, |_| {
        let (formats, in_use) = lba_formats()?;
        let lbaf_512 = format_index(&formats, 512, false)?;
        let result = formats_round_trip(&formats);
        // Leave namespace 1 as later tests expect it, whatever happened.
        let restored = if lba_formats()?.1 != lbaf_512 || result.is_err() {
            nvme_format(lbaf_512)
        } else {
            Ok(())
        };
        ensure(in_use == lbaf_512, || {
            format!("namespace 1 started in format {in_use}")
        })?;
        result.and(restored)
    })
}

fn formats_round_trip(formats: &[LbaFormat]) -> Result<(), String> {
    let lbaf_4k = format_index(formats, 4096, false)?;
    let lbaf_512 = format_index(formats, 512, false)?;
    let size = disk_attr("size")?;
    let mark = kmsg::mark()?;

    nvme_format(lbaf_4k)?;
    ensure(disk_attr("queue/logical_block_size")? == "4096", || {
        "the logical block size is not 4096 after the format".into()
    })?;
    ensure(disk_attr("queue/physical_block_size")? == "4096", || {
        "the physical block size is not 4096 after the format".into()
    })?;
    ensure(disk_attr("size")? == size, || {
        format!(
            "the capacity changed from {size} sectors to {:?}",
            disk_attr("size")
        )
    })?;
    let mut disk = Direct::open_path(DISK1)?;
    for (i, &(offset, len)) in [(0u64, 4096usize), (4096, 65536), ((256 << 20) - 4096, 4096)]
        .iter()
        .enumerate()
    {
        let data = pattern(len, 0xf0f0 + i as u64);
        disk.write_at(offset, &data)?;
        ensure(disk.read_at(offset, len)? == data, || {
            format!("{len} bytes at {offset} read back differently after the 4 KiB format")
        })?;
    }
    // Smaller than a logical block: the block layer refuses it.
    ensure(disk.write_at(512, &[0u8; 512]).is_err(), || {
        "a 512-byte write succeeded on 4 KiB blocks".into()
    })?;
    drop(disk);

    // A format with metadata cannot be served: capacity 0, nothing reaches the namespace.
    if let Ok(lbaf_md) = format_index(formats, 512, true) {
        nvme_format(lbaf_md)?;
        ensure(disk_attr("size")? == "0", || {
            "a metadata format left the disk with a capacity".into()
        })?;
        ensure(Direct::open_path(DISK1)?.read_at(0, 4096).is_err(), || {
            "a read succeeded on a metadata format".into()
        })?;
    }

    nvme_format(lbaf_512)?;
    ensure(disk_attr("queue/logical_block_size")? == "512", || {
        "the logical block size is not 512 after formatting back".into()
    })?;
    ensure(disk_attr("size")? == size, || {
        "the capacity changed after formatting back".into()
    })?;
    let mut disk = Direct::open_path(DISK1)?;
    let data = pattern(512, 0x512);
    disk.write_at(512, &data)?;
    ensure(disk.read_at(512, 512)? == data, || {
        "512 bytes read back differently after formatting back".into()
    })?;
    let log = kmsg::since(mark)?;
    ensure(
        log.iter()
            .any(|l| l.contains("namespace 1: 65536 blocks of 4096 bytes")),
        || format!("no revalidation of namespace 1 in {log:?}"),
    )
}
