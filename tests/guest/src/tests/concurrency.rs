// SPDX-License-Identifier: GPL-2.0

//! Many VFs at once (group `concurrency`, run by `cargo xtask test` in a boot of its own
//! whose emulated PF has 32 VFs: `CONCURRENCY_VFS` in `xtask/src/test.rs`):
//!
//! * `concurrency/8-migrations-under-fio`: 8 VF pairs, each with its userspace NVMe driver
//!   over VFIO (`crate::vfio_client`), migrate at the same time through the VFIO migration
//!   uAPI, twice (there and back), while fio verify (`crc32c`, `verify_fatal`) runs in a
//!   loop on the PF's namespace and on two VFs in block mode. Every page a client wrote
//!   before a migration, had in flight when its source suspended, or queued on the
//!   suspended source reads back on the destination; every fio run's checksums hold; the
//!   driver logs no failed command. The device downtime of each concurrent migration is
//!   printed against the same migration alone (PF idle, then under the same fio load).
//! * `concurrency/32-mode-switches`: 32 VFs switch to vfio mode at once and back at once;
//!   each VF's disk keeps what was written in block mode, and what its userspace driver
//!   wrote in vfio mode (all 32 at once) reads back through the disk afterwards.
//!
//! All of a pair's migrations go through the PF's admin queue, which carries one
//! synchronous command at a time (`Documentation/migration.rst`, "Many VFs at once"):
//! concurrent migrations wait for each other's commands there, which is what the downtime
//! comparison shows.

use std::{
    fs::File,
    process::{Command, Stdio},
    sync::{
        atomic::{AtomicBool, Ordering},
        Barrier, Mutex,
    },
    thread,
    time::{Duration, Instant},
};

use crate::{
    bench::median,
    disk::{pattern, Direct, DISK},
    fixture::{check_mode, set_mode, with_loaded},
    harness::{ensure, wait_until, Env, Report, Test, CONCURRENCY},
    kmsg, module,
    pci::Function,
    sriov::{list_secondary, set_numvfs, vf_disk, vfs, CHARDEV},
    tests::{
        migration::{NSID, NSID_NUM},
        vfio::{disk_ios, wait_vf_disk, FioVerify},
        vfio_qemu::no_problems_since,
    },
    vfio_client::{Client, Path, Q},
    vfio_migration::{precopy_info, read_all, set_state, state, write_all, ReadEnd, State},
};

/// Migrating VF pairs.
const PAIRS: usize = 8;
/// VFs in block mode under fio beside the pairs.
const BLOCK_VFS: usize = 2;
/// VFs switching modes at once.
const SWITCH_VFS: usize = 32;

/// Bytes of the shared namespace each pair (and each switching VF) writes in: its own.
const REGION: u64 = 4 << 20;
/// Where the block-mode VFs' fio jobs write in the shared namespace (past the pairs').
const FIO_OFFSETS: [u64; BLOCK_VFS] = [128 << 20, 192 << 20];

/// Pages a client writes (synchronously) before each migration.
const SYNC_PAGES: u64 = 8;
/// Writes in flight when the source suspends, and queued on the suspended source.
const BEFORE: usize = 4;
const DURING: usize = 4;
/// Concurrent rounds: each pair migrates there and back, twice.
const ROUNDS: usize = 4;
/// Migrations of the single pair, alone (idle, then under fio).
const SINGLE: usize = 6;

/// How long a command may take once a controller runs.
const COMPLETE: Duration = Duration::from_secs(30);
/// How long a disk may take to come back.
const SETTLE: Duration = Duration::from_secs(60);
/// How long one fio run of a loop may take (the debug kernel under TCG is slow).
const FIO_RUN: Duration = Duration::from_secs(600);

/// The verify job that runs in a loop on each block disk. Each run is long against the
/// gap between two runs (fio exiting and starting again, a second or more on a loaded
/// host), so that the disks are busy all through the concurrent migrations, which last a
/// few seconds: with 8 MiB runs a loaded release run once saw two disks idle for the whole
/// concurrent phase. 32 MiB still fits before the next region (`FIO_OFFSETS`).
const LOOP_VERIFY: FioVerify = FioVerify {
    name: "concurrent",
    iodepth: 8,
    size: "32M",
    output: "--output=/dev/null",
};

