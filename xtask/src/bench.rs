//! `cargo xtask bench io|provision`: boots the VM once and runs the guest runner's
//! benchmark. `io` compares rnvme with the C nvme driver on the same namespace (last line
//! `io ratio worst-cell: X.XX`); `provision` times turning every VF into a VFIO device
//! directly against the stock C nvme + vfio-pci flow (last line `provision speedup: X.X`).

use std::time::Duration;

use anyhow::{bail, Result};

use crate::kernel;
use crate::module;
use crate::paths::Paths;
use crate::rundir;
use crate::session::{self, BootOpts};
use crate::vm::{self, Echo};

/// The benchmarks the guest runner knows.
pub const BENCHMARKS: &[&str] = &["io", "provision"];

/// Runs benchmark `name`; returns the process exit code.
pub fn run(paths: &Paths, name: &str, timeout: Duration, verbose: bool) -> Result<i32> {
    if !BENCHMARKS.contains(&name) {
        bail!(
            "unknown benchmark {name:?} (known: {})",
            BENCHMARKS.join(", ")
        );
    }
    // Always the release kernel: debug options would distort the comparison.
    let k = kernel::ensure(paths, false)?;
    let (ko, bin) = module::build(paths, &k, true)?.require()?;
    let rundir = rundir::create(paths)?;
    let command = rundir::guest_runner_command(&bin, &ko, &k.modroot, &rundir, &["--bench", name]);
    let boot = BootOpts {
        // Provisioning uses every VF the emulated device can offer.
        vfs: if name == "provision" {
            vm::MAX_VFS
        } else {
            vm::DEFAULT_VFS
        },
        echo: if verbose { Echo::All } else { Echo::FromInit },
        timeout,
        verbose,
    };
    let out = session::boot(paths, &k, &rundir, &command, boot)?;
    Ok(session::exit_code(&out, timeout))
}
