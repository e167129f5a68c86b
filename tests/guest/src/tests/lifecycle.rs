// SPDX-License-Identifier: GPL-2.0

//! Module lifecycle: repeated load/unload, and coexistence with the C nvme driver.

use std::{fs, thread, time::Duration};

use crate::fixture::load_fresh;
use crate::{
    harness::{ensure, Env, Report, Test},
    module::{self, RNVME},
    pci,
};

/// The lifecycle tests.
pub fn tests() -> Vec<Test> {
    vec![
        Test {
            name: "lifecycle/c-driver-handover",
            groups: &["lifecycle"],
            run: c_driver_handover,
        },
        Test {
            name: "lifecycle/load-unload-50",
            groups: &["lifecycle", "stress"],
            run: load_unload_50,
        },
    ]
}

/// The test that runs after every other: it leaves rnvme bound for the guest's reboot.
pub fn shutdown_tests() -> Vec<Test> {
    vec![Test {
        name: "lifecycle/reboot-with-driver-bound",
        groups: &["lifecycle", "shutdown"],
        run: reboot_with_driver_bound,
    }]
}

/// Arms `cargo xtask test`'s shutdown check (`lifecycle/shutdown-at-reboot`): loads rnvme,
/// checks that it serves the PF, and records the PF's address in `shutdown-expected`. The
/// guest's init then reboots through the kernel, which calls rnvme's PCI `shutdown`
/// callback (CC.SHN), and xtask looks for its "shut down" line with SHST complete in the
/// serial log after the exit marker. The only test that leaves the module loaded.
fn reboot_with_driver_bound(env: &Env) -> Result<Vec<Report>, String> {
    let pf = load_fresh(env)?;
    ensure(pf.driver().as_deref() == Some(RNVME), || {
        format!("{} is bound to {:?}", pf.bdf, pf.driver())
    })?;
    // The disk has seen a write before the reboot (CC.SHN makes the controller flush its
    // volatile cache).
    let mut disk = crate::disk::Direct::open()?;
    disk.write_at(0, &crate::disk::pattern(4096, 0x5d))?;
    drop(disk);
    let path = env.out.join("shutdown-expected");
    fs::write(&path, &pf.bdf).map_err(|e| format!("{}: {e}", path.display()))?;
    Ok(vec![])
}

/// Waits up to `timeout` for the function's driver to become `want`.
fn wait_for_driver(f: &pci::Function, want: Option<&str>, timeout: Duration) -> bool {
    let step = Duration::from_millis(50);
    let mut waited = Duration::ZERO;
    while f.driver().as_deref() != want {
        if waited >= timeout {
            return false;
        }
        thread::sleep(step);
        waited += step;
    }
    true
}

/// The C driver (the baseline of later benchmarks) and rnvme take the same PF in turn: each
/// releases the function completely for the other.
fn c_driver_handover(env: &Env) -> Result<Vec<Report>, String> {
    let pf = load_fresh(env)?;
    module::rmmod(RNVME)?;
    module::modprobe(&env.modroot, "nvme")?;
    ensure(
        wait_for_driver(&pf, Some("nvme"), Duration::from_secs(10)),
        || format!("C nvme did not bind {} (driver {:?})", pf.bdf, pf.driver()),
    )?;
    module::modprobe_remove(&env.modroot, "nvme")?;
    ensure(wait_for_driver(&pf, None, Duration::from_secs(10)), || {
        "C nvme did not release the PF".to_string()
    })?;
    module::insmod(&env.module)?;
    ensure(pf.driver().as_deref() == Some(RNVME), || {
        format!(
            "rnvme did not bind after the C driver (driver {:?})",
            pf.driver()
        )
    })?;
    module::rmmod(RNVME)?;
    Ok(vec![])
}

/// Unreclaimable slab memory in KiB, from /proc/meminfo.
fn slab_unreclaimable_kib() -> Result<u64, String> {
    let meminfo = fs::read_to_string("/proc/meminfo").map_err(|e| e.to_string())?;
    meminfo
        .lines()
        .find_map(|l| l.strip_prefix("SUnreclaim:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .ok_or_else(|| "no SUnreclaim in /proc/meminfo".to_string())
}

/// Loads and unloads the module 50 times; every load binds the PF and every unload releases
/// it. Unreclaimable slab must not grow by more than 1 MiB over the 50 cycles (a coarse leak
/// check; the debug kernel's kmemleak scan is the precise one).
fn load_unload_50(env: &Env) -> Result<Vec<Report>, String> {
    let pf = load_fresh(env)?;
    module::rmmod(RNVME)?;
    let before = slab_unreclaimable_kib()?;
    for i in 1..=50 {
        module::insmod(&env.module).map_err(|e| format!("cycle {i}: {e}"))?;
        ensure(pf.driver().as_deref() == Some(RNVME), || {
            format!("cycle {i}: PF bound to {:?}", pf.driver())
        })?;
        module::rmmod(RNVME).map_err(|e| format!("cycle {i}: {e}"))?;
        ensure(pf.driver().is_none(), || {
            format!("cycle {i}: PF still bound")
        })?;
    }
    let after = slab_unreclaimable_kib()?;
    println!("# SUnreclaim before {before} KiB, after 50 cycles {after} KiB");
    ensure(after <= before + 1024, || {
        format!("unreclaimable slab grew from {before} KiB to {after} KiB over 50 cycles")
    })?;
    Ok(vec![])
}
