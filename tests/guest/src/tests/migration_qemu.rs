// SPDX-License-Identifier: GPL-2.0

//! Live migration of a running guest with QEMU: two QEMU 10 instances inside the test VM,
//! the source with VF 1 (`-device vfio-pci,host=<VF1>`), the destination with VF 2 and
//! `-incoming defer`, both VFs in vfio mode and attached to the shared namespace. Neither
//! gets `enable-migration=on` and the downtime limit stays QEMU's default: QEMU migrates
//! the VF because the driver offers device dirty tracking, and the pages the VF's DMA
//! writes are the only ones it sends again. A nested guest (the test kernel and its C nvme
//! driver, from an initramfs: QEMU refuses to migrate a guest with a 9p export mounted)
//! writes and reads back chunks in a loop while QMP (the `qapi` crate) migrates it over a
//! unix socket. The migration's first round is slowed down and the guest keeps memory
//! dirty, so that it is still running when the test, once the first round sent the whole
//! memory, has the guest read chunks the test VM wrote into its page cache: the VF's DMA
//! writes memory QEMU already sent, and only the device's dirty tracking makes QEMU send
//! it again. The guest goes on on the destination until the test tells it to stop through
//! the destination's serial port; it then compares those chunks in its page cache with
//! what they must hold (a page the tracking missed holds what the destination had
//! before), and its kernel must log no nvme timeout (a completion queue page the tracking
//! missed). Then every chunk it wrote, before and after the migration, must read back
//! through VF 2 in block mode. With the driver's reports emptied, the destination's nvme
//! driver timed out in both runs tried, which fails the test (`Documentation/testing.rst`).
//!
//! Nested TCG makes this slow (minutes), so it is opt-in: group `slow` and `migration-qemu`.

use std::{
    fs,
    io::Write,
    path::Path,
    process::Stdio,
    thread,
    time::{Duration, Instant},
};

use qapi::qmp;

use crate::fixture::set_mode;
use crate::{
    cpio::Cpio,
    disk::{pattern, Direct},
    harness::{ensure, Env, Report, Test, SLOW},
    kmsg,
    pci::Function,
    tests::{
        migration::with_vf_pair,
        vfio::wait_vf_disk,
        vfio_qemu::{
            check_realized, log_tail, nested_kernel, no_problems_since, problems, wait_exit, Vmm,
            BUSYBOX,
        },
    },
};

/// Bytes of each chunk the nested guest writes (several pages: PRP lists).
const CHUNK: usize = 128 * 1024;
/// Where its chunks go, in chunks.
const FIRST_CHUNK: u64 = 64;
/// At most this many chunks (the namespace is 256 MiB).
const MAX_CHUNKS: u64 = 1024;
/// Where the chunks the guest reads into its page cache are, in chunks, and how many:
/// the test VM writes them.
const CACHE_FIRST: u64 = FIRST_CHUNK + MAX_CHUNKS;
/// Where the chunks are whose page cache the guest drops before it reads those: data
/// unlike theirs, so that a page sent with it and not again is seen.
const SPARE_FIRST: u64 = CACHE_FIRST + CACHE_CHUNKS;
const CACHE_CHUNKS: u64 = 64;
/// The migration's bandwidth (bytes per second) until the guest has read into its page
/// cache: low, so that the first round takes a while and the guest's dirtying keeps the
/// migration going; then QEMU's default.
const SLOW_BANDWIDTH: u64 = 2 << 20;
const DEFAULT_BANDWIDTH: u64 = 128 << 20;
/// How long the guest may take to read into its page cache.
const CACHE_TIMEOUT: Duration = Duration::from_secs(300);
/// Distinct chunk patterns the guest cycles through.
const PATTERNS: u64 = 8;
/// Chunks the guest must have written on the source before the migration starts, and on
/// the destination after it before it is stopped.
const BEFORE: u64 = 2;
const AFTER: u64 = 3;
/// Memory of the nested guest.
const L2_MEMORY: &str = "160M";
/// How long the nested guest may take to boot and write its first chunks, the migration
/// to complete, and the rest (nested TCG).
const BOOT_TIMEOUT: Duration = Duration::from_secs(480);
const MIGRATE_TIMEOUT: Duration = Duration::from_secs(600);
const AFTER_TIMEOUT: Duration = Duration::from_secs(300);
/// The migration socket.
const MIGRATION_SOCK: &str = "/tmp/rnvme-migration.sock";
/// The test VM's pattern the nested guest checks first.
const L1_SEED: u64 = 0x4c31;