/// The concurrency tests.
pub fn tests() -> Vec<Test> {
    vec![
        Test {
            name: "concurrency/8-migrations-under-fio",
            groups: &[CONCURRENCY],
            run: migrations_under_fio,
        },
        Test {
            name: "concurrency/32-mode-switches",
            groups: &[CONCURRENCY],
            run: mode_switches,
        },
    ]
}

/// Runs `f` with the module loaded and `n` VFs enabled, the shared namespace attached to
/// all of them; afterwards puts every VF back in block mode, detaches and disables them.
fn with_many_vfs(
    env: &Env,
    n: usize,
    f: impl FnOnce(&Function, &[Function]) -> Result<(), String>,
) -> Result<Vec<Report>, String> {
    with_loaded(env, |pf| {
        let total = module::sysfs_read(&pf.dir().join("sriov_totalvfs"))?;
        let total: usize = total
            .trim()
            .parse()
            .map_err(|e| format!("sriov_totalvfs {total:?}: {e}"))?;
        ensure(total >= n, || {
            format!(
                "the VM offers {total} VFs, the test needs {n}: run it with `cargo xtask test \
                 concurrency` (a boot with enough VFs)"
            )
        })?;
        let count = u16::try_from(n).map_err(|e| e.to_string())?;
        set_numvfs(pf, count)?;
        let vfs = vfs(pf)?;
        ensure(vfs.len() == n, || format!("{} VFs, want {n}", vfs.len()))?;
        let secondary = list_secondary()?;
        let scids = (1..=n as u64)
            .map(|vfn| {
                secondary
                    .iter()
                    .find(|s| s.vfn == vfn)
                    .map(|s| s.scid.to_string())
                    .ok_or_else(|| format!("no secondary controller for VF {vfn}"))
            })
            .collect::<Result<Vec<_>, _>>()?
            .join(",");
        module::run("nvme", &["attach-ns", CHARDEV, "-n", NSID, "-c", &scids])?;
        let result = f(pf, &vfs);
        for vf in &vfs {
            let _ = set_mode(vf, "nvme");
        }
        module::run("nvme", &["detach-ns", CHARDEV, "-n", NSID, "-c", &scids])?;
        result.and(set_numvfs(pf, 0))
    })
}

/// `err` with what the driver logged about the functions `bdfs` since `mark`: a failed
/// migration fails the test with the driver's own error.
fn with_driver_log(mark: u64, bdfs: &[&str], err: String) -> String {
    let log = kmsg::since(mark).unwrap_or_default();
    let ours: Vec<&String> = log
        .iter()
        .filter(|l| bdfs.iter().any(|b| l.contains(b)))
        .filter(|l| is_failure(l))
        .collect();
    if ours.is_empty() {
        err
    } else {
        format!("{err}; the driver logged {ours:?}")
    }
}

/// Whether the driver's log line `l` tells of a failure.
fn is_failure(l: &str) -> bool {
    ["failed", "timeout", "ERROR", "refused", "error"]
        .iter()
        .any(|w| l.contains(w))
}

/// Moves `c` to `to` and checks it got there (and opened a data fd exactly if `fd`).
fn step(c: &Client, to: State, fd: bool) -> Result<Option<File>, String> {
    let f = set_state(c, to).map_err(|e| format!("set state {to:?}: {e}"))?;
    ensure(f.is_some() == fd, || {
        format!("set state {to:?}: data fd {}, want {fd}", f.is_some())
    })?;
    let got = state(c).map_err(|e| format!("after {to:?}: get state: {e}"))?;
    ensure(got == to, || format!("after {to:?}: state {got:?}"))?;
    Ok(f)
}

/// When a migration's device downtime began (the suspend request) and ended (the
/// destination running).
#[derive(Clone, Copy, Debug)]
pub(crate) struct Downtime {
    pub(crate) from: Instant,
    pub(crate) to: Instant,
}

impl Downtime {
    /// How long it was.
    pub(crate) fn len(&self) -> Duration {
        self.to - self.from
    }
}

