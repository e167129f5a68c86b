//! `cargo xtask bench io|insns|provision|migrate|migrate-vm`: boots the VM once and runs
//! the guest runner's benchmark. `io` compares rnvme with the C nvme driver on the same
//! namespace (last line `io ratio worst-cell: X.XX`); `insns` counts the guest instructions
//! per I/O of both drivers' own code in the same workloads (`crate::insns`; last line
//! `insns ratio worst-cell: X.XX`); `provision` times turning every VF into a VFIO device
//! directly against the stock C nvme + vfio-pci flow (last line `provision speedup:
//! X.X`); `migrate` times a VF's device downtime (last line `migrate downtime p50: X ms`);
//! `migrate-vm` migrates a nested guest with QEMU, with and without the VF (last line
//! `migrate-vm downtime ratio: X.XX`); `migrate-many` the downtime of 1, 2, 4 and 8 VF
//! migrations at once (last line `migrate-many downtime ratio 8/1: X.XX`).

use std::time::Duration;

use anyhow::{bail, Result};

use crate::insns;
use crate::kernel;
use crate::module;
use crate::paths::Paths;
use crate::qemu;
use crate::rundir;
use crate::session::{self, BootOpts};
use crate::vm::{self, Echo};

/// A benchmark the guest runner knows.
#[derive(Debug, Clone, Copy)]
pub struct Benchmark {
    /// Its name (`--bench <name>` of the guest runner).
    pub name: &'static str,
    /// The VFs the emulated PF offers for it.
    pub sizing: vm::VfSizing,
    /// How long its VM may run unless `--timeout` says otherwise, in seconds.
    pub timeout_secs: u64,
}

/// The VM timeout of most benchmarks, in seconds.
const DEFAULT_TIMEOUT_SECS: u64 = 1800;

/// The benchmarks (provisioning uses every VF QEMU's model can have; `migrate` two VFs
/// with room for 8 I/O queue pairs each; `migrate-vm` two VFs as the tests have them, and
/// three nested guests that boot and migrate under nested TCG for about an hour;
/// `migrate-many` 8 pairs of VFs).
pub const BENCHMARKS: &[Benchmark] = &[
    Benchmark {
        name: "io",
        sizing: vm::VfSizing::default_for(vm::DEFAULT_VFS),
        timeout_secs: DEFAULT_TIMEOUT_SECS,
    },
    Benchmark {
        name: "insns",
        sizing: vm::VfSizing::default_for(vm::DEFAULT_VFS),
        timeout_secs: DEFAULT_TIMEOUT_SECS,
    },
    Benchmark {
        name: "provision",
        sizing: vm::VfSizing::default_for(vm::MAX_VFS),
        timeout_secs: DEFAULT_TIMEOUT_SECS,
    },
    Benchmark {
        name: "migrate",
        sizing: vm::VfSizing {
            vfs: 2,
            queues: 9,
            vectors: 9,
        },
        timeout_secs: DEFAULT_TIMEOUT_SECS,
    },
    Benchmark {
        name: "migrate-vm",
        sizing: vm::VfSizing::default_for(2),
        timeout_secs: 3 * 3600,
    },
    Benchmark {
        name: "migrate-many",
        sizing: vm::VfSizing::default_for(16),
        timeout_secs: DEFAULT_TIMEOUT_SECS,
    },
];

/// Benchmark `name`.
pub fn find(name: &str) -> Result<Benchmark> {
    match BENCHMARKS.iter().find(|b| b.name == name) {
        Some(b) => Ok(*b),
        None => {
            let known: Vec<&str> = BENCHMARKS.iter().map(|b| b.name).collect();
            bail!("unknown benchmark {name:?} (known: {})", known.join(", "))
        }
    }
}

/// Runs benchmark `name`, killing its VM after `timeout` (its own default if `None`);
/// returns the process exit code.
pub fn run(paths: &Paths, name: &str, timeout: Option<Duration>, verbose: bool) -> Result<i32> {
    let bench = find(name)?;
    let sizing = bench.sizing;
    let timeout = timeout.unwrap_or(Duration::from_secs(bench.timeout_secs));
    // Always the release kernel: debug options would distort the comparison.
    let k = kernel::ensure(paths, false)?;
    let (ko, bin) = module::build(paths, &k, true)?.require()?;
    let q = qemu::ensure(paths)?;
    let rundir = rundir::create(paths)?;
    let (ko, bin) = rundir::stage(&rundir, &ko, &bin)?;
    let command = rundir::guest_runner_command(&bin, &ko, &k.modroot, &rundir, &["--bench", name]);
    let boot = BootOpts {
        sizing,
        // Multi-threaded TCG, as every benchmark result so far was measured: it runs the
        // vCPUs in parallel, and a (rare) hang only costs a rerun of the benchmark.
        mttcg: true,
        echo: if verbose { Echo::All } else { Echo::FromInit },
        timeout,
        verbose,
        lm_track: true,
    };
    if name != "insns" {
        let out = session::boot(paths, &k, &q, &rundir, &command, boot)?;
        return Ok(session::exit_code(&out, timeout));
    }
    let lib = insns::plugin(paths, &q)?;
    let plugin = Some(insns::plugin_arg(&lib, &rundir));
    let out = session::boot_with_plugin(paths, &k, &q, &rundir, &command, boot, plugin)?;
    let code = session::exit_code(&out, timeout);
    if code != 0 {
        return Ok(code);
    }
    insns::report(&insns::analyze(&rundir, &insns::windows(&out.lines))?);
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_benchmark_vm_is_one_qemu_accepts() {
        for b in BENCHMARKS {
            let p = vm::NvmeParams::for_sizing(b.sizing);
            assert!(p.check().is_ok(), "{}: {p:?}", b.name);
        }
        let m = find("migrate").unwrap().sizing;
        // 8 I/O queue pairs and an admin queue per VF.
        assert_eq!((m.vfs, m.queues, m.vectors), (2, 9, 9));
        // Two VFs to ping-pong the nested guest between.
        assert_eq!(find("migrate-vm").unwrap().sizing.vfs, 2);
        // Eight pairs migrating at once.
        assert_eq!(find("migrate-many").unwrap().sizing.vfs, 16);
    }

    #[test]
    fn timeouts() {
        assert_eq!(find("io").unwrap().timeout_secs, 1800);
        // Three nested guests, each booted once and migrated eight times.
        assert_eq!(find("migrate-vm").unwrap().timeout_secs, 10800);
        assert!(find("nope").is_err());
    }
}
