//! `cargo xtask`: host-side build and VM harness for rnvme.

mod bench;
mod demo;
mod deps;
mod fuzz;
mod insns;
mod kconfig;
mod kernel;
mod lint;
mod logscan;
mod module;
mod paths;
mod proc;
mod qemu;
mod results;
mod rundir;
mod session;
mod shutdown;
mod soak;
mod test;
mod vm;

use std::process::ExitCode;
use std::time::Duration;

use anyhow::Result;
use clap::{Args, Parser, Subcommand};

use crate::paths::Paths;
use crate::session::BootOpts;
use crate::vm::Echo;

/// Build and test harness for rnvme, a Rust-for-Linux NVMe PCI driver that
/// owns both the block and the VFIO lives of SR-IOV functions.
///
/// Builds a Linux 6.12 test kernel (Debian linux-source-6.12) and the
/// out-of-tree module rnvme.ko, then boots them under QEMU (TCG) with an
/// emulated SR-IOV NVMe controller. Caches live in $RNVME_CACHE
/// (default ~/.cache/rnvme).
#[derive(Parser)]
#[command(name = "xtask", bin_name = "cargo xtask", version, about, long_about)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Install host dependencies: apt packages (with the QEMU build tools), QEMU 10,
    /// meson and pycotap from bookworm-backports, bindgen-cli 0.69. Idempotent;
    /// installing needs root.
    Deps,
    /// Build (or reuse) the test kernel from tests/vm/kernel.config and print
    /// the bzImage path.
    ///
    /// Unpacks Debian's linux-source-6.12, runs tinyconfig + the fragment +
    /// olddefconfig, checks every fragment option survived, then builds
    /// bzImage and modules and installs the modules. Cached by a hash of the
    /// source version and the fragment.
    Kernel(KernelArgs),
    /// Build the kernel, rnvme.ko (make M=<repo>) and the guest test runner.
    Build(KernelArgs),
    /// Build (or reuse) the L0 QEMU and print its path.
    ///
    /// Fetches Debian's qemu source (bookworm-backports) with apt-get source, applies
    /// qemu/patches/*.patch in name order (the TP4159 live-migration model), configures
    /// x86_64-softmmu with TCG only and builds qemu-system-x86_64 into
    /// $RNVME_CACHE/qemu/<version>-<key>/bin. Cached by a hash of the source version,
    /// the patches and the configure arguments. `vm`, `test`, `demo` and `bench` run
    /// their VM under this QEMU.
    Qemu,
    /// Boot the test VM and run a shell command line inside it; exits with
    /// the command's exit code.
    ///
    /// The guest's root is the host's / over 9p (read-only) with tmpfs on
    /// /tmp, /run, /var/tmp and /root, so host-built binaries run at the same
    /// paths. The command runs in the repository directory.
    Vm(VmArgs),
    /// Run all tests: host unit tests, then the in-guest suites in one VM
    /// boot; prints each result and one "N passed, M failed" line.
    Test(TestArgs),
    /// Boot the VM and run the narrated demo, streaming the guest console.
    Demo(DemoArgs),
    /// Check formatting and lints: rustfmt and clippy over the host crates,
    /// rustfmt and the kernel's clippy (make CLIPPY=1) over the module, and
    /// Documentation/ built by Sphinx with warnings as errors.
    Lint,
    /// Run a benchmark in the VM (release kernel).
    ///
    /// `io`: the same namespace bound alternately to the C nvme driver and to
    /// rnvme (driver_override), fio 4 KiB random read at QD1 and QD32 and
    /// 128 KiB sequential read, a warm-up and 15 alternating rounds per cell
    /// (fio from tmpfs, pinned to vCPU 1); prints each cell's rnvme/C IOPS
    /// ratio (the median of the rounds' ratios) with its spread and, last,
    /// `io ratio worst-cell: X.XX`. TCG numbers compare the drivers' CPU
    /// cost and the work they cause QEMU, not a real device's speed.
    ///
    /// `insns`: the same workloads, counted instead of timed: QEMU loads a TCG
    /// plugin (tests/vm/insn-count) that counts the translation blocks run
    /// around each fio run of a fixed number of I/Os, and the host adds up the
    /// guest instructions per I/O of each driver's own code (nvme.ko and
    /// nvme-core.ko; rnvme.ko and the kernel's rust_helper_* functions), with
    /// the functions that execute most; last `insns ratio worst-cell: X.XX`
    /// (rnvme/C; lower is better). Independent of the host's speed.
    ///
    /// `provision`: with the most VFs the emulated device offers (127), the
    /// time to make every VF a usable VFIO device (a) with rnvme's
    /// `sriov_vf_mode=vfio` and (b) with the stock flow (C nvme probe,
    /// unbind, `driver_override=vfio-pci`, bind), per VF, plus the latency
    /// of one VF's switch each way; the last line is `provision speedup: X.X`.
    ///
    /// `migrate`: the device downtime of a VF's migration through the VFIO
    /// uAPI with 1, 4 and 8 I/O queue pairs; last `migrate downtime p50: X ms`.
    ///
    /// `migrate-vm`: QEMU 10 in the VM live-migrates a nested guest of 512 MiB
    /// (384 MiB of data, an I/O loop) back and forth, (a) with the VF and
    /// device dirty tracking, (b) with the VF, enable-migration=on and no
    /// tracking (cancelled after 60 s), (c) with a virtio-blk disk instead;
    /// QEMU's downtime, total time, RAM bytes and dirty syncs, 7 samples
    /// each; last `migrate-vm downtime ratio: X.XX` ((a) / (c)). About an
    /// hour.
    Bench(BenchArgs),
    /// Coverage-guided fuzzing (libFuzzer) of the parsers of untrusted input: the migration
    /// stream, the controller state, the compatibility section, the sysfs words, the module
    /// parameters and the passthrough commands (`tests/fuzz`). Each target runs for a time
    /// budget on its corpus in $RNVME_CACHE/fuzz-corpus/<target>; prints `fuzz <target>: N
    /// execs, E edges, F findings` and exits non-zero if anything was found (the input is
    /// in $RNVME_CACHE/fuzz-artifacts/<target>). Not part of `test` (nor of CI).
    Fuzz(FuzzArgs),
    /// Soak the riskiest concurrent cases (release kernel unless --debug): mode
    /// switches refused during fio, resets and function resets during fio, resets
    /// racing mode switches, migrations with I/O in flight, a PF reset in the middle
    /// of a migration, VFs enabled and disabled under fio; each an existing test of the
    /// suite, run round-robin with fio verify=crc32c and verify_fatal. By default half
    /// the runs on a quiet host and half while the host compiles (--load). Prints per
    /// run, per case `soak <case>: N runs, M mismatches, K kernel reports, F failures`,
    /// and last `soak total: N runs, M mismatches`; details of every run that was not
    /// clean in the run directory's soak/. Not part of `test` (nor of CI).
    Soak(SoakArgs),
}