/// What the nested guest's C nvme driver logs when a command does not complete.
const IO_TROUBLE: &[&str] = &[
    "timeout, aborting",
    "timeout, reset controller",
    "I/O error",
];

/// The real-QEMU migration test.
pub fn tests() -> Vec<Test> {
    vec![Test {
        name: "migration/qemu-live-migration",
        groups: &[SLOW, "migration-qemu"],
        run: qemu_live_migration,
    }]
}

/// The seed of chunk `i`'s pattern.
fn chunk_seed(i: u64) -> u64 {
    0x1000 + i % PATTERNS
}

/// PID 1 of the nested guest (busybox sh from the initramfs): loads the C nvme driver,
/// checks what the test VM wrote, then writes chunk after chunk, reading each back. Once
/// the migration starts it keeps memory dirty until `cache` arrives on its console (the
/// source's), then reads the test VM's chunks into its page cache; it stops at `stop` (the
/// destination's console) and checks what its page cache holds.
const INIT: &str = r#"B=/bin/busybox
say() { $B echo "RNVME-L2: $*"; }
bye() { $B poweroff -f; }
fail() { say "FAIL $*"; bye; }
$B mount -t proc proc /proc || fail "mount /proc"
$B mount -t sysfs sysfs /sys || fail "mount /sys"
$B mount -t devtmpfs devtmpfs /dev || fail "mount /dev"
$B mount -t tmpfs -o size=40m tmpfs /tmp || fail "mount /tmp"
$B insmod /nvme-core.ko || fail "insmod nvme-core.ko"
$B insmod /nvme.ko || fail "insmod nvme.ko"
disk=
i=0
while [ -z "$disk" ]; do
	disk=$($B ls /sys/block | $B grep '^nvme' | $B head -n 1)
	if [ -z "$disk" ]; then
		[ $i -ge 600 ] && fail "no nvme disk after 60 s"
		$B usleep 100000
		i=$((i + 1))
	fi
done
dev=/dev/$disk
$B dd if=$dev iflag=direct bs=@BS@ count=1 2>/dev/null | $B cmp -s - /from-l1.bin ||
	fail "what the test VM wrote reads back different"
say "read-ok"
# Rewrites 16 MiB of tmpfs in place with one small-buffered copy: the same pages every
# time and hardly any freed, so that the page cache reads below do not get pages the
# guest's CPU wrote just before (which QEMU would send again whatever the VF reports).
k=0
while [ $k -lt 16 ]; do
	$B cat /chunk-*.bin >> /tmp/src
	k=$((k + 1))
done
$B cp /tmp/src /tmp/dirt
dirty() {
	$B dd if=/tmp/src of=/tmp/dirt bs=16384 conv=notrunc 2>/dev/null
}
# Pages for the reads during the migration: read into the page cache now (the first
# round sends them as they are), dropped when the test asks for the reads, so that the
# allocator hands them out again, not written by the CPU since.
$B dd if=$dev of=/dev/null bs=@BS@ skip=@SPARE_FIRST@ count=@CACHE@ 2>/dev/null ||
	fail "read of the spare chunks"
