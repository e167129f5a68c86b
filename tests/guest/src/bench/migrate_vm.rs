// SPDX-License-Identifier: GPL-2.0

//! `--bench migrate-vm`: live migrations of a running nested guest with QEMU 10 inside the
//! test VM, as `migration/qemu-live-migration` does them, but with a guest whose memory
//! mostly holds data, so that copying it costs what it would in a real guest.
//!
//! The nested guest has [`L2_MEMORY_MIB`] of RAM; at boot it writes [`FILL_MIB`] of non-zero
//! data into a tmpfs (zero pages cost QEMU next to nothing), then loops: writes a chunk
//! with `O_DIRECT`, reads it back and compares it, reads [`READS`] other chunks, pauses. The
//! same initramfs and the same loop run in three configurations:
//!
//! * (a) VF 1 and VF 2 assigned through iommufd with QEMU's defaults: no
//!   `enable-migration=on`, QEMU's default `downtime-limit` and bandwidth; QEMU migrates
//!   the VF because the driver offers device dirty tracking;
//! * (b) the same with `enable-migration=on,x-device-dirty-page-tracking=off`, the path of
//!   a VF without device dirty tracking. With iommufd and no IOMMU dirty tracking (the test
//!   VM's vIOMMU has none), QEMU 10 then warns and tracks none of the VF's DMA: it starts
//!   no tracking on the container, so its log sync asks nobody. (With the legacy type1
//!   container it would count all guest memory dirty in every round, but asking the
//!   kernel for the bitmap of the VF's BAR mapping fails the migration at its setup.) The
//!   benchmark prints how often the driver started dirty tracking in each configuration;
//! * (c) no assigned device: the loop's disk is a virtio-blk disk on a raw image in the
//!   test VM's `/tmp`, which the source and the destination open both (stock QEMU's NVMe
//!   model does not migrate).
//!
//! Each configuration boots the guest once and ping-pongs it: a destination QEMU with
//! `-incoming defer` on the other VF (or the same image), `migrate` over a unix socket,
//! then the source quits and the next destination starts on the VF it freed. A migration
//! that has not completed after [`SAMPLE_TIMEOUT`] is cancelled (`migrate_cancel`) and
//! recorded as not converged with what it reached; the guest stays on the source. Both
//! QEMUs run pinned to one CPU of the test VM ([`PIN`]). One warm-up migration, then
//! [`SAMPLES`] samples per configuration, each with QEMU's own figures from
//! `query-migrate`: downtime, total time, RAM bytes transferred and dirty syncs (rounds).
//!
//! Prints every sample, then a table (medians and ranges), and last `migrate-vm downtime
//! ratio: X.XX`: the median downtime of (a) over that of (c).

use std::{
    fs,
    path::{Path, PathBuf},
    thread,
    time::{Duration, Instant},
};

use qapi::qmp;

use super::median;
use crate::fixture::mode_path;
use crate::{
    disk::pattern,
    harness::{ensure, Env},
    kmsg,
    pci::Function,
    sriov::write_attr,
    tests::{
        migration::with_vf_pair,
        migration_qemu::{
            console_problems, fill_template, guest_args, initramfs_file, last_written, listen,
            migration_status, nested_initramfs, nvme_module_files, said, start_migration, vf_args,
            wait_console,
        },
        vfio::wait_vf_disk,
        vfio_qemu::{
            check_realized, log_tail, nested_kernel, no_problems_since, test_kernel_module, Vmm,
        },
    },
};

