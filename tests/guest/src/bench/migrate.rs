// SPDX-License-Identifier: GPL-2.0

//! `--bench migrate`: the cost of a live migration of a VF's controller, in one VM boot
//! with two VFs whose secondary controllers have 1, 4 and 8 I/O queue pairs in turn (the
//! module loaded with `vf_queues` and `vf_vectors` to match; the VM's PF offers 9 queue
//! and 9 vector resources per VF).
//!
//! Each sample migrates the userspace NVMe driver's controller (an admin queue and all I/O
//! queue pairs, a write done just before) from one VF to the other through the VFIO
//! migration uAPI, as a VMM does with PRE_COPY: the source enters PRE_COPY and yields the
//! compatibility section, which the destination (RESUMING) takes. Then the clock runs:
//! the source goes to STOP_COPY (suspend, Get Controller State), its stream is read and
//! written to the destination, which goes to STOP (checks, Set Controller State) and to
//! RUNNING (Resume). That span is the device downtime. The next sample migrates back.
//!
//! Prints per cell the downtime (p50, min, max over 10 samples), the TP4159 controller
//! state size, the whole stream and the PRE_COPY bytes; the last line is `migrate downtime
//! p50: X ms`, the largest cell's median. The bars: state under 16 KiB for 4 queue pairs,
//! downtime p50 under 50 ms.

use std::time::{Duration, Instant};

use super::median;
use crate::fixture::set_mode;
use crate::{
    disk::pattern,
    harness::Env,
    module::{self, RNVME},
    pci::{self, Function},
    sriov::{scid_of, set_numvfs, vfs, CHARDEV},
    vfio_client::{Client, Path, Q},
    vfio_migration::{read_all, set_state, state, write_all, ReadEnd, State},
};

/// I/O queue pairs of the cells.
const CELLS: [u16; 3] = [1, 4, 8];
/// Samples per cell.
const SAMPLES: usize = 10;
/// The shared namespace.
const NSID: u32 = 2;
/// Bytes of the stream before the controller state: the compatibility section.
const SECTION_OVERHEAD: usize = 16 + 20 + 16;

/// One migration's measurements.
struct Sample {
    downtime: Duration,
    precopy: usize,
    stream: usize,
}

/// Runs the benchmark.
pub fn run(env: &Env) -> Result<(), String> {
    module::ensure_unloaded(RNVME)?;
    if module::is_loaded("nvme") {
        module::modprobe_remove(&env.modroot, "nvme")?;
    }
    let pf = pci::nvme_pf()?;
    let mut worst = 0.0f64;
    for pairs in CELLS {
        let resources = (pairs + 1).to_string();
        module::run(
            "insmod",
            &[
                &env.module.to_string_lossy(),
                &format!("vf_queues={resources}"),
                &format!("vf_vectors={resources}"),
            ],
        )?;
        let r = cell(&pf, pairs);
        let _ = set_numvfs(&pf, 0);
        module::rmmod(RNVME)?;
        let samples = r?;
        let ms: Vec<f64> = samples
            .iter()
            .map(|s| s.downtime.as_secs_f64() * 1e3)
            .collect();
        let p50 = median(&ms);
        let (min, max) = ms
            .iter()
            .fold((f64::MAX, f64::MIN), |(lo, hi), &x| (lo.min(x), hi.max(x)));
        let stream = samples[0].stream;
        let precopy = samples[0].precopy;
        let state = stream - precopy - SECTION_OVERHEAD;
        println!(
            "migrate {pairs} I/O queue pair(s): downtime p50 {p50:.1} ms (min {min:.1}, max \
             {max:.1}, {SAMPLES} samples); controller state {state} bytes, stream {stream} \
             bytes, PRE_COPY {precopy} bytes"
        );
        if pairs == 4 && state >= 16 * 1024 {
            println!("migrate: the controller state of 4 queue pairs is over 16 KiB");
        }
        worst = worst.max(p50);
    }
    println!("migrate downtime p50: {worst:.1} ms");
    Ok(())
}