#[derive(Args)]
struct FuzzArgs {
    /// Seconds each target runs.
    #[arg(long, default_value_t = 60)]
    seconds: u64,
    /// Run only this target (stream, controller-state, compat, sysfs-words,
    /// module-params, passthru).
    #[arg(long)]
    target: Option<String>,
}

#[derive(Args)]
struct SoakArgs {
    /// Use the debug kernel (adds tests/vm/kernel-debug.config).
    #[arg(long)]
    debug: bool,
    /// Runs of each case, over all boots.
    #[arg(long, value_name = "N", default_value_t = 50)]
    runs: u64,
    /// Time budget in minutes, over all boots (a run that started goes on).
    #[arg(long, value_name = "M", default_value_t = 60)]
    minutes: u64,
    /// When the host is loaded: none, compile (throughout), or both (a quiet boot,
    /// then a loaded one, each with half the runs and minutes).
    #[arg(long, value_enum, default_value_t = soak::Load::Both)]
    load: soak::Load,
    /// Stream the whole guest console.
    #[arg(long, short)]
    verbose: bool,
    /// Only the cases whose name or test contains this (e.g. `switch-during-fio`).
    case: Option<String>,
}

#[derive(Args)]
struct BenchArgs {
    /// Which benchmark: io, insns, provision, migrate, migrate-vm or migrate-many.
    name: String,
    /// Kill the VM after this many seconds (default: 1800, or 10800 for migrate-vm).
    #[arg(long, value_name = "SECS")]
    timeout: Option<u64>,
    /// Show the kernel boot too, and the QEMU command line.
    #[arg(long, short)]
    verbose: bool,
}

#[derive(Args)]
struct KernelArgs {
    /// Use the debug kernel (adds tests/vm/kernel-debug.config).
    #[arg(long)]
    debug: bool,
}

#[derive(Args)]
struct VmArgs {
    /// Use the debug kernel (adds tests/vm/kernel-debug.config).
    #[arg(long)]
    debug: bool,
    /// Kill the VM after this many seconds.
    #[arg(long, value_name = "SECS", default_value_t = 600)]
    timeout: u64,
    /// Number of SR-IOV VFs the emulated NVMe PF offers (0 = no SR-IOV).
    #[arg(long, value_name = "N", default_value_t = vm::DEFAULT_VFS,
          value_parser = clap::value_parser!(u16).range(0..=vm::MAX_VFS as i64))]
    vfs: u16,
    /// Show the whole console (kernel boot too) and the QEMU command line.
    #[arg(long, short)]
    verbose: bool,
    /// Multi-threaded TCG, as the benchmarks boot (for performance experiments).
    #[arg(long)]
    mttcg: bool,
    /// Shell command line to run in the guest (default: `uname -a; cat /proc/cmdline`).
    #[arg(last = true, value_name = "CMD")]
    cmd: Vec<String>,
}

/// The default VM timeout of `cargo xtask test`, in seconds.
fn test_timeout(debug: bool) -> u64 {
    if debug {
        3000
    } else {
        1500
    }
}

