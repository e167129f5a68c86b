//! `cargo xtask bench io|insns|provision|migrate`: boots the VM once and runs the guest
//! runner's benchmark. `io` compares rnvme with the C nvme driver on the same namespace
//! (last line `io ratio worst-cell: X.XX`); `insns` counts the guest instructions per I/O
//! of both drivers' own code in the same workloads (`crate::insns`; last line `insns ratio
//! worst-cell: X.XX`); `provision` times turning every VF into a VFIO device directly
//! against the stock C nvme + vfio-pci flow (last line `provision speedup: X.X`);
//! `migrate-many` the downtime of 1, 2, 4 and 8 VF migrations at once (last line
//! `migrate-many downtime ratio 8/1: X.XX`).

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

/// The benchmarks the guest runner knows, each with the VFs the emulated PF offers for it
/// (provisioning uses every VF QEMU's model can have; migration two VFs with room for 8
/// I/O queue pairs each; many migrations 8 pairs of VFs).
pub const BENCHMARKS: &[(&str, vm::VfSizing)] = &[
    ("io", vm::VfSizing::default_for(vm::DEFAULT_VFS)),
    ("insns", vm::VfSizing::default_for(vm::DEFAULT_VFS)),
    ("provision", vm::VfSizing::default_for(vm::MAX_VFS)),
    (
        "migrate",
        vm::VfSizing {
            vfs: 2,
            queues: 9,
            vectors: 9,
        },
    ),
    ("migrate-many", vm::VfSizing::default_for(16)),
];

/// Runs benchmark `name`; returns the process exit code.
pub fn run(paths: &Paths, name: &str, timeout: Duration, verbose: bool) -> Result<i32> {
    let Some(&(_, sizing)) = BENCHMARKS.iter().find(|(known, _)| *known == name) else {
        let known: Vec<&str> = BENCHMARKS.iter().map(|(n, _)| *n).collect();
        bail!("unknown benchmark {name:?} (known: {})", known.join(", "));
    };
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
        for (name, sizing) in BENCHMARKS {
            let p = vm::NvmeParams::for_sizing(*sizing);
            assert!(p.check().is_ok(), "{name}: {p:?}");
        }
        let (_, m) = BENCHMARKS.iter().find(|(n, _)| *n == "migrate").unwrap();
        // 8 I/O queue pairs and an admin queue per VF.
        assert_eq!((m.vfs, m.queues, m.vectors), (2, 9, 9));
    }
}