/// The nested guest's memory, and the non-zero data it holds.
const L2_MEMORY_MIB: u64 = 512;
const FILL_MIB: u64 = 384;
/// The tmpfs the data goes to (room for it and nothing else much).
const FILL_TMPFS_MIB: u64 = 420;
/// Samples per configuration, after [`WARMUP`] migrations that are not counted.
const SAMPLES: usize = 7;
const WARMUP: usize = 1;
/// How long a migration may run before it is cancelled and counted as not converged.
const SAMPLE_TIMEOUT: Duration = Duration::from_secs(60);
/// Loop iterations the guest must report on the side it runs on before the next
/// migration starts (the load is running again).
const SETTLE_ITERATIONS: u64 = 3;
/// How long the guest may take to boot and fill its memory, and to settle after a
/// migration (nested TCG).
const BOOT_TIMEOUT: Duration = Duration::from_secs(1200);
const SETTLE_TIMEOUT: Duration = Duration::from_secs(300);
/// The test VM's CPU both QEMUs run on.
const PIN: &str = "1";
/// Bytes of each chunk the loop writes and reads.
const CHUNK: usize = 128 * 1024;
/// Where the loop's chunks are (in chunks: from 8 MiB on) and how many it cycles through.
const FIRST_CHUNK: u64 = 64;
const CHUNKS: u64 = 128;
/// Chunks the loop reads per chunk it writes, besides reading that one back.
const READS: u64 = 2;
/// Distinct chunk patterns.
const PATTERNS: u64 = 4;
/// The loop's pause per iteration, in microseconds.
const PAUSE_US: u64 = 100_000;
/// The emulated disk of configuration (c), in the test VM's tmpfs.
const IMAGE: &str = "/tmp/rnvme-migrate-vm.img";
const IMAGE_BYTES: u64 = (FIRST_CHUNK + CHUNKS) * CHUNK as u64 + (8 << 20);
/// The migration socket.
const MIGRATION_SOCK: &str = "/tmp/rnvme-migrate-vm.sock";

/// PID 1 of the nested guest: finds its disk (the VF's namespace through the C nvme
/// driver, or the virtio-blk disk), fills its memory, then runs the I/O loop until killed.
const INIT: &str = r#"B=/bin/busybox
say() { echo "RNVME-L2: $*"; }
fail() { say "FAIL $*"; $B poweroff -f; }
$B mount -t proc proc /proc || fail "mount /proc"
$B mount -t sysfs sysfs /sys || fail "mount /sys"
$B mount -t devtmpfs devtmpfs /dev || fail "mount /dev"
for m in nvme-core nvme virtio_blk; do
	$B insmod /$m.ko || fail "insmod $m.ko"
done
disk=
i=0
while [ -z "$disk" ]; do
	disk=$($B ls /sys/block | $B grep -E '^(nvme|vd)' | $B head -n 1)
	if [ -z "$disk" ]; then
		[ $i -ge 600 ] && fail "no disk after 60 s"
		$B usleep 100000
		i=$((i + 1))
	fi
done
dev=/dev/$disk
say "disk $disk"
read t0 rest < /proc/uptime
$B mkdir -p /mnt && $B mount -t tmpfs -o size=@TMPFS@m tmpfs /mnt || fail "mount /mnt"
$B yes "rnvme bench migrate-vm: guest memory that holds data, not zeros" |
	$B dd of=/mnt/fill bs=1M count=@FILL@ iflag=fullblock 2>/dev/null || fail "filling memory"
read t1 rest < /proc/uptime
say "filled $(($($B stat -c %s /mnt/fill) >> 20)) MiB (uptime $t0 to $t1 s)"
i=0
while :; do
	c=$((i % @CHUNKS@))
	p=/chunk-$((i % @PATTERNS@)).bin
	$B dd if=$p of=$dev oflag=direct bs=@BS@ seek=$((@FIRST@ + c)) conv=notrunc 2>/dev/null ||
		fail "write of chunk $i"
	$B dd if=$dev iflag=direct bs=@BS@ skip=$((@FIRST@ + c)) count=1 2>/dev/null | $B cmp -s - $p ||
		fail "chunk $i reads back different"
	k=1
	while [ $k -le @READS@ ]; do
		$B dd if=$dev of=/dev/null iflag=direct bs=@BS@ skip=$((@FIRST@ + (c + 7 * k) % @CHUNKS@)) count=1 2>/dev/null ||
			fail "read $k of iteration $i"
		k=$((k + 1))
	done
	say "wrote $i"
	i=$((i + 1))
	$B usleep @PAUSE@
done
"#;

/// The three configurations.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Config {
    /// (a): the VFs, device dirty tracking, QEMU's defaults.
    Tracked,
    /// (b): the VFs, `enable-migration=on`, no device dirty tracking.
    Untracked,
    /// (c): no assigned device, a virtio-blk disk.
    Emulated,
}

