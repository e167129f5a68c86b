// SPDX-License-Identifier: GPL-2.0

//! `--bench migrate-many`: what migrating many VFs at once costs each migration, in one VM
//! boot with 16 VFs (8 pairs, the shared namespace on all of them, in vfio mode).
//!
//! Cells of 1, 2, 4 and 8 pairs: in each, that many pairs (one thread each, the userspace
//! NVMe driver over VFIO) migrate their controller [`ROUNDS`] times back and forth, every
//! round released together, the suspends waiting for every pair's PRE_COPY, as
//! `concurrency/8-migrations-under-fio` does (its `Pair`, without the fio load): writes
//! before, in flight and queued on the suspended source, all read back on the
//! destination. The downtime of each migration runs from the suspend request to the
//! destination running. Prints per cell the downtime (p50, min, max over every migration
//! of the cell); the last line is `migrate-many downtime ratio 8/1: X.XX`, the p50 of 8
//! pairs at once over the p50 of one pair alone.

use std::{
    sync::{Barrier, Mutex},
    thread,
    time::Duration,
};

use super::median;
use crate::{
    fixture::set_mode,
    harness::Env,
    module::{self, RNVME},
    pci,
    sriov::{list_secondary, set_numvfs, vfs, CHARDEV},
    tests::concurrency::Pair,
};

/// Pairs at once, cell by cell.
const CELLS: [usize; 4] = [1, 2, 4, 8];
/// Migrations of each pair in a cell (there and back, and so on).
const ROUNDS: usize = 6;
/// Pages each pair writes before each migration.
const PAGES: u64 = 2;

/// Runs the benchmark.
pub fn run(env: &Env) -> Result<(), String> {
    module::ensure_unloaded(RNVME)?;
    if module::is_loaded("nvme") {
        module::modprobe_remove(&env.modroot, "nvme")?;
    }
    let pf = pci::nvme_pf()?;
    module::insmod(&env.module)?;
    let r = (|| {
        let n = 2 * CELLS[CELLS.len() - 1];
        set_numvfs(&pf, n as u16)?;
        let vfs = vfs(&pf)?;
        if vfs.len() != n {
            return Err(format!("{} VFs, want {n}", vfs.len()));
        }
        let secondary = list_secondary()?;
        let scids = secondary
            .iter()
            .filter(|s| s.vfn >= 1 && s.vfn <= n as u64)
            .map(|s| s.scid.to_string())
            .collect::<Vec<_>>()
            .join(",");
        module::run("nvme", &["attach-ns", CHARDEV, "-n", "2", "-c", &scids])?;
        let r = (|| {
            for vf in &vfs {
                set_mode(vf, "vfio")?;
            }
            // A warm-up cell (TCG translates the code paths once).
            cell(&vfs, 1)?;
            let mut p50s = Vec::new();
            for pairs in CELLS {
                let ms: Vec<f64> = cell(&vfs, pairs)?
                    .iter()
                    .map(|d| d.as_secs_f64() * 1e3)
                    .collect();
                let p50 = median(&ms);
                let (min, max) = ms
                    .iter()
                    .fold((f64::MAX, f64::MIN), |(lo, hi), &x| (lo.min(x), hi.max(x)));
                println!(
                    "migrate-many {pairs} pair(s) at once: downtime p50 {p50:.1} ms (min \
                     {min:.1}, max {max:.1}, {} migrations)",
                    ms.len()
                );
                p50s.push(p50);
            }
            let ratio = p50s[p50s.len() - 1] / p50s[0].max(1e-3);
            println!("migrate-many downtime ratio 8/1: {ratio:.2}");
            Ok(())
        })();
        for vf in &vfs {
            let _ = set_mode(vf, "nvme");
        }
        module::run("nvme", &["detach-ns", CHARDEV, "-n", "2", "-c", &scids])?;
        r
    })();
    let _ = set_numvfs(&pf, 0);
    module::rmmod(RNVME)?;
    r
}

/// `pairs` pairs (VFs 1 and 2, 3 and 4, ...) migrating at once, [`ROUNDS`] times each;
/// returns every migration's downtime.
fn cell(vfs: &[pci::Function], pairs: usize) -> Result<Vec<Duration>, String> {
    let (ready, go) = (Barrier::new(pairs), Barrier::new(pairs));
    let downtimes = Mutex::new(Vec::new());
    let results: Vec<Result<(), String>> = thread::scope(|s| {
        let threads: Vec<_> = (0..pairs)
            .map(|k| {
                let (ready, go, downtimes) = (&ready, &go, &downtimes);
                let (a, b) = (&vfs[2 * k], &vfs[2 * k + 1]);
                s.spawn(move || {
                    // Every thread passes every barrier, failed or not.
                    let mut pair = Pair::open(k, a, b);
                    for _ in 0..ROUNDS {
                        ready.wait();
                        let prepared = pair.as_mut().map_err(|e| e.clone()).and_then(|p| {
                            p.write_sync(PAGES)?;
                            p.prepare()
                        });
                        go.wait();
                        let moved = prepared.and_then(|prep| {
                            pair.as_mut()
                                .map_err(|e| e.clone())
                                .and_then(|p| p.switch_over(prep))
                        });
                        match moved {
                            Ok(d) => {
                                if let Ok(mut v) = downtimes.lock() {
                                    v.push(d.len());
                                }
                            }
                            Err(e) => {
                                if pair.is_ok() {
                                    pair = Err(e);
                                }
                            }
                        }
                    }
                    pair?.verify()
                })
            })
            .collect();
        threads
            .into_iter()
            .map(|t| t.join().unwrap_or_else(|_| Err("a thread panicked".into())))
            .collect()
    });
    for r in results {
        r.map_err(|e| format!("{pairs} pair(s) at once: {e}"))?;
    }
    downtimes.into_inner().map_err(|_| "poisoned".to_string())
}