/// One cell: two VFs with `pairs` I/O queue pairs each, the namespace on both, and
/// [`SAMPLES`] migrations back and forth.
fn cell(pf: &Function, pairs: u16) -> Result<Vec<Sample>, String> {
    set_numvfs(pf, 2)?;
    let vfs = vfs(pf)?;
    let [vf1, vf2] = vfs.as_slice() else {
        return Err(format!("{} VFs, want 2", vfs.len()));
    };
    let controllers = format!("{},{}", scid_of(1)?, scid_of(2)?);
    module::run(
        "nvme",
        &["attach-ns", CHARDEV, "-n", "2", "-c", &controllers],
    )?;
    set_mode(vf1, "vfio")?;
    set_mode(vf2, "vfio")?;
    let r = (|| {
        let mut clients =
            Client::open_many(&[&vf1.bdf, &vf2.bdf], Path::Container).map_err(String::from)?;
        let mut b = clients.pop().ok_or("no client")?;
        let mut a = clients.pop().ok_or("no client")?;
        a.create_io_queue()?;
        a.create_more_io_queues(pairs)?;
        let lba = a.lba_size(NSID)?;
        // A warm-up migration there and back (TCG translates the code paths once).
        sample(&mut a, &mut b, lba, 0)?;
        sample(&mut b, &mut a, lba, 1)?;
        let mut out = Vec::new();
        for i in 0..SAMPLES {
            let s = if i % 2 == 0 {
                sample(&mut a, &mut b, lba, i as u64 + 2)?
            } else {
                sample(&mut b, &mut a, lba, i as u64 + 2)?
            };
            out.push(s);
        }
        Ok(out)
    })();
    let _ = set_mode(vf1, "nvme");
    let _ = set_mode(vf2, "nvme");
    module::run(
        "nvme",
        &["detach-ns", CHARDEV, "-n", "2", "-c", &controllers],
    )?;
    r
}

/// Migrates `src`'s controller to `dst` and checks the destination completes I/O.
fn sample(src: &mut Client, dst: &mut Client, lba: usize, n: u64) -> Result<Sample, String> {
    let data = pattern(4096, 0xbe0 + n);
    src.write_page(NSID, 4096 * (300 + n), lba, &data)?;
    let mut out = set_state(src, State::PreCopy)
        .map_err(|e| format!("PRE_COPY: {e}"))?
        .ok_or("no saving fd")?;
    let (compat, end) = read_all(&mut out, 4096).map_err(|e| format!("read: {e}"))?;
    if end != ReadEnd::Temporary {
        return Err(format!("PRE_COPY read ended {end:?}"));
    }
    let mut into = set_state(dst, State::Resuming)
        .map_err(|e| format!("RESUMING: {e}"))?
        .ok_or("no resuming fd")?;
    write_all(&mut into, &compat, 65536).map_err(|e| format!("write: {e}"))?;

    let t0 = Instant::now();
    set_state(src, State::StopCopy).map_err(|e| format!("STOP_COPY: {e}"))?;
    let (rest, _) = read_all(&mut out, 65536).map_err(|e| format!("read: {e}"))?;
    write_all(&mut into, &rest, 65536).map_err(|e| format!("write: {e}"))?;
    set_state(dst, State::Stop).map_err(|e| format!("load: {e}"))?;
    set_state(dst, State::Running).map_err(|e| format!("RUNNING: {e}"))?;
    let downtime = t0.elapsed();

    set_state(src, State::Stop).map_err(|e| format!("STOP: {e}"))?;
    dst.adopt_queues(src);
    if state(dst).map_err(|e| e.to_string())? != State::Running {
        return Err("the destination is not running".into());
    }
    if dst.read_page(NSID, 4096 * (300 + n), lba)? != data {
        return Err("the destination does not read what the source wrote".into());
    }
    // Nothing is left over on the I/O queue.
    if dst.reap(Q::Io, Duration::ZERO)?.is_some() {
        return Err("a stray completion on the destination".into());
    }
    Ok(Sample {
        downtime,
        precopy: compat.len(),
        stream: compat.len() + rest.len(),
    })
}