i=0
while [ $i -lt @MAX@ ]; do
	p=/chunk-$((i % @PATTERNS@)).bin
	$B dd if=$p of=$dev oflag=direct bs=@BS@ seek=$((@FIRST@ + i)) conv=notrunc 2>/dev/null ||
		fail "write of chunk $i"
	$B dd if=$dev iflag=direct bs=@BS@ skip=$((@FIRST@ + i)) count=1 2>/dev/null | $B cmp -s - $p ||
		fail "chunk $i reads back different"
	say "wrote $i"
	i=$((i + 1))
	# The test migrates now. Until the guest has read what the test wants, it rewrites
	# 16 MiB of memory each time round, more than a slow migration sends within QEMU's
	# downtime limit, so that the migration cannot finish before. (In the foreground: a
	# background job's SIGCHLDs would interrupt the reads of the console.)
	[ $i -ge @BEFORE@ ] && [ -z "$cached" ] && dirty
	if read -t 1 cmd; then
		case "$cmd" in
		stop) break ;;
		cache)
			# Into the page cache, by the VF's DMA, in the pages the spare chunks
			# held, which the migration already sent with the spare chunks' data.
			echo 1 > /proc/sys/vm/drop_caches
			$B dd if=$dev of=/dev/null bs=@BS@ skip=@CACHE_FIRST@ count=@CACHE@ \
				2>/dev/null || fail "read into the page cache"
			cached=@CACHE@
			say "cached $cached"
			;;
		esac
	fi
done
[ -n "$cached" ] || fail "the test never had the guest read into its page cache"
c=0
while [ $c -lt $cached ]; do
	$B dd if=$dev bs=@BS@ skip=$((@CACHE_FIRST@ + c)) count=1 2>/dev/null |
		$B cmp -s - /chunk-$((c % @PATTERNS@)).bin ||
		fail "cached chunk $c differs in the page cache after the migration"
	c=$((c + 1))
done
say "cache-ok $c"
say "PASS $i chunks"
bye
"#;

/// A nested guest's initramfs: the static busybox as `/bin/sh`, `init` as `/init.sh` (the
/// kernel command line of [`guest_args`] runs it), a console, an empty `/tmp`, and `files`
/// (name, bytes; read-only) at the top.
pub(crate) fn nested_initramfs(init: &str, files: &[(String, Vec<u8>)]) -> Result<Vec<u8>, String> {
    let busybox = fs::read(BUSYBOX).map_err(|e| format!("{BUSYBOX}: {e}"))?;
    let mut c = Cpio::new();
    for d in ["bin", "dev", "proc", "sys", "tmp"] {
        c.dir(d);
    }
    // init's console: its stdin, stdout and stderr.
    c.chardev("dev/console", 5, 1);
    c.file("bin/busybox", 0o755, &busybox)
        .symlink("bin/sh", "busybox")
        .file("init.sh", 0o755, init.as_bytes());
    for (name, data) in files {
        c.file(name, 0o644, data);
    }
    Ok(c.finish())
}

/// A file of the test VM for [`nested_initramfs`], under `name`.
pub(crate) fn initramfs_file(name: &str, path: &Path) -> Result<(String, Vec<u8>), String> {
    let data = fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
    Ok((name.to_string(), data))
}

/// `template` with every `@NAME@` of `values` (name, value) replaced by its value.
pub(crate) fn fill_template(template: &str, values: &[(&str, u64)]) -> String {
    values
        .iter()
        .fold(template.to_string(), |t, (name, value)| {
            t.replace(&format!("@{name}@"), &value.to_string())
        })
}

/// The C nvme driver's modules from `mods` (see `nested_kernel`) for [`nested_initramfs`],
/// as `/nvme-core.ko` and `/nvme.ko`.
pub(crate) fn nvme_module_files(mods: &Path) -> Result<Vec<(String, Vec<u8>)>, String> {
    ["nvme-core.ko", "nvme.ko"]
        .iter()
        .map(|m| initramfs_file(m, &mods.join(m)))
        .collect()
}

/// The kernel problem reports (`problems`) in a nested guest's console log.
pub(crate) fn console_problems(console: &Path) -> Vec<String> {
    problems(&console_lines(console))
        .into_iter()
        .cloned()
        .collect()
}

/// The lines of a nested guest's console log (none if it cannot be read).
fn console_lines(console: &Path) -> Vec<String> {
    let text = fs::read_to_string(console).unwrap_or_default();
    text.lines().map(String::from).collect()
}

