// SPDX-License-Identifier: GPL-2.0

//! `--bench io`: the same namespace, bound alternately to the C nvme driver and to rnvme
//! (through `driver_override`), measured with fio in the same VM boot. Prints every sample,
//! each cell's rnvme/C IOPS ratio with its spread, and last `io ratio worst-cell: X.XX`.
//!
//! A cell's ratio is the median of its rounds' ratios: each round runs both drivers back
//! to back (in alternating order), so a slow stretch of the host hits both samples of a
//! round, and one bad round does not move the median. Each driver first runs one
//! unrecorded warm-up sample per cell. fio runs from tmpfs, pinned to one vCPU
//! ([`StagedFio`] says why).

use std::{path::Path, thread, time::Duration};

use super::{mean_spread, median, staged_fio::StagedFio};
use crate::{
    harness::Env,
    module::{self, RNVME},
    pci,
};

/// One fio workload.
pub(super) struct Cell {
    pub(super) name: &'static str,
    pub(super) args: &'static [&'static str],
}

/// The workloads `io` (and `insns`) measure.
pub(super) const CELLS: &[Cell] = &[
    Cell {
        name: "4k-randread-qd1",
        args: &["--rw=randread", "--bs=4k", "--iodepth=1"],
    },
    Cell {
        name: "4k-randread-qd32",
        args: &["--rw=randread", "--bs=4k", "--iodepth=32"],
    },
    Cell {
        name: "128k-seqread-qd8",
        args: &["--rw=read", "--bs=128k", "--iodepth=8"],
    },
];

/// Rounds per cell (one sample of each driver per round, in alternating order).
const SAMPLES: usize = 15;
/// Seconds per fio run.
const RUNTIME: &str = "--runtime=4";

/// A driver under comparison.
#[derive(Clone, Copy)]
pub(super) enum Driver {
    C,
    Rust,
}

impl Driver {
    pub(super) fn name(self) -> &'static str {
        match self {
            Self::C => "nvme",
            Self::Rust => RNVME,
        }
    }

    pub(super) fn disk(self) -> &'static str {
        match self {
            Self::C => "/dev/nvme0n1",
            Self::Rust => "/dev/rnvme0n1",
        }
    }
}

/// Binds the PF to `driver` through `driver_override` and waits for its disk.
pub(super) fn bind(pf: &pci::Function, driver: Driver) -> Result<(), String> {
    if let Some(current) = pf.driver() {
        pf.unbind_from(&current)?;
    }
    module::sysfs_write(&pf.dir().join("driver_override"), driver.name())?;
    module::sysfs_write(Path::new("/sys/bus/pci/drivers_probe"), &pf.bdf)?;
    for _ in 0..400 {
        if Path::new(driver.disk()).exists() {
            return Ok(());
        }
        thread::sleep(Duration::from_millis(25));
    }
    Err(format!(
        "{} did not appear after binding {}",
        driver.disk(),
        driver.name()
    ))
}

/// Runs fio with `args` on `driver`'s disk: direct libaio reads of its first 128 MiB,
/// anywhere in it (no random map); returns the `read` part of fio's JSON report.
pub(super) fn fio_reads(
    fio: &StagedFio,
    driver: Driver,
    args: &[&str],
) -> Result<serde_json::Value, String> {
    let filename = format!("--filename={}", driver.disk());
    let mut argv = vec![
        "--name=bench",
        filename.as_str(),
        "--direct=1",
        "--ioengine=libaio",
        "--size=128M",
        "--norandommap",
        "--output-format=json",
    ];
    argv.extend_from_slice(args);
    let out = fio.run(&argv)?;
    let mut json: serde_json::Value =
        serde_json::from_str(&out).map_err(|e| format!("fio json: {e}"))?;
    Ok(json["jobs"][0]["read"].take())
}

/// Where `io` and `insns` start from: both drivers loaded (rnvme fresh), the NVMe PF found,
/// and fio staged; returns the PF and fio.
pub(super) fn set_up(env: &Env) -> Result<(pci::Function, StagedFio), String> {
    module::ensure_unloaded(RNVME)?;
    let pf = pci::nvme_pf()?;
    module::modprobe(&env.modroot, "nvme")?;
    module::insmod(&env.module)?;
    Ok((pf, StagedFio::stage()?))
}

/// Undoes [`set_up`]: the PF's override cleared and the PF unbound, both drivers unloaded.
pub(super) fn tear_down(env: &Env, pf: &pci::Function) -> Result<(), String> {
    let _ = module::sysfs_write(&pf.dir().join("driver_override"), "");
    if let Some(d) = pf.driver() {
        let _ = pf.unbind_from(&d);
    }
    module::rmmod(RNVME)?;
    module::modprobe_remove(&env.modroot, "nvme")
}

/// Runs one fio sample; returns IOPS.
fn sample(fio: &StagedFio, driver: Driver, cell: &Cell) -> Result<f64, String> {
    let mut args = vec!["--time_based", RUNTIME];
    args.extend_from_slice(cell.args);
    fio_reads(fio, driver, &args)?["iops"]
        .as_f64()
        .ok_or_else(|| "fio json has no read iops".to_string())
}

/// Runs the benchmark; returns an error if a run failed.
pub fn run(env: &Env) -> Result<(), String> {
    let (pf, fio) = set_up(env)?;
    let mut worst = f64::MAX;
    for cell in CELLS {
        for d in [Driver::C, Driver::Rust] {
            bind(&pf, d)?;
            sample(&fio, d, cell)?;
        }
        let mut c = Vec::new();
        let mut rust = Vec::new();
        for i in 0..SAMPLES {
            // Alternate which driver goes first, so drift hits both alike.
            let order = if i % 2 == 0 {
                [Driver::C, Driver::Rust]
            } else {
                [Driver::Rust, Driver::C]
            };
            for d in order {
                bind(&pf, d)?;
                let iops = sample(&fio, d, cell)?;
                println!(
                    "sample {} {} #{}: {:.0} IOPS",
                    cell.name,
                    d.name(),
                    i + 1,
                    iops
                );
                match d {
                    Driver::C => c.push(iops),
                    Driver::Rust => rust.push(iops),
                }
            }
        }
        let (cm, cs) = mean_spread(&c);
        let (rm, rs) = mean_spread(&rust);
        let rounds: Vec<f64> = rust.iter().zip(&c).map(|(r, c)| r / c).collect();
        let ratio = median(&rounds);
        worst = worst.min(ratio);
        println!(
            "cell {}: C {:.0} IOPS (spread {:.1}%), rnvme {:.0} IOPS (spread {:.1}%), ratio {:.2} (median of rounds)",
            cell.name,
            cm,
            cs * 100.0,
            rm,
            rs * 100.0,
            ratio
        );
    }
    tear_down(env, &pf)?;
    println!("io ratio worst-cell: {worst:.2}");
    Ok(())
}