impl Config {
    /// The label in the output.
    fn label(self) -> &'static str {
        match self {
            Config::Tracked => "(a)",
            Config::Untracked => "(b)",
            Config::Emulated => "(c)",
        }
    }

    /// What it is, for the table.
    fn what(self) -> &'static str {
        match self {
            Config::Tracked => "VF, device dirty tracking",
            Config::Untracked => "VF, enable-migration=on, untracked",
            Config::Emulated => "virtio-blk, no assigned device",
        }
    }

    /// The file name part of its logs.
    fn tag(self) -> &'static str {
        match self {
            Config::Tracked => "a",
            Config::Untracked => "b",
            Config::Emulated => "c",
        }
    }
}

/// How a migration ended.
#[derive(Debug, PartialEq, Eq)]
enum End {
    Completed,
    /// Cancelled after [`SAMPLE_TIMEOUT`].
    NotConverged,
    /// QEMU reported it failed (or cancelled it itself), with its error.
    Failed(String),
}

/// One migration's figures, from QEMU (`query-migrate`) and the guest's console.
struct Sample {
    end: End,
    /// QEMU's downtime (completed migrations only), ms.
    downtime_ms: Option<i64>,
    /// QEMU's total time (at the cancel for the others), ms.
    total_ms: i64,
    /// RAM bytes transferred and dirty syncs.
    ram_bytes: i64,
    syncs: i64,
    /// QEMU's expected downtime when it was cancelled, ms.
    expected_ms: Option<i64>,
    /// Loop iterations the guest reported on the source while it migrated, and for how long.
    iterations: u64,
    wall: Duration,
    /// The test VM's lowest `MemAvailable` while both QEMUs ran, KiB.
    mem_available_kib: u64,
}

/// The name of QEMU number `n` of `config` (its QMP socket, its log `qemu-<name>.log`).
fn instance(config: Config, n: usize) -> String {
    format!("migrate-vm-{}-{n}", config.tag())
}

