// SPDX-License-Identifier: GPL-2.0

//! Namespaces coming and going while the driver runs: attaching a namespace through the
//! controller's character device raises a namespace-change event, and the driver adds or
//! removes the disk by itself.

use std::{path::Path, time::Duration};

use crate::{
    disk::{pattern, Direct},
    harness::{ensure, wait_until, Env, Report, Test},
    kmsg, module,
    tests::smoke::with_loaded,
};

/// The controller's character device.
const CHARDEV: &str = "/dev/rnvme0";

/// The shared namespace the test device starts with detached.
const NSID: &str = "2";

/// Its disk once attached.
const NS2_DISK: &str = "/dev/rnvme0n2";

/// How long the event and the rescan may take (TCG).
const EVENT_TIMEOUT: Duration = Duration::from_secs(20);

/// The namespace tests.
pub fn tests() -> Vec<Test> {
    vec![Test {
        name: "namespaces/attach-detach-follows-events",
        groups: &["namespaces", "block"],
        run: attach_detach_follows_events,
    }]
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