/// Lets `dst` (started with `-incoming defer`) take a migration stream at `uri`.
pub(crate) fn listen(dst: &mut Vmm, uri: &str) -> Result<(), String> {
    dst.qmp
        .execute(&qmp::migrate_incoming {
            uri: Some(uri.to_string()),
            channels: None,
            exit_on_error: None,
        })
        .map(drop)
        .map_err(|e| format!("migrate-incoming: {e}"))
}

/// Starts migrating `src` to `uri`.
pub(crate) fn start_migration(src: &mut Vmm, uri: &str) -> Result<(), String> {
    src.qmp
        .execute(&qmp::migrate {
            uri: Some(uri.to_string()),
            channels: None,
            detach: None,
            resume: None,
        })
        .map(drop)
        .map_err(|e| format!("migrate: {e}"))
}

/// The nested guest's initramfs: busybox, the C nvme modules, the init script and the data.
fn initramfs(mods: &Path, from_l1: &[u8]) -> Result<Vec<u8>, String> {
    let init = fill_template(
        INIT,
        &[
            ("BS", CHUNK as u64),
            ("MAX", MAX_CHUNKS),
            ("PATTERNS", PATTERNS),
            ("FIRST", FIRST_CHUNK),
            ("CACHE_FIRST", CACHE_FIRST),
            ("SPARE_FIRST", SPARE_FIRST),
            ("CACHE", CACHE_CHUNKS),
            ("BEFORE", BEFORE),
        ],
    );
    let mut files = nvme_module_files(mods)?;
    files.push(("from-l1.bin".to_string(), from_l1.to_vec()));
    for k in 0..PATTERNS {
        files.push((format!("chunk-{k}.bin"), pattern(CHUNK, chunk_seed(k))));
    }
    nested_initramfs(&init, &files)
}

/// The `RNVME-L2:` messages in a console log.
pub(crate) fn said(console: &Path) -> Vec<String> {
    fs::read_to_string(console)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| {
            l.find("RNVME-L2: ")
                .map(|i| l[i + 10..].trim_end().to_string())
        })
        .collect()
}

/// The number of the last chunk a console reports written (`wrote <n>`), if any.
pub(crate) fn last_written(console: &Path) -> Option<u64> {
    said(console)
        .iter()
        .rev()
        .find_map(|l| l.strip_prefix("wrote ").and_then(|n| n.parse().ok()))
}

/// Waits up to `timeout` for `f` to hold, failing early if the guest reported a failure.
pub(crate) fn wait_console(
    console: &Path,
    timeout: Duration,
    what: &str,
    f: impl Fn(&[String]) -> bool,
) -> Result<(), String> {
    let start = Instant::now();
    loop {
        let s = said(console);
        if f(&s) {
            return Ok(());
        }
        if let Some(fail) = s.iter().find(|l| l.starts_with("FAIL")) {
            return Err(format!("the nested guest said {fail:?}"));
        }
        if start.elapsed() >= timeout {
            return Err(format!(
                "{what}: not after {} s; the guest said {s:?}; console tail: {}",
                timeout.as_secs(),
                log_tail(console)
            ));
        }
        thread::sleep(Duration::from_millis(200));
    }
}

/// QEMU's arguments for a nested guest of `memory` booting `bzimage` with `initrd` (from
/// [`nested_initramfs`]), its console on `serial`, with the devices `devices`.
pub(crate) fn guest_args(
    bzimage: &str,
    initrd: &str,
    memory: &str,
    serial: &str,
    devices: &[String],
) -> Vec<String> {
    let mut args: Vec<String> = [
        "-m",
        memory,
        "-smp",
        "1",
        "-no-reboot",
        "-serial",
        serial,
        "-kernel",
        bzimage,
        "-initrd",
        initrd,
        "-append",
        "console=ttyS0 rdinit=/bin/sh panic=-1 kunit.enable=0 nohz=off no_timer_check loglevel=5 -- /init.sh",
    ]
    .map(String::from)
    .to_vec();
    args.extend_from_slice(devices);
    args
}