/// The test VM's `MemAvailable`, KiB.
fn mem_available() -> Result<u64, String> {
    let text = fs::read_to_string("/proc/meminfo").map_err(|e| format!("/proc/meminfo: {e}"))?;
    text.lines()
        .find_map(|l| l.strip_prefix("MemAvailable:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .ok_or_else(|| "no MemAvailable in /proc/meminfo".into())
}

/// Runs the benchmark.
pub fn run(env: &Env) -> Result<(), String> {
    let (bzimage, mods) = nested_kernel(env)?;
    let virtio_blk = test_kernel_module(env, "drivers/block/virtio_blk.ko")?;
    let dir = env.out.join("migrate-vm");
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let initrd = dir.join("initramfs.cpio");
    fs::write(&initrd, initramfs(&mods, &virtio_blk)?)
        .map_err(|e| format!("{}: {e}", initrd.display()))?;
    let nested = Nested {
        env,
        dir: &dir,
        bzimage: bzimage.to_string_lossy().to_string(),
        initrd: initrd.to_string_lossy().to_string(),
    };
    println!(
        "migrate-vm: nested guest of {L2_MEMORY_MIB} MiB with {FILL_MIB} MiB of data, QEMUs \
         pinned to CPU {PIN} of the test VM (MemAvailable {} MiB before), {WARMUP} warm-up \
         and {SAMPLES} samples per configuration, a migration cancelled after {} s",
        mem_available()? >> 10,
        SAMPLE_TIMEOUT.as_secs()
    );
    let mut results: Vec<(Config, Vec<Sample>)> = Vec::new();
    with_vf_pair(env, |_pf, vf1, vf2| {
        to_vfio(vf1)?;
        to_vfio(vf2)?;
        let mark = kmsg::mark()?;
        // (a) and (c) back to back: the ratio compares them; (b) takes longest.
        for config in [Config::Tracked, Config::Emulated, Config::Untracked] {
            let before = kmsg::mark()?;
            let samples = match config {
                Config::Emulated => nested.emulated(config)?,
                _ => nested.assigned(config, vf1, vf2)?,
            };
            // Whether QEMU used the VF's dirty tracking: the driver logs each start.
            println!(
                "migrate-vm {}: the driver started device dirty tracking {} times",
                config.label(),
                kmsg::count_since(before, "dirty tracking started")?
            );
            results.push((config, samples));
        }
        no_problems_since(mark)
    })?;
    report(&mut results)
}

/// Switches `vf`, whose namespace was just attached, to vfio mode: once its disk is there,
/// and again while the namespace scan still holds the new disk open (`EBUSY`; seen once
/// right after the attach).
fn to_vfio(vf: &Function) -> Result<(), String> {
    wait_vf_disk(vf)?;
    let mut busy = 0;
    while let Err(e) = write_attr(&mode_path(vf), "vfio") {
        busy += 1;
        if e != libc::EBUSY || busy >= 50 {
            return Err(format!("echo vfio > {}/mode: errno {e}", vf.bdf));
        }
        thread::sleep(Duration::from_millis(200));
    }
    if busy > 0 {
        println!(
            "migrate-vm: {} was busy {busy} time(s) before vfio mode",
            vf.bdf
        );
    }
    Ok(())
}

/// The nested guest's init script with the benchmark's numbers.
fn init_script() -> String {
    fill_template(
        INIT,
        &[
            ("TMPFS", FILL_TMPFS_MIB),
            ("FILL", FILL_MIB),
            ("CHUNKS", CHUNKS),
            ("PATTERNS", PATTERNS),
            ("BS", CHUNK as u64),
            ("FIRST", FIRST_CHUNK),
            ("READS", READS),
            ("PAUSE", PAUSE_US),
        ],
    )
}

/// The nested guest's initramfs: busybox, the init script, the modules and the patterns.
fn initramfs(nvme_mods: &Path, virtio_blk: &Path) -> Result<Vec<u8>, String> {
    let init = init_script();
    let mut files = nvme_module_files(nvme_mods)?;
    files.push(initramfs_file("virtio_blk.ko", virtio_blk)?);
    for k in 0..PATTERNS {
        files.push((format!("chunk-{k}.bin"), pattern(CHUNK, 0x6d76 + k)));
    }
    nested_initramfs(&init, &files)
}

/// What every nested guest of the run shares.
struct Nested<'a> {
    env: &'a Env,
    dir: &'a Path,
    bzimage: String,
    initrd: String,
}

/// The QEMU a guest currently runs in, with its console.
struct Side {
    vmm: Vmm,
    console: PathBuf,
    /// Which of the two device sets it has.
    slot: usize,
}

impl Nested<'_> {
    /// (a) or (b): the guest on VF 1 and VF 2 in turn.
    fn assigned(
        &self,
        config: Config,
        vf1: &Function,
        vf2: &Function,
    ) -> Result<Vec<Sample>, String> {
        let props = match config {
            Config::Untracked => ",enable-migration=on,x-device-dirty-page-tracking=off",
            _ => "",
        };
        let slots = [vf_args(vf1, props), vf_args(vf2, props)];
        self.ping_pong(config, &slots, Some([vf1, vf2]))
    }

    /// (c): the guest on a virtio-blk disk, the same image on both sides.
    fn emulated(&self, config: Config) -> Result<Vec<Sample>, String> {
        let image = fs::File::create(IMAGE).map_err(|e| format!("{IMAGE}: {e}"))?;
        image
            .set_len(IMAGE_BYTES)
            .map_err(|e| format!("{IMAGE}: {e}"))?;
        drop(image);
        let disk: Vec<String> = [
            "-drive",
            &format!("file={IMAGE},format=raw,if=none,id=d0"),
            "-device",
            "virtio-blk-pci,drive=d0",
        ]
        .map(String::from)
        .to_vec();
        let r = self.ping_pong(config, &[disk.clone(), disk], None);
        let _ = fs::remove_file(IMAGE);
        r
    }

    /// Starts QEMU number `n` of `config` with device set `slot`; incoming if `incoming`.
    fn start(
        &self,
        config: Config,
        n: usize,
        slots: &[Vec<String>; 2],
        slot: usize,
        vfs: Option<[&Function; 2]>,
        incoming: bool,
    ) -> Result<Side, String> {
        let console = self.dir.join(format!("{}-{n}-console.log", config.tag()));
        let mut args = guest_args(
            &self.bzimage,
            &self.initrd,
            &format!("{L2_MEMORY_MIB}M"),
            &format!("file:{}", console.display()),
            &slots[slot],
        );
        if incoming {
            args.extend(["-incoming", "defer"].map(String::from));
        }
        let name = instance(config, n);
        let mut vmm = Vmm::start_pinned(self.env, &name, &args, PIN)?;
        if let Some(vfs) = vfs {
            check_realized(&mut vmm, vfs[slot])?;
        }
        Ok(Side { vmm, console, slot })
    }

    /// Boots the guest on device set 0 and migrates it [`WARMUP`] + [`SAMPLES`] times.
    fn ping_pong(
        &self,
        config: Config,
        slots: &[Vec<String>; 2],
        vfs: Option<[&Function; 2]>,
    ) -> Result<Vec<Sample>, String> {
        let label = config.label();
        let booted = Instant::now();
        let mut src = self.start(config, 0, slots, 0, vfs, false)?;
        wait_console(
            &src.console,
            BOOT_TIMEOUT,
            "the guest's boot, memory fill and first loop iterations",
            |s| {
                s.iter().filter_map(|l| l.strip_prefix("wrote ")).count()
                    >= SETTLE_ITERATIONS as usize
            },
        )?;
        let filled = said(&src.console)
            .into_iter()
            .find(|l| l.starts_with("filled "))
            .unwrap_or_default();
        println!(
            "migrate-vm {label}: guest up and loaded after {:.0} s; it says {filled:?}",
            booted.elapsed().as_secs_f64()
        );
        // What QEMU decided about the VF's dirty tracking, if it said anything.
        let stderr = self
            .env
            .out
            .join(format!("qemu-{}.log", instance(config, 0)));
        for l in fs::read_to_string(&stderr).unwrap_or_default().lines() {
            if l.contains("dirty tracking") {
                println!("migrate-vm {label}: QEMU said {:?}", l.trim());
            }
        }
        let mut samples = Vec::new();
        let mut consoles = vec![src.console.clone()];
        for n in 1..=WARMUP + SAMPLES {
            let mut dst = self.start(config, n, slots, 1 - src.slot, vfs, true)?;
            consoles.push(dst.console.clone());
            let s = migrate(&mut src, &mut dst)?;
            let what = if n <= WARMUP {
                "warm-up".to_string()
            } else {
                format!("sample {}", n - WARMUP)
            };
            println!(
                "migrate-vm {label} {what} ({} -> {}): {}",
                src.slot + 1,
                dst.slot + 1,
                describe(&s)
            );
            // The guest's last iteration on the source (at the switch, if it completed).
            let at = last_written(&src.console).unwrap_or(0);
            if s.end == End::Completed {
                // The source is paused after a completed migration: it goes, the
                // destination runs the guest.
                src.vmm.quit()?;
                src = dst;
            } else {
                // The guest stays on the source; the destination goes.
                drop(dst);
            }
            wait_console(
                &src.console,
                SETTLE_TIMEOUT,
                "the guest's loop after the migration",
                |s| {
                    s.iter()
                        .filter_map(|l| l.strip_prefix("wrote ")?.parse::<u64>().ok())
                        .any(|i| i >= at + SETTLE_ITERATIONS)
                },
            )?;
            if n > WARMUP {
                samples.push(s);
            }
        }
        drop(src);
        for console in &consoles {
            let bad = console_problems(console);
            ensure(bad.is_empty(), || {
                format!("{label}: the guest's kernel reported {bad:?}")
            })?;
        }
        Ok(samples)
    }
}

