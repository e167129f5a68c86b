//! `cargo xtask demo`: boot the VM running the guest runner's narrated demo,
//! streaming the console so the narration is visible.

use std::time::Duration;

use anyhow::Result;

use crate::kernel;
use crate::module;
use crate::paths::Paths;
use crate::qemu;
use crate::rundir;
use crate::session::{self, BootOpts};
use crate::vm::{self, Echo};

pub struct DemoOpts {
    pub debug: bool,
    pub timeout: Duration,
    pub verbose: bool,
}

/// Returns the process exit code (the demo's, or 1 if the run failed).
pub fn run(paths: &Paths, opts: &DemoOpts) -> Result<i32> {
    let k = kernel::ensure(paths, opts.debug)?;
    let (ko, bin) = module::build(paths, &k, true)?.require()?;
    let q = qemu::ensure(paths)?;
    let rundir = rundir::create(paths)?;
    let (ko, bin) = rundir::stage(&rundir, &ko, &bin)?;
    let command = rundir::guest_runner_command(&bin, &ko, &k.modroot, &rundir, &["--demo"]);
    let boot = BootOpts {
        sizing: vm::VfSizing::default_for(vm::DEFAULT_VFS),
        mttcg: false,
        echo: if opts.verbose {
            Echo::All
        } else {
            Echo::FromInit
        },
        timeout: opts.timeout,
        verbose: opts.verbose,
        lm_track: true,
    };
    let out = session::boot(paths, &k, &q, &rundir, &command, boot)?;
    Ok(session::exit_code(&out, opts.timeout))
}
