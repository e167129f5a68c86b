// SPDX-License-Identifier: GPL-2.0

//! `--bench insns`: the same namespace and workloads as `io`, bound alternately to the C
//! nvme driver and to rnvme, but counted instead of timed. The host's QEMU runs the
//! `insn_count` TCG plugin (`tests/vm/insn-count/`); around a fio run of a fixed number of
//! I/Os, this benchmark executes `cpuid` with the plugin's marker leaves, so that the
//! plugin zeroes its counts before the run and writes them out after it. The host adds up
//! the instructions each driver's code executed per I/O (`cargo xtask bench insns`), using
//! the kernel's symbols, which this benchmark copies to the run directory.
//!
//! Prints one `insns window <n> <cell> <driver> <I/Os>` line per dump, in dump order.

use std::fs;

use super::{
    io::{bind, fio_reads, set_up, tear_down, Driver, CELLS},
    staged_fio::StagedFio,
};
use crate::harness::Env;

/// The marker leaf that zeroes the plugin's counts.
const START: u32 = 0x524e_5601;
/// The marker leaf that makes the plugin write its counts out.
const DUMP: u32 = 0x524e_5602;

/// Runs `cpuid` with leaf `leaf`: a marker for the host's plugin (the result is unused).
fn mark(leaf: u32) {
    #[cfg(target_arch = "x86_64")]
    let _ = std::hint::black_box(core::arch::x86_64::__cpuid(leaf));
    #[cfg(not(target_arch = "x86_64"))]
    compile_error!("the insns benchmark marks its windows with x86 cpuid");
}

/// I/Os of one counted fio run of `cell`: 64 MiB of 4 KiB reads, 128 MiB of 128 KiB ones.
fn ios_of(cell: &str) -> u32 {
    if cell.starts_with("4k") {
        16384
    } else {
        1024
    }
}

/// Runs fio for `ios` I/Os with `args` on `driver`'s disk; returns how many it did.
fn fio(fio: &StagedFio, driver: Driver, args: &[&str], ios: u32) -> Result<u64, String> {
    let number = format!("--number_ios={ios}");
    let mut argv = vec![number.as_str()];
    argv.extend_from_slice(args);
    fio_reads(fio, driver, &argv)?["total_ios"]
        .as_u64()
        .ok_or_else(|| "fio json has no read total_ios".to_string())
}

/// Runs the benchmark; returns an error if a run failed.
pub fn run(env: &Env) -> Result<(), String> {
    let (pf, staged) = set_up(env)?;
    let mut window = 0;
    for cell in CELLS {
        let ios = ios_of(cell.name);
        for d in [Driver::C, Driver::Rust] {
            bind(&pf, d)?;
            // Warm-up: the code and data the run uses are translated and cached first.
            fio(&staged, d, cell.args, ios / 8)?;
            mark(START);
            let done = fio(&staged, d, cell.args, ios)?;
            mark(DUMP);
            if done == 0 {
                return Err(format!("fio did no I/O on {} ({})", d.disk(), cell.name));
            }
            println!("insns window {window} {} {} {done}", cell.name, d.name());
            window += 1;
        }
    }
    let symbols = fs::read("/proc/kallsyms").map_err(|e| format!("/proc/kallsyms: {e}"))?;
    fs::write(env.out.join("kallsyms"), symbols)
        .map_err(|e| format!("cannot copy /proc/kallsyms to the run directory: {e}"))?;
    tear_down(env, &pf)?;
    println!("insns windows: {window}");
    Ok(())
}