/// Migrates the guest from `src` to `dst` (waiting for `-incoming defer`); cancels it after
/// [`SAMPLE_TIMEOUT`].
fn migrate(src: &mut Side, dst: &mut Side) -> Result<Sample, String> {
    let _ = fs::remove_file(MIGRATION_SOCK);
    let uri = format!("unix:{MIGRATION_SOCK}");
    listen(&mut dst.vmm, &uri)?;
    let before = last_written(&src.console).unwrap_or(0);
    let mut mem = mem_available()?;
    let started = Instant::now();
    start_migration(&mut src.vmm, &uri)?;
    let mut cancelled: Option<qmp::MigrationInfo> = None;
    let (info, end) = loop {
        let info = migration_status(&mut src.vmm)?;
        mem = mem.min(mem_available()?);
        match info.status {
            Some(qmp::MigrationStatus::completed) => break (info, End::Completed),
            Some(qmp::MigrationStatus::failed | qmp::MigrationStatus::cancelled) => {
                if let Some(last) = cancelled.take() {
                    break (last, End::NotConverged);
                }
                let why = format!(
                    "{:?}: {}",
                    info.status,
                    info.error_desc.clone().unwrap_or_default()
                );
                break (info, End::Failed(why));
            }
            _ if cancelled.is_none() && started.elapsed() >= SAMPLE_TIMEOUT => {
                src.vmm
                    .qmp
                    .execute(&qmp::migrate_cancel {})
                    .map_err(|e| format!("migrate_cancel: {e}"))?;
                cancelled = Some(info);
            }
            _ if started.elapsed() >= SAMPLE_TIMEOUT * 2 => {
                return Err(format!(
                    "the migration neither ended nor cancelled in {} s: {info:?}; source: {}",
                    (SAMPLE_TIMEOUT * 2).as_secs(),
                    log_tail(&src.console)
                ));
            }
            _ => thread::sleep(Duration::from_millis(250)),
        }
    };
    let wall = started.elapsed();
    let iterations = last_written(&src.console)
        .unwrap_or(0)
        .saturating_sub(before);
    let ram = info.ram.as_ref();
    Ok(Sample {
        downtime_ms: if end == End::Completed {
            info.downtime
        } else {
            None
        },
        end,
        total_ms: info.total_time.unwrap_or_default(),
        ram_bytes: ram.map_or(0, |r| r.transferred),
        syncs: ram.map_or(0, |r| r.dirty_sync_count),
        expected_ms: info.expected_downtime,
        iterations,
        wall,
        mem_available_kib: mem,
    })
}

