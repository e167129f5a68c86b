// SPDX-License-Identifier: GPL-2.0

//! The controller and namespace identity rnvme reads over its admin queue must match what
//! the C nvme driver reports for the same device.

use std::{path::Path, thread, time::Duration};

use crate::fixture::load_fresh;
use crate::{
    harness::{ensure, Env, Report, Test},
    kmsg,
    module::{self, RNVME},
};

/// The identify tests.
pub fn tests() -> Vec<Test> {
    vec![Test {
        name: "identify/matches-c-driver",
        groups: &["smoke", "identify"],
        run: matches_c_driver,
    }]
}

/// What rnvme logged: `serial S, model M, firmware F, ...` and `namespace N: B blocks of S
/// bytes`.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Logged {
    /// Serial number.
    pub serial: String,
    /// Model number.
    pub model: String,
    /// Firmware revision.
    pub firmware: String,
    /// (nsid, blocks, block size) per namespace.
    pub namespaces: Vec<(u32, u64, u64)>,
}

/// Parses rnvme's identify lines for function `bdf`.
pub fn parse_logged(lines: &[String], bdf: &str) -> Option<Logged> {
    let prefix = format!("rnvme {bdf}: ");
    let mut out = Logged::default();
    let mut found = false;
    for line in lines.iter().filter_map(|l| l.strip_prefix(&prefix)) {
        if let Some(rest) = line.strip_prefix("serial ") {
            let (serial, rest) = rest.split_once(", model ")?;
            let (model, rest) = rest.split_once(", firmware ")?;
            let (firmware, _) = rest.split_once(", controller ID ")?;
            out.serial = serial.to_string();
            out.model = model.to_string();
            out.firmware = firmware.to_string();
            found = true;
        } else if let Some(ns) = line.strip_prefix("namespace ").and_then(parse_namespace) {
            out.namespaces.push(ns);
        }
    }
    found.then_some(out)
}

/// Parses `N: B blocks of S bytes (...)`; other namespace lines (e.g. `N is disk ...`)
/// give `None`.
fn parse_namespace(rest: &str) -> Option<(u32, u64, u64)> {
    let (nsid, rest) = rest.split_once(": ")?;
    let (blocks, rest) = rest.split_once(" blocks of ")?;
    let (size, _) = rest.split_once(" bytes")?;
    Some((nsid.parse().ok()?, blocks.parse().ok()?, size.parse().ok()?))
}

fn matches_c_driver(env: &Env) -> Result<Vec<Report>, String> {
    let mark = kmsg::mark()?;
    let pf = load_fresh(env)?;
    let logged =
        parse_logged(&kmsg::since(mark)?, &pf.bdf).ok_or("rnvme logged no identify line")?;
    module::rmmod(RNVME)?;

    module::modprobe(&env.modroot, "nvme")?;
    // The C driver probes asynchronously: wait for its controller and namespace.
    let ctrl = Path::new("/sys/class/nvme/nvme0");
    let disk = Path::new("/sys/block/nvme0n1");
    let mut waited = 0;
    while !(ctrl.join("serial").exists() && disk.join("size").exists()) && waited < 200 {
        thread::sleep(Duration::from_millis(50));
        waited += 1;
    }
    let serial = module::sysfs_read(&ctrl.join("serial"));
    let model = module::sysfs_read(&ctrl.join("model"));
    let firmware = module::sysfs_read(&ctrl.join("firmware_rev"));
    let sectors = module::sysfs_read(&disk.join("size"));
    module::modprobe_remove(&env.modroot, "nvme")?;
    let (serial, model, firmware, sectors) = (serial?, model?, firmware?, sectors?);

    ensure(logged.serial == serial, || {
        format!("serial: rnvme {:?}, C driver {serial:?}", logged.serial)
    })?;
    ensure(logged.model == model, || {
        format!("model: rnvme {:?}, C driver {model:?}", logged.model)
    })?;
    ensure(logged.firmware == firmware, || {
        format!(
            "firmware: rnvme {:?}, C driver {firmware:?}",
            logged.firmware
        )
    })?;
    let sectors: u64 = sectors
        .parse()
        .map_err(|e| format!("size {sectors:?}: {e}"))?;
    let ns1 = logged
        .namespaces
        .iter()
        .find(|n| n.0 == 1)
        .ok_or_else(|| format!("rnvme reported no namespace 1: {:?}", logged.namespaces))?;
    ensure(ns1.1 * ns1.2 == sectors * 512, || {
        format!(
            "namespace 1: rnvme {} x {} bytes, C driver {sectors} sectors",
            ns1.1, ns1.2
        )
    })?;
    Ok(vec![])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_identify_lines() {
        let lines: Vec<String> = [
            "rnvme 0000:01:00.0: serial RNVME0001, model QEMU NVMe Ctrl, firmware 10.0.2, controller ID 0, MDTS 512 KiB, 256 namespace IDs",
            "rnvme 0000:01:00.0: namespace 1: 524288 blocks of 512 bytes (256 MiB)",
            "rnvme 0000:01:00.0: namespace 1 is disk rnvme0n1",
            "rnvme 0000:01:00.1: namespace 9: 1 blocks of 512 bytes (0 MiB)",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        let l = parse_logged(&lines, "0000:01:00.0").expect("logged");
        assert_eq!(l.serial, "RNVME0001");
        assert_eq!(l.model, "QEMU NVMe Ctrl");
        assert_eq!(l.firmware, "10.0.2");
        assert_eq!(l.namespaces, vec![(1, 524_288, 512)]);
        assert!(parse_logged(&lines[1..], "0000:01:00.0").is_none());
    }
}