/// The most of `windows` that were open at the same time.
fn peak_overlap(windows: &[Downtime]) -> usize {
    let mut events: Vec<(Instant, i32)> = windows
        .iter()
        .flat_map(|w| [(w.from, 1), (w.to, -1)])
        .collect();
    // An end before a start at the same instant: touching windows do not overlap.
    events.sort_by(|a, b| a.0.cmp(&b.0).then(a.1.cmp(&b.1)));
    let (mut open, mut peak) = (0i32, 0i32);
    for (_, d) in events {
        open += d;
        peak = peak.max(open);
    }
    peak as usize
}

/// A page written, where, and what it holds.
struct Written {
    offset: u64,
    data: Vec<u8>,
}

/// Two VFs in vfio mode in one container, the controller running on one of them (the
/// source of the next migration), and every page the pair wrote. `cargo xtask bench
/// migrate-many` migrates them too.
pub(crate) struct Pair {
    name: String,
    clients: [Client; 2],
    /// Which client drives the controller now.
    active: usize,
    lba: usize,
    /// The pair's region of the namespace.
    base: u64,
    next: u64,
    written: Vec<Written>,
}

/// A migration under way: the source in PRE_COPY with its compatibility section read,
/// the destination RESUMING with it written, writes queued on the source (not rung).
pub(crate) struct Prepared {
    out: File,
    into: File,
    pending: Vec<(u16, Written)>,
}

impl Pair {
    /// Opens VFs `a` and `b` (in vfio mode) in one container; `a` gets an I/O queue.
    pub(crate) fn open(k: usize, a: &Function, b: &Function) -> Result<Self, String> {
        let mut clients = Client::open_many(&[&a.bdf, &b.bdf], Path::Container)
            .map_err(|e| format!("opening {} and {}: {}", a.bdf, b.bdf, String::from(e)))?;
        let second = clients.pop().ok_or("no client for the second VF")?;
        let mut first = clients.pop().ok_or("no client for the first VF")?;
        first.create_io_queue()?;
        let lba = first.lba_size(NSID_NUM)?;
        Ok(Self {
            name: format!("pair {k} ({} <-> {})", a.bdf, b.bdf),
            clients: [first, second],
            active: 0,
            lba,
            base: k as u64 * REGION,
            next: 0,
            written: Vec::new(),
        })
    }

    /// The next page of the pair's region and a pattern for it.
    fn next_page(&mut self, seed: u64) -> Result<Written, String> {
        let offset = self.base + self.next * 4096;
        self.next += 1;
        ensure(offset + 4096 <= self.base + REGION, || {
            format!("{}: out of its region", self.name)
        })?;
        Ok(Written {
            offset,
            data: pattern(4096, offset ^ seed),
        })
    }

    /// Writes `n` pages synchronously through the running controller.
    pub(crate) fn write_sync(&mut self, n: u64) -> Result<(), String> {
        for _ in 0..n {
            let w = self.next_page(0x5e9c)?;
            let lba = self.lba;
            self.clients[self.active].write_page(NSID_NUM, w.offset, lba, &w.data)?;
            self.written.push(w);
        }
        Ok(())
    }

    /// Reads back every page the pair wrote through the running controller.
    pub(crate) fn verify(&mut self) -> Result<(), String> {
        let lba = self.lba;
        let c = &mut self.clients[self.active];
        for w in &self.written {
            let got = c.read_page(NSID_NUM, w.offset, lba)?;
            ensure(got == w.data, || {
                format!("the page at {} does not read back", w.offset)
            })?;
        }
        Ok(())
    }

    /// PRE_COPY on the source (its compatibility section read to the temporary end),
    /// RESUMING on the destination (the section written), [`BEFORE`] writes queued on the
    /// source without ringing the doorbell.
    pub(crate) fn prepare(&mut self) -> Result<Prepared, String> {
        let (s, d) = (self.active, 1 - self.active);
        let mut out = step(&self.clients[s], State::PreCopy, true)?.ok_or("no saving fd")?;
        let (compat, end) = read_all(&mut out, 4096).map_err(|e| format!("PRE_COPY read: {e}"))?;
        ensure(end == ReadEnd::Temporary && !compat.is_empty(), || {
            format!("PRE_COPY read {} bytes ending {end:?}", compat.len())
        })?;
        let mut into = step(&self.clients[d], State::Resuming, true)?.ok_or("no resuming fd")?;
        write_all(&mut into, &compat, 4096)
            .map_err(|e| format!("writing the compatibility section: {e}"))?;
        let mut pending = Vec::new();
        for slot in 1..=BEFORE {
            let w = self.next_page(0xbef0)?;
            pending.push(self.queue(slot, w)?);
        }
        Ok(Prepared { out, into, pending })
    }