/// One line about a sample.
fn describe(s: &Sample) -> String {
    let figures = format!(
        "total {:.1} s, RAM {:.0} MiB, {} dirty syncs, guest loop {} iterations in {:.1} s, \
         MemAvailable down to {} MiB",
        s.total_ms as f64 / 1e3,
        s.ram_bytes as f64 / f64::from(1 << 20),
        s.syncs,
        s.iterations,
        s.wall.as_secs_f64(),
        s.mem_available_kib >> 10
    );
    match &s.end {
        End::Completed => format!(
            "completed, downtime {} ms, {figures}",
            s.downtime_ms.unwrap_or_default()
        ),
        End::NotConverged => format!(
            "did not converge, cancelled (expected downtime {} ms), {figures}",
            s.expected_ms.unwrap_or_default()
        ),
        End::Failed(why) => format!("failed ({why}), {figures}"),
    }
}

/// `median (min-max)` of `v` with `decimals` decimals.
fn stat(v: &[f64], decimals: usize) -> String {
    let (min, max) = v
        .iter()
        .fold((f64::MAX, f64::MIN), |(lo, hi), &x| (lo.min(x), hi.max(x)));
    format!("{:.d$} ({:.d$}-{:.d$})", median(v), min, max, d = decimals)
}

/// The table row of the samples of `config` that ended as `completed` says.
fn row(config: Config, samples: &[&Sample], completed: bool) -> String {
    let n = samples.len();
    let downtime: Vec<f64> = samples
        .iter()
        .filter_map(|s| s.downtime_ms)
        .map(|d| d as f64)
        .collect();
    let total: Vec<f64> = samples.iter().map(|s| s.total_ms as f64 / 1e3).collect();
    let ram: Vec<f64> = samples
        .iter()
        .map(|s| s.ram_bytes as f64 / f64::from(1 << 20))
        .collect();
    let syncs: Vec<f64> = samples.iter().map(|s| s.syncs as f64).collect();
    let (ended, downtime) = if completed {
        (format!("{n} completed"), stat(&downtime, 0))
    } else {
        (format!("{n} not conv."), "-".to_string())
    };
    format!(
        "{:<4}{:<36}{:<16}{:<18}{:<22}{:<22}{}",
        config.label(),
        config.what(),
        ended,
        downtime,
        stat(&total, 1),
        stat(&ram, 0),
        stat(&syncs, 0)
    )
}