/// The arguments that assign `vf` through iommufd, with the further vfio-pci properties
/// `props` (empty, or starting with a comma).
pub(crate) fn vf_args(vf: &Function, props: &str) -> Vec<String> {
    [
        // The iommufd backend: with the legacy type1 container QEMU asks the kernel for a
        // dirty bitmap of every DMA mapping, and the kernel refuses it for the VF's BAR
        // mapped around the MSI-X table (not page sized), which fails the migration. With
        // iommufd QEMU uses the VF's own dirty tracking (the driver's log_ops), which is
        // also what makes it migrate the VF without enable-migration=on.
        "-object",
        "iommufd,id=iommufd0",
        "-device",
        &format!(
            "{},iommufd=iommufd0{props}",
            crate::tests::vfio_qemu::vfio_device(vf)
        ),
    ]
    .map(String::from)
    .to_vec()
}

/// Starts QEMU `name` with `args` (its console on stdio), the console's output going to
/// `console` and its input to [`type_line`], and checks that it realized `vf`.
fn spawn_typed(
    env: &Env,
    name: &str,
    args: &[String],
    console: &Path,
    vf: &Function,
) -> Result<Vmm, String> {
    let out = fs::File::create(console).map_err(|e| format!("{}: {e}", console.display()))?;
    let mut vmm = Vmm::spawn(env, name, args, Stdio::piped(), out.into())?;
    check_realized(&mut vmm, vf)?;
    Ok(vmm)
}

/// Types `line` on the console of a QEMU from [`spawn_typed`].
fn type_line(vmm: &mut Vmm, line: &str) -> Result<(), String> {
    let stdin = vmm
        .proc
        .0
        .stdin
        .as_mut()
        .ok_or("no stdin of the guest's QEMU")?;
    stdin
        .write_all(format!("{line}\n").as_bytes())
        .map_err(|e| format!("typing {line}: {e}"))
}

/// Limits the migration to `bytes` per second.
fn set_bandwidth(vmm: &mut Vmm, bytes: u64) -> Result<(), String> {
    vmm.qmp
        .execute(&qmp::migrate_set_parameters(qmp::MigrateSetParameters {
            max_bandwidth: Some(bytes),
            ..Default::default()
        }))
        .map(|_| ())
        .map_err(|e| format!("migrate-set-parameters: {e}"))
}

/// Waits until the migration's first round sent the whole memory, then has the source
/// guest read chunks into its page cache (the VF's DMA writes pages QEMU already sent:
/// only the device's dirty tracking makes QEMU send them again) and waits for it to be
/// done, the migration still running.
fn read_after_first_round(env: &Env, vmm: &mut Vmm, console: &Path) -> Result<(), String> {
    let t = Instant::now();
    loop {
        let info = migration_status(vmm)?;
        let syncs = info.ram.as_ref().map_or(0, |r| r.dirty_sync_count);
        // The second sync comes when the first round is nearly done, the third after the
        // round that follows: from then on, all memory was sent at least once.
        match info.status {
            Some(qmp::MigrationStatus::active) if syncs >= 3 => break,
            Some(qmp::MigrationStatus::setup | qmp::MigrationStatus::active) => {}
            other => {
                return Err(format!(
                    "the migration is {other:?} before the guest read ({:?}); source: {}",
                    info.error_desc,
                    log_tail(&env.out.join("qemu-migration-src.log"))
                ))
            }
        }
        if t.elapsed() >= MIGRATE_TIMEOUT {
            return Err(format!("the first round did not end: {info:?}"));
        }
        thread::sleep(Duration::from_millis(100));
    }
    type_line(vmm, "cache")?;
    wait_console(
        console,
        CACHE_TIMEOUT,
        "the reads into the page cache",
        |s| s.iter().any(|l| l.starts_with("cached ")),
    )?;
    let info = migration_status(vmm)?;
    ensure(info.status == Some(qmp::MigrationStatus::active), || {
        format!(
            "the migration is {:?} after the guest read, not active: the reads do not test \
             the tracking",
            info.status
        )
    })
}

/// The migration's status, from `query-migrate`.
pub(crate) fn migration_status(vmm: &mut Vmm) -> Result<qmp::MigrationInfo, String> {
    vmm.qmp
        .execute(&qmp::query_migrate {})
        .map_err(|e| format!("query-migrate: {e}"))
}