    /// Queues a write of `w` on the source's I/O queue from data page `slot`.
    fn queue(&mut self, slot: usize, w: Written) -> Result<(u16, Written), String> {
        let lba = self.lba;
        let c = &mut self.clients[self.active];
        c.set_page(slot, &w.data);
        let sqe = c.rw_sqe(0x01, NSID_NUM, w.offset, lba, slot);
        Ok((c.push(Q::Io, sqe)?, w))
    }

    /// The rest of the migration: the writes of `p` rung, the source suspended
    /// (PRE_COPY_P2P), [`DURING`] more writes queued on it, its state read (STOP_COPY) and
    /// loaded into the destination (STOP), which runs (RUNNING); then the source stops and
    /// the destination completes every write, each of which reads back there. Returns the
    /// device downtime: from the suspend request to the destination running.
    pub(crate) fn switch_over(&mut self, mut p: Prepared) -> Result<Downtime, String> {
        let (s, d) = (self.active, 1 - self.active);
        self.clients[s].ring_sq(Q::Io)?;
        let t0 = Instant::now();
        step(&self.clients[s], State::PreCopyP2p, false)?;
        // What the source fetched before the suspend completed before it returned.
        let mut done = Vec::new();
        while let Some(c) = self.clients[s].reap(Q::Io, Duration::ZERO)? {
            done.push(c);
        }
        for i in 0..DURING {
            let w = self.next_page(0xd0e5)?;
            let queued = self.queue(1 + BEFORE + i, w)?;
            p.pending.push(queued);
        }
        self.clients[s].ring_sq(Q::Io)?;
        step(&self.clients[s], State::StopCopy, false)?;
        let (rest, end) =
            read_all(&mut p.out, 65536).map_err(|e| format!("STOP_COPY read: {e}"))?;
        ensure(end == ReadEnd::End, || {
            format!("STOP_COPY read ended {end:?}")
        })?;
        write_all(&mut p.into, &rest, 65536)
            .map_err(|e| format!("writing the controller state: {e}"))?;
        step(&self.clients[d], State::Stop, false)?;
        // The suspended source completed nothing after the suspend.
        let late = self.clients[s].cq_ready(Q::Io)?;
        ensure(!late, || "a completion on the suspended source".into())?;
        step(&self.clients[d], State::Running, false)?;
        let downtime = Downtime {
            from: t0,
            to: Instant::now(),
        };
        drop(p.into);
        step(&self.clients[s], State::Stop, false)?;
        let pi = precopy_info(&p.out);
        ensure(pi.is_err(), || {
            format!("precopy info after the source stopped: {pi:?}")
        })?;

        let [a, b] = &mut self.clients;
        let (src, dst) = if s == 0 { (&*a, b) } else { (&*b, a) };
        dst.adopt_queues(src);
        while done.len() < p.pending.len() {
            let c = dst.reap(Q::Io, COMPLETE)?.ok_or_else(|| {
                format!(
                    "{} of {} writes completed on the destination",
                    done.len(),
                    p.pending.len()
                )
            })?;
            done.push(c);
        }
        let lba = self.lba;
        for (cid, w) in p.pending {
            let c = done
                .iter()
                .find(|c| c.cid == cid)
                .ok_or_else(|| format!("no completion for write {cid}"))?;
            ensure(c.status == 0, || {
                format!("write {cid} completed with {:#x}", c.status)
            })?;
            let got = dst.read_page(NSID_NUM, w.offset, lba)?;
            ensure(got == w.data, || {
                format!(
                    "the write at {} does not read back on the destination",
                    w.offset
                )
            })?;
            self.written.push(w);
        }
        self.active = d;
        Ok(downtime)
    }