/// Prints the table and the ratio line; fails if (a) or (c) had a migration that did not
/// complete.
fn report(results: &mut [(Config, Vec<Sample>)]) -> Result<(), String> {
    results.sort_by_key(|(config, _)| config.label());
    let results = &*results;
    println!();
    let head = [
        ("migrate-vm configuration", 40),
        ("samples", 16),
        ("downtime ms", 18),
        ("total s", 22),
        ("RAM MiB", 22),
        ("dirty syncs", 0),
    ];
    let head: String = head.iter().map(|(h, w)| format!("{h:<w$}")).collect();
    println!("{}", head.trim_end());
    let mut incomplete = Vec::new();
    for (config, samples) in results {
        let done: Vec<&Sample> = samples.iter().filter(|s| s.end == End::Completed).collect();
        let not: Vec<&Sample> = samples
            .iter()
            .filter(|s| s.end == End::NotConverged)
            .collect();
        let failed = samples
            .iter()
            .filter(|s| matches!(s.end, End::Failed(_)))
            .count();
        if !done.is_empty() {
            println!("{}", row(*config, &done, true));
        }
        if !not.is_empty() {
            println!("{}", row(*config, &not, false));
        }
        if failed > 0 {
            println!(
                "{:<4}{:<36}{failed} failed (see the samples above)",
                config.label(),
                config.what()
            );
        }
        if *config != Config::Untracked && done.len() < samples.len() {
            incomplete.push(config.label());
        }
    }
    println!(
        "(medians, min-max; not conv.: cancelled after {} s, total time and figures at the cancel)",
        SAMPLE_TIMEOUT.as_secs()
    );
    for (config, samples) in results {
        let iterations: u64 = samples.iter().map(|s| s.iterations).sum();
        let wall: f64 = samples.iter().map(|s| s.wall.as_secs_f64()).sum();
        let mem = samples
            .iter()
            .map(|s| s.mem_available_kib)
            .min()
            .unwrap_or(0);
        println!(
            "migrate-vm {}: guest loop {:.2} iterations/s while migrating; test VM's \
             MemAvailable down to {} MiB",
            config.label(),
            iterations as f64 / wall.max(1e-9),
            mem >> 10
        );
    }
    let downtimes = |c: Config| -> Vec<f64> {
        results
            .iter()
            .filter(|(config, _)| *config == c)
            .flat_map(|(_, s)| s.iter().filter_map(|s| s.downtime_ms))
            .map(|d| d as f64)
            .collect()
    };
    let (a, c) = (downtimes(Config::Tracked), downtimes(Config::Emulated));
    if !incomplete.is_empty() {
        return Err(format!(
            "migrations of {} did not complete (see above)",
            incomplete.join(" and ")
        ));
    }
    ensure(!a.is_empty() && !c.is_empty() && median(&c) > 0.0, || {
        "no downtime to compare".into()
    })?;
    println!("migrate-vm downtime ratio: {:.2}", median(&a) / median(&c));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_and_range() {
        assert_eq!(stat(&[135.0, 90.0, 179.0], 0), "135 (90-179)");
        assert_eq!(stat(&[9.6, 8.64, 10.61, 9.0], 1), "9.3 (8.6-10.6)");
    }

    #[test]
    fn every_placeholder_filled() {
        assert_eq!(
            fill_template("a @X@ @Y@ @X@ @Z", &[("X", 1), ("Y", 22)]),
            "a 1 22 1 @Z"
        );
        let init = init_script();
        assert!(!init.contains('@'), "{init}");
        assert!(init.contains("count=384 iflag=fullblock"));
    }

    #[test]
    fn labels_sort_as_the_table_lists_them() {
        let mut v = [Config::Emulated, Config::Tracked, Config::Untracked];
        v.sort_by_key(|c| c.label());
        assert!(v == [Config::Tracked, Config::Untracked, Config::Emulated]);
    }
}
