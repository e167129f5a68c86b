// SPDX-License-Identifier: GPL-2.0

//! Smoke tests: the module loads, binds the NVMe PF, reports the controller's real identity,
//! unbinds and unloads cleanly.

use std::{fs, path::Path, thread, time::Duration};

use crate::{
    fixture::load_fresh,
    harness::{ensure, Env, Report, Test},
    identity, kmsg,
    mmio::BarMap,
    module::{self, RNVME},
};

/// The smoke tests.
pub fn tests() -> Vec<Test> {
    vec![
        Test {
            name: "smoke/module-alias",
            groups: &["smoke"],
            run: module_alias,
        },
        Test {
            name: "smoke/load-binds-pf",
            groups: &["smoke"],
            run: load_binds_pf,
        },
        Test {
            name: "smoke/identity-matches-bar0",
            groups: &["smoke"],
            run: identity_matches_bar0,
        },
        Test {
            name: "smoke/bar0-region-requested",
            groups: &["smoke"],
            run: bar0_region_requested,
        },
        Test {
            name: "smoke/unbind-rebind",
            groups: &["smoke"],
            run: unbind_rebind,
        },
        Test {
            name: "smoke/unload-unbinds",
            groups: &["smoke"],
            run: unload_unbinds,
        },
    ]
}

fn module_alias(env: &Env) -> Result<Vec<Report>, String> {
    let aliases = module::run("modinfo", &["-F", "alias", &env.module.to_string_lossy()])?;
    ensure(
        aliases.lines().any(|a| a == "pci:v*d*sv*sd*bc01sc08i02*"),
        || format!("no NVMe class alias in {aliases:?}"),
    )?;
    Ok(vec![])
}

fn load_binds_pf(env: &Env) -> Result<Vec<Report>, String> {
    let mark = kmsg::mark()?;
    let pf = load_fresh(env)?;
    let driver = pf.driver();
    ensure(driver.as_deref() == Some(RNVME), || {
        format!("{} is bound to {driver:?}, not rnvme", pf.bdf)
    })?;
    let log = kmsg::since(mark)?;
    let id = identity::latest(&log, &pf.bdf)
        .ok_or_else(|| format!("no identity line for {} in {log:?}", pf.bdf))?;
    ensure(id.kind == "PF", || format!("reported as {}", id.kind))?;
    module::rmmod(RNVME)?;
    Ok(vec![])
}

fn identity_matches_bar0(env: &Env) -> Result<Vec<Report>, String> {
    let mark = kmsg::mark()?;
    let pf = load_fresh(env)?;
    let id = identity::latest(&kmsg::since(mark)?, &pf.bdf)
        .ok_or_else(|| "no identity line".to_string())?;
    let bar = BarMap::open(&pf.dir().join("resource0"), 4096)?;
    let cap = bar.read64(0)?;
    let vs = bar.read32(8)?;
    module::rmmod(RNVME)?;

    ensure(id.cap == cap, || {
        format!("driver logged CAP {:#x}, BAR0 reads {cap:#x}", id.cap)
    })?;
    let vs_text = format!("{}.{}.{}", vs >> 16, (vs >> 8) & 0xff, vs & 0xff);
    ensure(id.version == vs_text, || {
        format!("driver logged VS {}, BAR0 reads {vs_text}", id.version)
    })?;
    let (vendor, device) = (pf.hex_attr("vendor")?, pf.hex_attr("device")?);
    ensure(
        (u32::from(id.vendor), u32::from(id.device)) == (vendor, device),
        || {
            format!(
                "driver logged {:04x}:{:04x}, sysfs says {vendor:04x}:{device:04x}",
                id.vendor, id.device
            )
        },
    )?;
    Ok(vec![])
}

/// Start addresses of the /proc/iomem regions named `rnvme` (lines `  start-end : rnvme`).
fn iomem_rnvme_regions() -> Result<Vec<u64>, String> {
    let iomem = fs::read_to_string("/proc/iomem").map_err(|e| format!("/proc/iomem: {e}"))?;
    iomem
        .lines()
        .filter_map(|l| l.trim().split_once(" : "))
        .filter(|(_, name)| *name == "rnvme")
        .map(|(range, _)| {
            let start = range.split('-').next().unwrap_or_default();
            u64::from_str_radix(start, 16).map_err(|e| format!("{range}: {e}"))
        })
        .collect()
}

fn bar0_region_requested(env: &Env) -> Result<Vec<Report>, String> {
    let pf = load_fresh(env)?;
    let held = iomem_rnvme_regions()?;
    module::rmmod(RNVME)?;
    let after = iomem_rnvme_regions()?;
    let resource = fs::read_to_string(pf.dir().join("resource")).map_err(|e| e.to_string())?;
    let bar0 = resource
        .split_whitespace()
        .next()
        .and_then(|s| u64::from_str_radix(s.trim_start_matches("0x"), 16).ok())
        .ok_or_else(|| format!("cannot parse {resource:?}"))?;
    ensure(held == [bar0], || {
        format!("regions held by rnvme {held:x?}, BAR0 starts at {bar0:#x}")
    })?;
    ensure(after.is_empty(), || {
        format!("regions left after unload: {after:x?}")
    })?;
    Ok(vec![])
}

fn unbind_rebind(env: &Env) -> Result<Vec<Report>, String> {
    let pf = load_fresh(env)?;
    let drv = Path::new("/sys/bus/pci/drivers/rnvme");
    let mark = kmsg::mark()?;
    module::sysfs_write(&drv.join("unbind"), &pf.bdf)?;
    ensure(pf.driver().is_none(), || {
        format!("still bound to {:?}", pf.driver())
    })?;
    let log = kmsg::since(mark)?;
    ensure(
        log.iter()
            .any(|l| l.starts_with(&format!("rnvme {}: unbound", pf.bdf))),
        || format!("no unbind message in {log:?}"),
    )?;
    let mark = kmsg::mark()?;
    module::sysfs_write(&drv.join("bind"), &pf.bdf)?;
    ensure(pf.driver().as_deref() == Some(RNVME), || {
        "not bound again".to_string()
    })?;
    ensure(
        identity::latest(&kmsg::since(mark)?, &pf.bdf).is_some(),
        || "rebind logged no identity".to_string(),
    )?;
    module::rmmod(RNVME)?;
    Ok(vec![])
}

fn unload_unbinds(env: &Env) -> Result<Vec<Report>, String> {
    let pf = load_fresh(env)?;
    module::rmmod(RNVME)?;
    // sysfs entries of a removed module disappear synchronously with rmmod.
    thread::sleep(Duration::from_millis(50));
    ensure(!module::is_loaded(RNVME), || {
        "module still loaded".to_string()
    })?;
    ensure(!Path::new("/sys/bus/pci/drivers/rnvme").exists(), || {
        "driver directory left behind".to_string()
    })?;
    ensure(pf.driver().is_none(), || {
        format!("PF still bound to {:?}", pf.driver())
    })?;
    Ok(vec![])
}
