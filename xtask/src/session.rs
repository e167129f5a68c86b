//! One VM boot for a shell command line: run dir, cmd.sh, boot, and turning
//! the outcome into xtask's exit code (for `vm` and `demo`).

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::Duration;

use anyhow::{bail, Context, Result};

use crate::kernel::Kernel;
use crate::paths::Paths;
use crate::proc;
use crate::qemu::Qemu;
use crate::rundir;
use crate::vm::{self, Echo, VmOutcome, VmSpec};

/// Options shared by every VM-booting subcommand.
#[derive(Debug, Clone, Copy)]
pub struct BootOpts {
    /// The VFs the emulated PF offers and their resources.
    pub sizing: vm::VfSizing,
    /// Multi-threaded TCG (see `VmSpec::mttcg`): only the benchmarks use it.
    pub mttcg: bool,
    pub echo: Echo,
    pub timeout: Duration,
    pub verbose: bool,
    /// Whether the emulated PF tracks the memory its VFs write (`x-lm-track`); only the
    /// suite's second boot turns it off.
    pub lm_track: bool,
}

fn check_init(init: &Path) -> Result<()> {
    let meta = std::fs::metadata(init)
        .with_context(|| format!("the guest init {} is missing", init.display()))?;
    if meta.permissions().mode() & 0o111 == 0 {
        bail!(
            "the guest init {} is not executable (chmod 755)",
            init.display()
        );
    }
    Ok(())
}

/// Write cmd.sh into `rundir` and boot the VM running it under the L0 QEMU `qemu`.
pub fn boot(
    paths: &Paths,
    k: &Kernel,
    qemu: &Qemu,
    rundir: &Path,
    command: &str,
    opts: BootOpts,
) -> Result<VmOutcome> {
    boot_with_plugin(paths, k, qemu, rundir, command, opts, None)
}

/// [`boot`], with QEMU loading the TCG plugin `plugin` (the value of `-plugin`).
pub fn boot_with_plugin(
    paths: &Paths,
    k: &Kernel,
    qemu: &Qemu,
    rundir: &Path,
    command: &str,
    opts: BootOpts,
    plugin: Option<String>,
) -> Result<VmOutcome> {
    vm::check_qemu(&qemu.binary)?;
    let init = paths.init_sh();
    check_init(&init)?;
    rundir::write_cmd_sh(rundir, &paths.repo, command)?;
    let spec = VmSpec {
        qemu: qemu.binary.clone(),
        bzimage: k.bzimage.clone(),
        init,
        rundir: rundir.to_path_buf(),
        sizing: opts.sizing,
        mttcg: opts.mttcg,
        plugin,
        lm_track: opts.lm_track,
    };
    println!(
        "[vm] booting {} kernel {} (QEMU {}-{}, TCG, {} VFs, timeout {} s); run dir {}",
        k.variant.name(),
        k.release,
        qemu.version,
        qemu.key,
        opts.sizing.vfs,
        opts.timeout.as_secs(),
        rundir.display()
    );
    let out = vm::run(&spec, opts.echo, opts.timeout, opts.verbose)?;
    println!(
        "[vm] {} (guest exit code: {})",
        proc::secs(out.elapsed),
        out.guest_exit
            .map(|c| c.to_string())
            .unwrap_or_else(|| "none".into())
    );
    Ok(out)
}

/// xtask's exit code for a `vm`/`demo` run: the guest command's, unless
/// the run failed or the kernel log has problems.
pub fn exit_code(out: &VmOutcome, timeout: Duration) -> i32 {
    if let Some(err) = out.run_error(timeout) {
        eprintln!("[vm] error: {err}");
        out.print_tail(60);
        if !out.problems.is_empty() {
            out.print_problems();
        }
        return 1;
    }
    let code = out.guest_exit.unwrap_or(1);
    if !out.problems.is_empty() {
        out.print_problems();
        eprintln!("[vm] error: the kernel log reports problems");
        return if code == 0 { 1 } else { code };
    }
    code
}
