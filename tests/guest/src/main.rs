// SPDX-License-Identifier: GPL-2.0

//! `rnvme-guest-tests`: runs inside the test VM (the guest sees the host's root over 9p, so
//! this host-built binary runs at the same path). It drives the rnvme module through the
//! interfaces a user has (insmod, sysfs, /dev/kmsg, BAR0 through sysfs `resource0`) and
//! reports one line per test: `PASS name`, `FAIL name: reason` or `SKIP name: reason`, on
//! stdout and in `<out>/results.txt`, which `cargo xtask test` collects.

mod aer;
mod bench;
mod cpio;
mod demo;
mod disk;
mod fixture;
mod harness;
mod identity;
mod kmsg;
mod ktap;
mod mmio;
mod module;
mod nvme_ioctl;
mod pci;
mod soak;
mod sriov;
mod tests;
mod vfio_client;
mod vfio_dirty;
mod vfio_feature;
mod vfio_migration;

use std::path::PathBuf;

use clap::Parser;

/// Command line of the guest runner.
#[derive(Parser, Debug)]
#[command(about = "rnvme scenario tests and demo, run inside the test VM")]
struct Args {
    /// The module under test.
    #[arg(long)]
    module: PathBuf,
    /// Root that `modprobe -d` uses for the test kernel's own modules (the C nvme driver).
    #[arg(long)]
    modroot: PathBuf,
    /// Directory shared with the host; results.txt is written there.
    #[arg(long)]
    out: PathBuf,
    /// Run the narrated demo instead of the tests.
    #[arg(long)]
    demo: bool,
    /// Run a benchmark instead of the tests (`io`, `insns`, `provision`, `migrate`,
    /// `migrate-vm`).
    #[arg(long, value_name = "NAME")]
    bench: Option<String>,
    /// Run the soak instead of the tests: the cases of `soak.rs` (those whose name or
    /// test contains the filter) round-robin.
    #[arg(long)]
    soak: bool,
    /// With `--soak`: runs of each case.
    #[arg(long, value_name = "N", default_value_t = 50, requires = "soak")]
    runs: u64,
    /// With `--soak`: the time budget in minutes (a run that started goes on).
    #[arg(long, value_name = "M", default_value_t = 60, requires = "soak")]
    minutes: u64,
    /// List the tests and their groups, run nothing.
    #[arg(long)]
    list: bool,
    /// Run only tests in this group (e.g. `smoke`) or whose name contains this text.
    filter: Option<String>,
}

fn main() {
    let args = Args::parse();
    let env = harness::Env {
        module: args.module,
        modroot: args.modroot,
        out: args.out,
    };
    let code = if let Some(bench) = args.bench.as_deref() {
        let result = bench::run(&env, bench);
        match result {
            Ok(()) => 0,
            Err(e) => {
                println!("bench failed: {e}");
                1
            }
        }
    } else if args.soak {
        soak::run(
            &env,
            args.filter.as_deref(),
            args.runs,
            std::time::Duration::from_secs(args.minutes * 60),
        )
    } else if args.demo {
        match demo::run(&env) {
            Ok(()) => 0,
            Err(e) => {
                println!("demo failed: {e}");
                1
            }
        }
    } else if args.list {
        for t in tests::all() {
            println!("{} [{}]", t.name, t.groups.join(","));
        }
        0
    } else {
        harness::run_all(&env, &tests::all(), args.filter.as_deref())
    };
    std::process::exit(code);
}