    /// One whole migration to the other VF; returns its downtime.
    pub(crate) fn migrate(&mut self) -> Result<Duration, String> {
        let p = self.prepare()?;
        Ok(self.switch_over(p)?.len())
    }
}

/// fio verify in a loop on one disk until told to stop: every run must pass.
struct FioLoop {
    disk: String,
    offset: u64,
}

impl FioLoop {
    /// Runs the job again and again until `stop`; returns how many runs passed. A run that
    /// takes longer than [`FIO_RUN`] is stopped and fails.
    fn run(&self, stop: &AtomicBool) -> Result<u32, String> {
        let mut args = LOOP_VERIFY.args(&self.disk, false);
        args.push(format!("--offset={}", self.offset));
        let mut runs = 0;
        while !stop.load(Ordering::Relaxed) {
            let what = format!(
                "fio verify on {} at {} (run {})",
                self.disk,
                self.offset,
                runs + 1
            );
            let mut child = Command::new("fio")
                .args(&args)
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .spawn()
                .map_err(|e| format!("{what}: {e}"))?;
            let ended = wait_until(FIO_RUN, || !matches!(child.try_wait(), Ok(None)));
            if !ended {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!(
                    "{what}: still running after {} s",
                    FIO_RUN.as_secs()
                ));
            }
            let out = child
                .wait_with_output()
                .map_err(|e| format!("{what}: {e}"))?;
            ensure(out.status.success(), || {
                format!(
                    "{what}: {}: {}",
                    out.status,
                    String::from_utf8_lossy(&out.stderr).trim()
                )
            })?;
            runs += 1;
        }
        Ok(runs)
    }
}