fn qemu_live_migration(env: &Env) -> Result<Vec<Report>, String> {
    let (bzimage, mods) = nested_kernel(env)?;
    with_vf_pair(env, |_pf, src, dst| {
        let from_l1 = pattern(CHUNK, L1_SEED);
        {
            let disk = wait_vf_disk(src)?;
            let mut d = Direct::open_path(&disk)?;
            d.write_at(0, &from_l1)?;
            // Whatever the guest does not write must not look written.
            for i in 0..MAX_CHUNKS.min(64) {
                d.write_at((FIRST_CHUNK + i) * CHUNK as u64, &pattern(CHUNK, 0xdead))?;
            }
            // What the guest reads into its page cache, and before it what it drops.
            for c in 0..CACHE_CHUNKS {
                d.write_at(
                    (CACHE_FIRST + c) * CHUNK as u64,
                    &pattern(CHUNK, chunk_seed(c)),
                )?;
                d.write_at(
                    (SPARE_FIRST + c) * CHUNK as u64,
                    &pattern(CHUNK, 0x5000 + c),
                )?;
            }
        }
        set_mode(src, "vfio")?;
        set_mode(dst, "vfio")?;
        let mark = kmsg::mark()?;

        let dir = env.out.join("migration-l2");
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        let initrd = dir.join("initramfs.cpio");
        fs::write(&initrd, initramfs(&mods, &from_l1)?)
            .map_err(|e| format!("{}: {e}", initrd.display()))?;
        let src_console = dir.join("source-console.log");
        let dst_console = dir.join("destination-console.log");
        let bz = bzimage.to_string_lossy().to_string();
        let rd = initrd.to_string_lossy().to_string();

        // The destination first, waiting for the stream; its console is its stdio, so that
        // the test can type on it.
        let mut dst_args = guest_args(&bz, &rd, L2_MEMORY, "stdio", &vf_args(dst, ""));
        dst_args.extend(["-incoming", "defer"].map(String::from));
        let mut dvmm = spawn_typed(env, "migration-dst", &dst_args, &dst_console, dst)?;

        let started = Instant::now();
        // The source's console is its stdio too, so that the test can type on it.
        let src_args = guest_args(&bz, &rd, L2_MEMORY, "stdio", &vf_args(src, ""));
        let mut svmm = spawn_typed(env, "migration-src", &src_args, &src_console, src)?;
        wait_console(
            &src_console,
            BOOT_TIMEOUT,
            "the source guest's first chunks",
            |s| s.iter().any(|l| l == &format!("wrote {}", BEFORE - 1)),
        )?;
        let booted = started.elapsed();

        // QEMU's default downtime limit: with device dirty tracking, the rounds converge.
        // The first round goes slowly, and the guest keeps memory dirty meanwhile, so
        // that the guest can read into memory the migration already sent.
        set_bandwidth(&mut svmm, SLOW_BANDWIDTH)?;
        let _ = fs::remove_file(MIGRATION_SOCK);
        let uri = format!("unix:{MIGRATION_SOCK}");
        listen(&mut dvmm, &uri)?;
        let before = last_written(&src_console).unwrap_or(0);
        let migrating = Instant::now();
        start_migration(&mut svmm, &uri)?;
        read_after_first_round(env, &mut svmm, &src_console)?;
        set_bandwidth(&mut svmm, DEFAULT_BANDWIDTH)?;
        let info = loop {
            let info = migration_status(&mut svmm)?;
            match info.status {
                Some(qmp::MigrationStatus::completed) => break info,
                Some(qmp::MigrationStatus::failed | qmp::MigrationStatus::cancelled) => {
                    return Err(format!(
                        "the migration ended {:?}: {:?}; source: {}; destination: {}",
                        info.status,
                        info.error_desc,
                        log_tail(&env.out.join("qemu-migration-src.log")),
                        log_tail(&env.out.join("qemu-migration-dst.log"))
                    ))
                }
                _ if migrating.elapsed() >= MIGRATE_TIMEOUT => {
                    return Err(format!("the migration did not complete: {info:?}"))
                }
                _ => thread::sleep(Duration::from_millis(250)),
            }
        };
        let took = migrating.elapsed();
        let at_switch = last_written(&src_console).unwrap_or(0);
        println!(
            "# nested guest up after {:.1} s; migration {:.1} s (QEMU: downtime {:?} ms, \
             {:?} bytes of RAM, {:?} dirty syncs); chunks written on the source: {}",
            booted.as_secs_f64(),
            took.as_secs_f64(),
            info.downtime,
            info.ram.as_ref().map(|r| r.transferred),
            info.ram.as_ref().map(|r| r.dirty_sync_count),
            at_switch + 1,
        );
        ensure(at_switch >= before, || {
            "the source guest went backwards".into()
        })?;

        // The guest goes on on the destination, with its data where it left it.
        wait_console(
            &dst_console,
            AFTER_TIMEOUT,
            "chunks written on the destination",
            |s| {
                s.iter()
                    .filter_map(|l| l.strip_prefix("wrote ").and_then(|n| n.parse::<u64>().ok()))
                    .any(|n| n >= at_switch + AFTER)
            },
        )?;
        type_line(&mut dvmm, "stop")?;
        wait_console(&dst_console, AFTER_TIMEOUT, "the guest's end", |s| {
            s.iter().any(|l| l.starts_with("PASS"))
        })?;
        let status = wait_exit(&mut dvmm.proc.0, AFTER_TIMEOUT)?;
        ensure(status.success(), || {
            format!("the destination QEMU: {status}")
        })?;
        let said_dst = said(&dst_console);
        let total: u64 = said_dst
            .iter()
            .find_map(|l| {
                l.strip_prefix("PASS ")
                    .and_then(|r| r.split(' ').next()?.parse().ok())
            })
            .ok_or_else(|| format!("no chunk count in {said_dst:?}"))?;
        let cached: u64 = said_dst
            .iter()
            .find_map(|l| l.strip_prefix("cache-ok ").and_then(|n| n.parse().ok()))
            .ok_or_else(|| format!("no page cache check in {said_dst:?}"))?;
        ensure(cached == CACHE_CHUNKS, || {
            format!("{cached} cached chunks checked, want {CACHE_CHUNKS}")
        })?;
        // The source stays paused after a completed migration: it must not run the guest
        // (its console ends where the destination's begins).
        let after_src = last_written(&src_console).unwrap_or(0);
        ensure(after_src == at_switch, || {
            format!("the source guest wrote chunk {after_src} after the switch at {at_switch}")
        })?;
        svmm.quit()?;
        drop(dvmm);
        for (name, console) in [("source", &src_console), ("destination", &dst_console)] {
            let bad = console_problems(console);
            ensure(bad.is_empty(), || {
                format!("the {name} guest's kernel reported {bad:?}")
            })?;
            // A completion entry the migration left behind (a stale completion queue
            // page) shows as a command that never completes.
            let lost: Vec<String> = console_lines(console)
                .into_iter()
                .filter(|l| IO_TROUBLE.iter().any(|m| l.contains(m)))
                .collect();
            ensure(lost.is_empty(), || {
                format!("the {name} guest's nvme driver reported {lost:?}")
            })?;
        }
        no_problems_since(mark)?;

        // Every chunk reads back through the destination VF in block mode.
        set_mode(dst, "nvme")?;
        let disk = wait_vf_disk(dst)?;
        let mut d = Direct::open_path(&disk)?;
        for i in 0..total {
            let got = d.read_at((FIRST_CHUNK + i) * CHUNK as u64, CHUNK)?;
            ensure(got == pattern(CHUNK, chunk_seed(i)), || {
                format!("chunk {i} of {total} does not read back after the migration")
            })?;
        }
        ensure(d.read_at(0, CHUNK)? == from_l1, || {
            "the test VM's data changed".into()
        })?;
        println!(
            "# {total} chunks verified ({} before the switch, {} after)",
            at_switch + 1,
            total - at_switch - 1
        );
        Ok(())
    })
}