#[derive(Args)]
struct TestArgs {
    /// Use the debug kernel (adds tests/vm/kernel-debug.config).
    #[arg(long)]
    debug: bool,
    /// Kill the VM after this many seconds (default: 1500, or 3000 with --debug,
    /// whose checks make the suite about three times slower under TCG).
    #[arg(long, value_name = "SECS")]
    timeout: Option<u64>,
    /// Stream the whole guest console instead of only result lines.
    #[arg(long, short)]
    verbose: bool,
    /// Only run guest tests in this group (e.g. `smoke`) or whose name
    /// contains this string; host tests always run.
    filter: Option<String>,
}

#[derive(Args)]
struct DemoArgs {
    /// Use the debug kernel (adds tests/vm/kernel-debug.config).
    #[arg(long)]
    debug: bool,
    /// Kill the VM after this many seconds.
    #[arg(long, value_name = "SECS", default_value_t = 600)]
    timeout: u64,
    /// Show the kernel boot too, and the QEMU command line.
    #[arg(long, short)]
    verbose: bool,
}

const DEFAULT_VM_CMD: &str = "uname -a; cat /proc/cmdline";

fn run(cli: Cli) -> Result<i32> {
    let paths = Paths::discover()?;
    match cli.cmd {
        Cmd::Deps => {
            deps::ensure(true)?;
            Ok(0)
        }
        Cmd::Kernel(a) => {
            let k = kernel::ensure(&paths, a.debug)?;
            println!("{}", k.bzimage.display());
            Ok(0)
        }
        Cmd::Build(a) => {
            let k = kernel::ensure(&paths, a.debug)?;
            module::build(&paths, &k, false)?;
            Ok(0)
        }
        Cmd::Qemu => {
            let q = qemu::ensure(&paths)?;
            println!("{}", q.binary.display());
            Ok(0)
        }
        Cmd::Vm(a) => {
            let k = kernel::ensure(&paths, a.debug)?;
            module::build(&paths, &k, false)?;
            let q = qemu::ensure(&paths)?;
            let rundir = rundir::create(&paths)?;
            let command = if a.cmd.is_empty() {
                DEFAULT_VM_CMD.to_string()
            } else {
                a.cmd.join(" ")
            };
            let opts = BootOpts {
                sizing: vm::VfSizing::default_for(a.vfs),
                mttcg: a.mttcg,
                echo: if a.verbose { Echo::All } else { Echo::FromInit },
                timeout: Duration::from_secs(a.timeout),
                verbose: a.verbose,
                lm_track: true,
            };
            let out = session::boot(&paths, &k, &q, &rundir, &command, opts)?;
            Ok(session::exit_code(&out, opts.timeout))
        }
        Cmd::Test(a) => test::run(
            &paths,
            &test::TestOpts {
                debug: a.debug,
                filter: a.filter,
                timeout: Duration::from_secs(a.timeout.unwrap_or(test_timeout(a.debug))),
                verbose: a.verbose,
            },
        ),
        Cmd::Bench(a) => bench::run(
            &paths,
            &a.name,
            a.timeout.map(Duration::from_secs),
            a.verbose,
        ),
        Cmd::Soak(a) => soak::run(
            &paths,
            &soak::SoakOpts {
                debug: a.debug,
                runs: a.runs,
                minutes: a.minutes,
                load: a.load,
                filter: a.case,
                verbose: a.verbose,
            },
        ),
        Cmd::Fuzz(a) => fuzz::run(
            &paths,
            &fuzz::FuzzOpts {
                seconds: a.seconds,
                target: a.target,
            },
        ),
        Cmd::Lint => {
            let k = kernel::ensure(&paths, false)?;
            lint::run(&paths, &k)?;
            Ok(0)
        }
        Cmd::Demo(a) => demo::run(
            &paths,
            &demo::DemoOpts {
                debug: a.debug,
                timeout: Duration::from_secs(a.timeout),
                verbose: a.verbose,
            },
        ),
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(code) => ExitCode::from(u8::try_from(code).unwrap_or(1)),
        Err(e) => {
            proc::print_error("error: ", &e);
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn vm_command_after_double_dash() {
        let cli =
            Cli::try_parse_from(["xtask", "vm", "--vfs", "2", "--", "uname -r; false"]).unwrap();
        let Cmd::Vm(a) = cli.cmd else {
            panic!("not vm")
        };
        assert_eq!(a.vfs, 2);
        assert_eq!(a.cmd, vec!["uname -r; false".to_string()]);
        assert!(Cli::try_parse_from(["xtask", "vm", "--vfs", "500"]).is_err());
    }

    #[test]
    fn test_filter_is_positional() {
        let cli = Cli::try_parse_from(["xtask", "test", "smoke"]).unwrap();
        let Cmd::Test(a) = cli.cmd else {
            panic!("not test")
        };
        assert_eq!(a.filter.as_deref(), Some("smoke"));
        assert_eq!(a.timeout, None);
        assert_eq!(test_timeout(false), 1500);
        assert_eq!(test_timeout(true), 3000);
    }
}