/// Median, minimum and maximum in ms.
fn summary(v: &[Duration]) -> (f64, f64, f64) {
    let ms: Vec<f64> = v.iter().map(|d| d.as_secs_f64() * 1e3).collect();
    let (min, max) = ms
        .iter()
        .fold((f64::MAX, f64::MIN), |(lo, hi), &x| (lo.min(x), hi.max(x)));
    (median(&ms), min, max)
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// [`SINGLE`] migrations of the first pair alone (there and back), in this thread.
fn single(a: &Function, b: &Function) -> Result<Vec<Duration>, String> {
    let mut p = Pair::open(0, a, b)?;
    p.write_sync(2)?;
    let mut v = Vec::new();
    for _ in 0..SINGLE {
        v.push(p.migrate()?);
    }
    p.verify()?;
    Ok(v)
}

fn migrations_under_fio(env: &Env) -> Result<Vec<Report>, String> {
    with_many_vfs(env, 2 * PAIRS + BLOCK_VFS, |_pf, vfs| {
        let mark = kmsg::mark()?;
        let (pair_vfs, block_vfs) = vfs.split_at(2 * PAIRS);
        let mut disks = vec![(DISK.to_string(), 0u64)];
        for (vf, offset) in block_vfs.iter().zip(FIO_OFFSETS) {
            disks.push((wait_vf_disk(vf)?, offset));
        }
        for vf in pair_vfs {
            set_mode(vf, "vfio")?;
        }

        // The same migration alone, with the PF idle, then under the fio load.
        let (a, b) = (&pair_vfs[0], &pair_vfs[1]);
        let idle = single(a, b).map_err(|e| with_driver_log(mark, &[&a.bdf, &b.bdf], e))?;
        let stop = AtomicBool::new(false);
        let loops: Vec<FioLoop> = disks
            .iter()
            .map(|(disk, offset)| FioLoop {
                disk: disk.clone(),
                offset: *offset,
            })
            .collect();
        let loaded = Mutex::new(Vec::new());
        let concurrent: Mutex<Vec<(usize, usize, Downtime)>> = Mutex::new(Vec::new());
        // The 8 pairs at once: each round starts together, and every suspend waits for
        // every pair to be ready (PRE_COPY done), so that the downtimes overlap.
        let (ready, go) = (Barrier::new(PAIRS), Barrier::new(PAIRS));
        let (fio, pairs, window) = thread::scope(|s| {
            let fio: Vec<_> = loops.iter().map(|l| s.spawn(|| l.run(&stop))).collect();
            let result = (|| {
                // Every disk is busy before the migrations start.
                for (disk, _) in &disks {
                    let before = disk_ios(disk);
                    ensure(wait_until(SETTLE, || disk_ios(disk) > before), || {
                        format!("fio did no I/O on {disk}")
                    })?;
                }
                let v = single(a, b).map_err(|e| with_driver_log(mark, &[&a.bdf, &b.bdf], e))?;
                *loaded.lock().map_err(|_| "poisoned")? = v;
                Ok::<(), String>(())
            })();
            let started = Instant::now();
            let ios: Vec<u64> = disks.iter().map(|(d, _)| disk_ios(d)).collect();
            let pairs: Vec<_> = (0..PAIRS)
                .map(|k| {
                    let (ready, go, concurrent) = (&ready, &go, &concurrent);
                    let (a, b) = (&pair_vfs[2 * k], &pair_vfs[2 * k + 1]);
                    let skip = result.is_err();
                    s.spawn(move || {
                        // Every thread passes every barrier, failed or not.
                        let mut pair = if skip {
                            Err("not run: the single migrations failed".to_string())
                        } else {
                            Pair::open(k, a, b).map_err(|e| format!("pair {k}: {e}"))
                        };
                        for round in 0..ROUNDS {
                            ready.wait();
                            let prepared = pair.as_mut().map_err(|e| e.clone()).and_then(|p| {
                                p.write_sync(SYNC_PAGES)
                                    .and_then(|()| p.prepare())
                                    .map_err(|e| format!("{}: round {round}: {e}", p.name))
                            });
                            go.wait();
                            let moved = prepared.and_then(|prep| {
                                let p = pair.as_mut().map_err(|e| e.clone())?;
                                p.switch_over(prep)
                                    .map_err(|e| format!("{}: round {round}: {e}", p.name))
                            });
                            match moved {
                                Ok(d) => {
                                    if let Ok(mut v) = concurrent.lock() {
                                        v.push((k, round, d));
                                    }
                                }
                                Err(e) => {
                                    if pair.is_ok() {
                                        pair = Err(e);
                                    }
                                }
                            }
                        }
                        let mut p = pair?;
                        // Every page written before, during and between the migrations.
                        p.verify().map_err(|e| format!("{}: {e}", p.name))?;
                        let w = p.next_page(0xaf7e)?;
                        let lba = p.lba;
                        p.clients[p.active].write_page(NSID_NUM, w.offset, lba, &w.data)?;
                        p.written.push(w);
                        p.verify().map_err(|e| format!("{}: {e}", p.name))?;
                        Ok::<usize, String>(p.written.len())
                    })
                })
                .collect();
            let pairs: Vec<Result<usize, String>> = pairs
                .into_iter()
                .map(|t| {
                    t.join()
                        .unwrap_or_else(|_| Err("a pair's thread panicked".into()))
                })
                .collect();
            let window = started.elapsed();
            let busy: Vec<bool> = disks
                .iter()
                .zip(&ios)
                .map(|((d, _), before)| disk_ios(d) > *before)
                .collect();
            stop.store(true, Ordering::Relaxed);
            let fio: Vec<Result<u32, String>> = fio
                .into_iter()
                .map(|t| {
                    t.join()
                        .unwrap_or_else(|_| Err("a fio thread panicked".into()))
                })
                .collect();
            (fio, result.and(Ok(pairs)), (window, busy))
        });
        // Every failure counts, each with what the driver logged about it.
        let mut errors = Vec::new();
        match pairs {
            Ok(pairs) => {
                for (k, r) in pairs.into_iter().enumerate() {
                    let (a, b) = (&pair_vfs[2 * k].bdf, &pair_vfs[2 * k + 1].bdf);
                    if let Err(e) = r {
                        errors.push(with_driver_log(mark, &[a, b], e));
                    }
                }
            }
            Err(e) => errors.push(e),
        }
        let mut runs = Vec::new();
        for ((disk, _), r) in disks.iter().zip(fio) {
            match r {
                Ok(n) => runs.push(format!("{disk} {n}")),
                Err(e) => errors.push(e),
            }
        }
        let (window, busy) = window;
        for ((disk, _), busy) in disks.iter().zip(busy) {
            if !busy {
                errors.push(format!(
                    "no fio I/O on {disk} during the concurrent migrations"
                ));
            }
        }
        ensure(errors.is_empty(), || errors.join("; "))?;

        // The numbers: observations, not a bar.
        let loaded = loaded.into_inner().map_err(|_| "poisoned")?;
        let concurrent = concurrent.into_inner().map_err(|_| "poisoned")?;
        ensure(concurrent.len() == PAIRS * ROUNDS, || {
            format!("{} concurrent migrations measured", concurrent.len())
        })?;
        let (i50, imin, imax) = summary(&idle);
        let (l50, lmin, lmax) = summary(&loaded);
        println!(
            "# single migration, PF idle: downtime p50 {i50:.1} ms (min {imin:.1}, max \
             {imax:.1}, {SINGLE} samples)"
        );
        println!(
            "# single migration, under fio: downtime p50 {l50:.1} ms (min {lmin:.1}, max \
             {lmax:.1}, {SINGLE} samples)"
        );
        for round in 0..ROUNDS {
            let mut line: Vec<String> = concurrent
                .iter()
                .filter(|(_, r, _)| *r == round)
                .map(|(k, _, d)| format!("pair {k} {:.1}", ms(d.len())))
                .collect();
            line.sort();
            let windows: Vec<Downtime> = concurrent
                .iter()
                .filter(|(_, r, _)| *r == round)
                .map(|(_, _, d)| *d)
                .collect();
            let peak = peak_overlap(&windows);
            println!(
                "# {PAIRS} concurrent migrations under fio, round {round}: downtime ms: {}; \
                 at most {peak} downtimes at once",
                line.join(", ")
            );
            // Released together, the suspends must really have overlapped.
            ensure(peak >= 2, || {
                format!("round {round}: no two downtimes overlapped: {windows:?}")
            })?;
        }
        let all: Vec<Duration> = concurrent.iter().map(|(_, _, d)| d.len()).collect();
        let (c50, cmin, cmax) = summary(&all);
        println!(
            "# {PAIRS} concurrent migrations under fio: downtime p50 {c50:.1} ms (min {cmin:.1}, \
             max {cmax:.1}, {} samples): p50 {:.1}x the single one idle, {:.1}x under fio; \
             max {:.1}x the single one idle",
            all.len(),
            c50 / i50.max(1e-3),
            c50 / l50.max(1e-3),
            cmax / i50.max(1e-3),
        );
        println!(
            "# concurrent phase {:.1} s; fio runs passed: {}",
            window.as_secs_f64(),
            runs.join(", ")
        );

        // The driver loaded every state and logged no failure.
        let log = kmsg::since(mark)?;
        let loaded_states = log
            .iter()
            .filter(|l| l.contains("controller state loaded"))
            .count();
        let want = 2 * SINGLE + PAIRS * ROUNDS;
        ensure(loaded_states == want, || {
            format!("{loaded_states} controller states loaded, want {want}")
        })?;
        let failed: Vec<&String> = log
            .iter()
            .filter(|l| l.contains("rnvme") && is_failure(l))
            .collect();
        ensure(failed.is_empty(), || {
            format!("the driver logged failures: {failed:?}")
        })?;
        no_problems_since(mark)
    })
}

fn mode_switches(env: &Env) -> Result<Vec<Report>, String> {
    with_many_vfs(env, SWITCH_VFS, |_pf, vfs| {
        let mark = kmsg::mark()?;
        // What block mode writes on each VF's disk, in the VF's own region.
        let block_page = |i: usize| (i as u64 * REGION, pattern(64 << 10, 0xb10c + i as u64));
        let vfio_page = |i: usize| {
            (
                i as u64 * REGION + (1 << 20),
                pattern(4096, 0xf10 + i as u64),
            )
        };
        for (i, vf) in vfs.iter().enumerate() {
            let disk = wait_vf_disk(vf)?;
            let (at, data) = block_page(i);
            Direct::open_path(&disk)?.write_at(at, &data)?;
        }

        let to_vfio = switch_all(vfs, "vfio")?;
        for vf in vfs {
            check_mode(vf, "vfio")?;
            ensure(vf_disk(vf, NSID).is_none(), || {
                format!("{}: the disk is still there in vfio mode", vf.bdf)
            })?;
        }
        // Each VF's userspace driver at once: the block-mode data reads back, a page of
        // its own is written.
        let go = Barrier::new(vfs.len());
        let results: Vec<Result<(), String>> = thread::scope(|s| {
            let threads: Vec<_> = vfs
                .iter()
                .enumerate()
                .map(|(i, vf)| {
                    let go = &go;
                    s.spawn(move || {
                        go.wait();
                        (|| {
                            let mut c =
                                Client::open(&vf.bdf, Path::Container).map_err(String::from)?;
                            c.create_io_queue()?;
                            let lba = c.lba_size(NSID_NUM)?;
                            let (at, data) = block_page(i);
                            for page in 0..data.len() / 4096 {
                                let off = at + page as u64 * 4096;
                                let got = c.read_page(NSID_NUM, off, lba)?;
                                ensure(got == data[page * 4096..(page + 1) * 4096], || {
                                    format!("block-mode data at {off} differs in vfio mode")
                                })?;
                            }
                            let (at, data) = vfio_page(i);
                            c.write_page(NSID_NUM, at, lba, &data)
                        })()
                        .map_err(|e: String| format!("{}: {e}", vf.bdf))
                    })
                })
                .collect();
            threads
                .into_iter()
                .map(|t| t.join().unwrap_or_else(|_| Err("a thread panicked".into())))
                .collect()
        });
        for r in results {
            r?;
        }

        let to_nvme = switch_all(vfs, "nvme")?;
        for (i, vf) in vfs.iter().enumerate() {
            check_mode(vf, "nvme")?;
            let disk = wait_vf_disk(vf)?;
            let mut d = Direct::open_path(&disk)?;
            for (at, data) in [block_page(i), vfio_page(i)] {
                ensure(d.read_at(at, data.len())? == data, || {
                    format!(
                        "{}: the data at {at} does not read back in block mode",
                        vf.bdf
                    )
                })?;
            }
        }
        println!(
            "# {SWITCH_VFS} VFs switched at once: to vfio in {:.1} s, back to nvme in {:.1} s",
            to_vfio.as_secs_f64(),
            to_nvme.as_secs_f64()
        );
        let log = kmsg::since(mark)?;
        for mode in ["vfio", "nvme"] {
            let n = log
                .iter()
                .filter(|l| l.contains(&format!("switched to {mode} mode")))
                .count();
            ensure(n == SWITCH_VFS, || {
                format!("{n} VFs logged a switch to {mode} mode, want {SWITCH_VFS}")
            })?;
        }
        ensure(!log.iter().any(|l| l.contains("mode failed")), || {
            format!("a switch failed: {log:?}")
        })?;
        no_problems_since(mark)
    })
}

/// Writes `mode` to every VF's `mode` at once (one thread each, released together);
/// returns how long until the last write returned. Every write must succeed.
fn switch_all(vfs: &[Function], mode: &str) -> Result<Duration, String> {
    let go = Barrier::new(vfs.len() + 1);
    let (results, took) = thread::scope(|s| {
        let threads: Vec<_> = vfs
            .iter()
            .map(|vf| {
                let go = &go;
                s.spawn(move || {
                    go.wait();
                    set_mode(vf, mode)
                })
            })
            .collect();
        go.wait();
        let t0 = Instant::now();
        let results: Vec<Result<(), String>> = threads
            .into_iter()
            .map(|t| t.join().unwrap_or_else(|_| Err("a thread panicked".into())))
            .collect();
        (results, t0.elapsed())
    });
    for r in results {
        r?;
    }
    Ok(took)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overlaps() {
        let t = Instant::now();
        let w = |a: u64, b: u64| Downtime {
            from: t + Duration::from_millis(a),
            to: t + Duration::from_millis(b),
        };
        assert_eq!(peak_overlap(&[]), 0);
        assert_eq!(peak_overlap(&[w(0, 10)]), 1);
        assert_eq!(peak_overlap(&[w(0, 10), w(10, 20)]), 1);
        assert_eq!(peak_overlap(&[w(0, 10), w(5, 20), w(6, 7)]), 3);
        assert_eq!(peak_overlap(&[w(0, 10), w(5, 20), w(11, 30)]), 2);
    }
}
