// SPDX-License-Identifier: GPL-2.0

//! VFIO live migration of VFs (`Documentation/migration.rst`), through the VFIO migration
//! uAPI as a VMM uses it (`crate::vfio_migration`), with the userspace NVMe driver over
//! VFIO (`crate::vfio_client`) on two VFs in one container: one DMA mapping with the same
//! IOVAs for both, as a guest's memory is the same on the source and the destination.
//!
//! * the VFs advertise `STOP_COPY | P2P | PRE_COPY`;
//! * I/O running on VF 1, including commands queued while the source is suspended, moves
//!   to VF 2 and completes there, all data verified, then back and forth again;
//! * every arc the VFIO core composes, from every state to every state;
//! * PRE_COPY reads end with `ENOMSG`, `VFIO_MIG_GET_PRECOPY_INFO` and the data size;
//! * malformed and incompatible streams are refused with the right errors, leaving the
//!   destination resettable, and a reset ends a migration at any point.

use std::{
    fs::File,
    io::{Read, Write},
    thread,
    time::Duration,
};

use crate::fixture::{set_mode, with_loaded};
use crate::{
    disk::pattern,
    harness::{ensure, Env, Report, Test},
    kmsg, module,
    pci::Function,
    sriov::{scid_of, set_numvfs, vfs, CHARDEV},
    vfio_client::{Client, Path, Q, QDEPTH},
    vfio_migration::{
        self as mig, data_size, flags, precopy_info, read_all, set_state, set_state_raw, state,
        write_all, ReadEnd, State,
    },
};

/// The shared namespace both VFs of a pair are attached to.
pub(crate) const NSID: &str = "2";
pub(crate) const NSID_NUM: u32 = 2;

/// Bytes of the compatibility section of a VF with one namespace (header, fixed part,
/// one namespace entry; `Documentation/migration-stream.rst`).
const COMPAT_SECTION: u64 = 16 + 96 + 40;

/// How long a suspended controller must show no completion.
const QUIET: Duration = Duration::from_millis(500);
/// How long commands may take once a controller runs.
const COMPLETE: Duration = Duration::from_secs(10);

/// The migration tests.
pub fn tests() -> Vec<Test> {
    vec![
        Test {
            name: "migration/capabilities",
            groups: &["migration"],
            run: capabilities,
        },
        Test {
            name: "migration/live-io-moves-back-and-forth",
            groups: &["migration"],
            run: live_io_back_and_forth,
        },
        Test {
            name: "migration/every-arc",
            groups: &["migration"],
            run: every_arc,
        },
        Test {
            name: "migration/malformed-streams",
            groups: &["migration"],
            run: malformed_streams,
        },
        Test {
            name: "migration/reset-and-close-end-a-migration",
            groups: &["migration"],
            run: reset_and_close,
        },
        Test {
            name: "migration/pf-reset-is-error-until-device-reset",
            groups: &["migration"],
            run: pf_reset_is_error,
        },
    ]
}

/// Runs `f` with the module loaded and two VFs enabled, the shared namespace attached to
/// both secondary controllers; afterwards puts both back in block mode, detaches and
/// disables them.
pub(crate) fn with_vf_pair(
    env: &Env,
    f: impl FnOnce(&Function, &Function, &Function) -> Result<(), String>,
) -> Result<Vec<Report>, String> {
    with_vf_pair_params(env, &[], f)
}

/// [`with_vf_pair`] with module parameters `params` (name, value) set before the VFs are
/// enabled.
pub(crate) fn with_vf_pair_params(
    env: &Env,
    params: &[(&str, &str)],
    f: impl FnOnce(&Function, &Function, &Function) -> Result<(), String>,
) -> Result<Vec<Report>, String> {
    with_loaded(env, |pf| {
        for (name, value) in params {
            let p = format!("/sys/module/rnvme/parameters/{name}");
            std::fs::write(&p, value).map_err(|e| format!("{p} <- {value}: {e}"))?;
        }
        set_numvfs(pf, 2)?;
        let vfs = vfs(pf)?;
        ensure(vfs.len() == 2, || format!("{} VFs, want 2", vfs.len()))?;
        let controllers = format!("{},{}", scid_of(1)?, scid_of(2)?);
        module::run(
            "nvme",
            &["attach-ns", CHARDEV, "-n", NSID, "-c", &controllers],
        )?;
        let result = f(pf, &vfs[0], &vfs[1]);
        for vf in &vfs {
            let _ = set_mode(vf, "nvme");
        }
        module::run(
            "nvme",
            &["detach-ns", CHARDEV, "-n", NSID, "-c", &controllers],
        )?;
        result.and(set_numvfs(pf, 0))
    })
}

/// Both VFs in vfio mode, opened in one container, the first with an I/O queue.
pub(crate) fn open_pair(vf1: &Function, vf2: &Function) -> Result<(Client, Client), String> {
    set_mode(vf1, "vfio")?;
    set_mode(vf2, "vfio")?;
    let mut clients =
        Client::open_many(&[&vf1.bdf, &vf2.bdf], Path::Container).map_err(String::from)?;
    let b = clients.pop().ok_or("no client for VF 2")?;
    let mut a = clients.pop().ok_or("no client for VF 1")?;
    a.create_io_queue()?;
    Ok((a, b))
}

/// Checks `c`'s migration state.
fn expect_state(c: &Client, want: State, when: &str) -> Result<(), String> {
    let got = state(c).map_err(|e| format!("{when}: get state: {e}"))?;
    ensure(got == want, || {
        format!("{when}: state {got:?}, want {want:?}")
    })
}

/// Moves `c` to `to`, which must open a data fd exactly if `fd`.
fn step(c: &Client, to: State, fd: bool) -> Result<Option<File>, String> {
    let f = set_state(c, to).map_err(|e| format!("set state {to:?}: {e}"))?;
    ensure(f.is_some() == fd, || {
        format!("set state {to:?}: data fd {}, want {}", f.is_some(), fd)
    })?;
    expect_state(c, to, &format!("after {to:?}"))?;
    Ok(f)
}

fn errno(e: &std::io::Error) -> Option<i32> {
    e.raw_os_error()
}

fn capabilities(env: &Env) -> Result<Vec<Report>, String> {
    with_vf_pair(env, |_pf, vf1, vf2| {
        let mark = kmsg::mark()?;
        let (a, b) = open_pair(vf1, vf2)?;
        for (c, vf) in [(&a, vf1), (&b, vf2)] {
            let f = flags(c).map_err(|e| format!("{}: migration flags: {e}", vf.bdf))?;
            ensure(f == mig::STOP_COPY | mig::P2P | mig::PRE_COPY, || {
                format!(
                    "{}: migration flags {f:#x}, want STOP_COPY|P2P|PRE_COPY",
                    vf.bdf
                )
            })?;
            mig::probe(c).map_err(|e| format!("{}: probe: {e}", vf.bdf))?;
            expect_state(c, State::Running, "after open")?;
            let n = data_size(c).map_err(|e| format!("data size: {e}"))?;
            ensure(n > 0 && n < 64 * 1024, || {
                format!("data size {n} in RUNNING")
            })?;
        }
        // Values that are not states, and ERROR, are refused and change nothing.
        for bad in [0u32, 8, 9, u32::MAX] {
            let r = set_state_raw(&a, bad);
            ensure(
                r.as_ref().err().and_then(errno) == Some(libc::EINVAL),
                || format!("set state {bad}: {:?}, want EINVAL", r.map(|f| f.is_some())),
            )?;
        }
        expect_state(&a, State::Running, "after refused states")?;
        let log = kmsg::since(mark)?;
        for vf in [vf1, vf2] {
            ensure(
                log.iter()
                    .any(|l| l.contains(&vf.bdf) && l.contains("vfio mode, live migration")),
                || format!("no 'vfio mode, live migration' logged for {}", vf.bdf),
            )?;
        }
        Ok(())
    })
}

/// A write in flight: its command ID and the page of the namespace it writes.
struct Pending {
    cid: u16,
    lba_page: u64,
    data: Vec<u8>,
}

/// Queues a write of `data` (one page) to page `lba_page` of the namespace on `c`'s I/O
/// queue from data page `slot`, without ringing the doorbell.
fn queue_write(
    c: &mut Client,
    lba: usize,
    lba_page: u64,
    slot: usize,
    data: Vec<u8>,
) -> Result<Pending, String> {
    c.set_page(slot, &data);
    let sqe = c.rw_sqe(0x01, NSID_NUM, lba_page * 4096, lba, slot);
    let cid = c.push(Q::Io, sqe)?;
    Ok(Pending {
        cid,
        lba_page,
        data,
    })
}

/// What one migration measured.
pub(crate) struct Moved {
    /// Writes that completed on the source before it stopped.
    pub(crate) on_source: usize,
    /// Writes that completed on the destination.
    pub(crate) on_destination: usize,
    /// The stream's size.
    pub(crate) stream: usize,
    /// Of it, the compatibility section (PRE_COPY).
    pub(crate) precopy: usize,
}

/// Migrates the running controller of `src` (whose client drives the queues) to `dst`
/// (RUNNING or STOP), with `before` writes in flight when the source suspends and `during`
/// queued while it is suspended; `dst` drives the queues afterwards. Checks every step.
pub(crate) fn migrate(
    src: &mut Client,
    dst: &mut Client,
    lba: usize,
    first_page: u64,
    before: usize,
    during: usize,
) -> Result<Moved, String> {
    // PRE_COPY: the compatibility section, then a temporary end.
    let mut out = step(src, State::PreCopy, true)?.ok_or("no saving fd")?;
    let (initial, dirty) = precopy_info(&out).map_err(|e| format!("precopy info: {e}"))?;
    ensure((initial, dirty) == (COMPAT_SECTION, 0), || {
        format!("precopy info ({initial}, {dirty}), want ({COMPAT_SECTION}, 0)")
    })?;
    let (compat, end) = read_all(&mut out, 100).map_err(|e| format!("PRE_COPY read: {e}"))?;
    ensure(
        end == ReadEnd::Temporary && compat.len() as u64 == COMPAT_SECTION,
        || format!("PRE_COPY read {} bytes ending {end:?}", compat.len()),
    )?;
    ensure(
        precopy_info(&out).map_err(|e| e.to_string())? == (0, 0),
        || "precopy info after reading the compatibility section".into(),
    )?;

    // The destination takes the compatibility section while the source still runs.
    let mut into = step(dst, State::Resuming, true)?.ok_or("no resuming fd")?;
    write_all(&mut into, &compat, 7)
        .map_err(|e| format!("writing the compatibility section: {e}"))?;

    // Writes in flight, then the source stops (PRE_COPY_P2P: suspended), then more writes
    // are queued on the suspended controller.
    let mut pending = Vec::new();
    for i in 0..before {
        let page = first_page + i as u64;
        pending.push(queue_write(
            src,
            lba,
            page,
            i,
            pattern(4096, page ^ 0x5a5a),
        )?);
    }
    src.ring_sq(Q::Io)?;
    step(src, State::PreCopyP2p, false)?;
    for i in 0..during {
        let page = first_page + (before + i) as u64;
        pending.push(queue_write(
            src,
            lba,
            page,
            before + i,
            pattern(4096, page ^ 0xa5a5),
        )?);
    }
    src.ring_sq(Q::Io)?;
    // Commands fetched before the suspend completed before it; nothing completes after.
    let mut done = Vec::new();
    while let Some(c) = src.reap(Q::Io, Duration::ZERO)? {
        done.push(c);
    }
    thread::sleep(QUIET);
    let late = src.reap(Q::Io, Duration::ZERO)?;
    ensure(late.is_none(), || {
        format!("a completion while suspended: {late:?}")
    })?;
    ensure(done.len() <= before, || {
        format!(
            "{} completions, but only {before} commands were fetchable",
            done.len()
        )
    })?;
    // The exact size of what STOP_COPY yields, from the suspended controller's state.
    let expected = data_size(src).map_err(|e| format!("data size: {e}"))?;

    // STOP_COPY: the rest of the stream on the same fd, then the end.
    step(src, State::StopCopy, false)?;
    let (rest, end) = read_all(&mut out, 4096).map_err(|e| format!("STOP_COPY read: {e}"))?;
    ensure(end == ReadEnd::End, || {
        format!("STOP_COPY read ended {end:?}")
    })?;
    ensure(rest.len() as u64 == expected, || {
        format!(
            "STOP_COPY yielded {} bytes, the data size said {expected}",
            rest.len()
        )
    })?;
    let pi = precopy_info(&out);
    ensure(
        pi.as_ref().err().and_then(errno) == Some(libc::EINVAL),
        || format!("precopy info in STOP_COPY: {pi:?}, want EINVAL"),
    )?;

    write_all(&mut into, &rest, 1000).map_err(|e| format!("writing the controller state: {e}"))?;
    step(dst, State::Stop, false)?;
    step(dst, State::Running, false)?;
    drop(into);
    // The source is done: its fd closes with the saving states.
    step(src, State::Stop, false)?;
    let mut buf = [0u8; 8];
    let r = out.read(&mut buf);
    ensure(
        r.as_ref().err().and_then(errno) == Some(libc::ENODEV),
        || format!("reading the saving fd after STOP: {r:?}, want ENODEV"),
    )?;

    // The destination drives the queues now; what was queued completes there.
    dst.adopt_queues(src);
    let on_source = done.len();
    while done.len() < pending.len() {
        let c = dst
            .reap(Q::Io, COMPLETE)?
            .ok_or_else(|| format!("{} of {} writes completed", done.len(), pending.len()))?;
        done.push(c);
    }
    for p in &pending {
        let c = done
            .iter()
            .find(|c| c.cid == p.cid)
            .ok_or_else(|| format!("no completion for command {}", p.cid))?;
        ensure(c.status == 0, || {
            format!("write {} completed with {:#x}", p.cid, c.status)
        })?;
    }
    for p in &pending {
        let got = dst.read_page(NSID_NUM, p.lba_page * 4096, lba)?;
        ensure(got == p.data, || {
            format!("page {} does not read back on the destination", p.lba_page)
        })?;
    }
    Ok(Moved {
        on_source,
        on_destination: pending.len() - on_source,
        stream: compat.len() + rest.len(),
        precopy: compat.len(),
    })
}

fn live_io_back_and_forth(env: &Env) -> Result<Vec<Report>, String> {
    with_vf_pair(env, |_pf, vf1, vf2| {
        let mark = kmsg::mark()?;
        let (mut a, mut b) = open_pair(vf1, vf2)?;
        let lba = a.lba_size(NSID_NUM)?;
        // Data written before the first migration must survive all of them.
        let base = pattern(4096, 0xba5e);
        a.write_page(NSID_NUM, 0, lba, &base)?;
        let (before, during) = (4, 4);
        ensure(before + during < usize::from(QDEPTH), || {
            "queue too small".into()
        })?;
        let mut total_dst = 0;
        for round in 0..4u64 {
            let first = 16 + round * 16;
            let (src, dst) = if round % 2 == 0 {
                (&mut a, &mut b)
            } else {
                (&mut b, &mut a)
            };
            let m = migrate(src, dst, lba, first, before, during)?;
            total_dst += m.on_destination;
            println!(
                "# round {round}: {} writes completed on the source, {} on the destination, \
                 stream {} bytes",
                m.on_source, m.on_destination, m.stream
            );
            ensure(m.on_destination >= during, || {
                "the writes queued while suspended did not complete on the destination".into()
            })?;
            let got = dst.read_page(NSID_NUM, 0, lba)?;
            ensure(got == base, || {
                format!("round {round}: the first page changed")
            })?;
        }
        ensure(total_dst >= 16, || format!("{total_dst} writes moved"))?;
        let log = kmsg::since(mark)?;
        let loaded = log
            .iter()
            .filter(|l| l.contains("controller state loaded"))
            .count();
        ensure(loaded == 4, || {
            format!("{loaded} states loaded, want 4: {log:?}")
        })
    })
}

/// Where a walk from RUNNING (after a reset) to `s` goes: the states requested in order.
fn walk_to(s: State) -> &'static [State] {
    match s {
        State::Running | State::Error => &[],
        State::RunningP2p => &[State::RunningP2p],
        State::Stop => &[State::Stop],
        State::StopCopy => &[State::StopCopy],
        State::Resuming => &[State::Resuming],
        State::PreCopy => &[State::PreCopy],
        State::PreCopyP2p => &[State::PreCopyP2p],
    }
}

/// Whether moving from `from` to `to` hands out a new data fd.
fn opens_fd(from: State, to: State) -> bool {
    let saving = |s| matches!(s, State::PreCopy | State::PreCopyP2p | State::StopCopy);
    match to {
        State::Resuming => true,
        State::PreCopy | State::PreCopyP2p | State::StopCopy => !saving(from),
        _ => false,
    }
}

fn every_arc(env: &Env) -> Result<Vec<Report>, String> {
    with_vf_pair(env, |_pf, vf1, vf2| {
        let (mut a, _b) = open_pair(vf1, vf2)?;
        // A stream of VF 1's own, to resume from.
        let mut f = step(&a, State::StopCopy, true)?.ok_or("no fd")?;
        let (stream, _) = read_all(&mut f, 65536).map_err(|e| format!("read: {e}"))?;
        drop(f);
        let mut tried = 0;
        for from in mig::STATES.into_iter().filter(|s| *s != State::Error) {
            for to in mig::STATES.into_iter().filter(|s| *s != from) {
                a.reset_device()?;
                expect_state(&a, State::Running, "after VFIO_DEVICE_RESET")?;
                let mut keep = None;
                for s in walk_to(from) {
                    keep = set_state(&a, *s).map_err(|e| format!("walk to {from:?}: {e}"))?;
                }
                if from == State::Resuming {
                    let fd = keep.as_mut().ok_or("no resuming fd")?;
                    write_all(fd, &stream, 4096).map_err(|e| format!("resuming write: {e}"))?;
                }
                let allowed = to != State::Error
                    && !(from == State::StopCopy
                        && matches!(to, State::PreCopy | State::PreCopyP2p));
                let r = set_state(&a, to);
                tried += 1;
                match (r, allowed) {
                    (Ok(fd), true) => {
                        ensure(fd.is_some() == opens_fd(from, to), || {
                            format!("{from:?} -> {to:?}: data fd {}", fd.is_some())
                        })?;
                        expect_state(&a, to, &format!("{from:?} -> {to:?}"))?;
                    }
                    (Err(e), false) => {
                        ensure(errno(&e) == Some(libc::EINVAL), || {
                            format!("{from:?} -> {to:?}: {e}, want EINVAL")
                        })?;
                        expect_state(&a, from, &format!("refused {from:?} -> {to:?}"))?;
                    }
                    (r, _) => {
                        return Err(format!(
                            "{from:?} -> {to:?}: {:?}, want {}",
                            r.map(|f| f.is_some()),
                            if allowed { "success" } else { "EINVAL" }
                        ))
                    }
                }
            }
        }
        println!("# {tried} state changes from every state to every state");
        // The controller still works after all of it.
        a.reset_device()?;
        a.reenable()?;
        a.create_io_queue()?;
        let lba = a.lba_size(NSID_NUM)?;
        let p = pattern(4096, 0xa4c);
        a.write_page(NSID_NUM, 4096 * 100, lba, &p)?;
        ensure(a.read_page(NSID_NUM, 4096 * 100, lba)? == p, || {
            "I/O after the arcs does not read back".into()
        })
    })
}

/// A stream from `c` (suspended and read out), and the VF back in RUNNING after a reset.
fn capture(c: &mut Client) -> Result<Vec<u8>, String> {
    let mut f = step(c, State::StopCopy, true)?.ok_or("no fd")?;
    let (stream, end) = read_all(&mut f, 65536).map_err(|e| format!("read: {e}"))?;
    ensure(end == ReadEnd::End, || "the stream did not end".into())?;
    drop(f);
    c.reset_device()?;
    Ok(stream)
}

/// Fixes the CRC of every complete section of `s` (after a deliberate change inside one).
fn fix_crcs(s: &mut [u8]) {
    let mut at = 0;
    while at + 16 <= s.len() {
        let len = u32::from_le_bytes([s[at + 8], s[at + 9], s[at + 10], s[at + 11]]) as usize;
        let Some(end) = (at + 16).checked_add(len).filter(|e| *e <= s.len()) else {
            return;
        };
        let crc = crc32c(&[&s[at..at + 12], &s[at + 16..end]]);
        s[at + 12..at + 16].copy_from_slice(&crc.to_le_bytes());
        at = end;
    }
}

/// CRC-32C of `parts` in order, bit by bit (the tests' own, independent of the driver's
/// table).
fn crc32c(parts: &[&[u8]]) -> u32 {
    let mut crc = !0u32;
    for b in parts.iter().flat_map(|p| p.iter()) {
        crc ^= u32::from(*b);
        for _ in 0..8 {
            crc = if crc & 1 != 0 {
                (crc >> 1) ^ 0x82f6_3b78
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

/// What a malformed stream must get.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Refused {
    /// A write fails with this errno.
    AtWrite(i32),
    /// Every write succeeds; RESUMING -> STOP fails with this errno.
    AtStop(i32),
}

/// Offers `stream` to `c` (reset to RUNNING, then RESUMING) in writes of `chunk` bytes;
/// returns how it was refused, or `None` if it was loaded.
fn offer(c: &mut Client, stream: &[u8], chunk: usize) -> Result<Option<Refused>, String> {
    c.reset_device()?;
    let mut fd = step(c, State::Resuming, true)?.ok_or("no fd")?;
    for piece in stream.chunks(chunk.max(1)) {
        if let Err(e) = fd.write_all(piece) {
            let n = errno(&e).ok_or_else(|| format!("write: {e}"))?;
            // A refused stream refuses every further write.
            let again = fd.write(&[0]);
            ensure(
                again.as_ref().err().and_then(errno) == Some(libc::EINVAL),
                || format!("a write after a refusal: {again:?}"),
            )?;
            expect_state(c, State::Resuming, "after a refused write")?;
            return Ok(Some(Refused::AtWrite(n)));
        }
    }
    match set_state(c, State::Stop) {
        Ok(_) => Ok(None),
        Err(e) => {
            expect_state(c, State::Resuming, "after a refused load")?;
            Ok(Some(Refused::AtStop(errno(&e).unwrap_or(0))))
        }
    }
}

/// The destination VF of the malformed-stream campaign, and how many streams it was
/// offered.
struct Destination<'a> {
    c: &'a mut Client,
    tried: u32,
}

impl Destination<'_> {
    fn offer(&mut self, stream: &[u8], chunk: usize) -> Result<Option<Refused>, String> {
        self.tried += 1;
        offer(self.c, stream, chunk)
    }

    /// Offers `stream` and checks it was refused as `want` says (`None`: loaded).
    fn check(
        &mut self,
        name: &str,
        stream: &[u8],
        chunk: usize,
        want: Option<Refused>,
    ) -> Result<(), String> {
        let got = self.offer(stream, chunk)?;
        ensure(got == want, || format!("{name}: {got:?}, want {want:?}"))
    }
}

/// Offsets in a captured stream (one namespace): where each field of the framing, the
/// compatibility section, the state payload's prefix, the TP4159 header and the first
/// queue entries begins.
fn field_boundaries(stream: &[u8]) -> Vec<usize> {
    let mut v = Vec::new();
    let header = [0, 4, 6, 8, 12];
    let compat = [
        0, 2, 4, 6, 8, 10, 12, 13, 14, 16, 24, 28, 30, 32, 34, 36, 76, 78, 79, 80, 96,
    ];
    let ns = [0, 4, 5, 6, 8, 16, 32];
    v.extend(header);
    v.extend(compat.iter().map(|o| 16 + o));
    v.extend(ns.iter().map(|o| 16 + 96 + o));
    let st = COMPAT_SECTION as usize;
    v.extend(header.iter().map(|o| st + o));
    let payload = st + 16;
    v.extend([0, 2, 3, 4, 20].iter().map(|o| payload + o));
    let tp = payload + 20;
    v.extend([0, 2, 3, 16, 32, 48, 50, 52, 54, 56].iter().map(|o| tp + o));
    v.extend((0..4).map(|q| tp + 56 + 24 * q));
    let end = stream.len() - 16;
    v.extend(header.iter().map(|o| end + o));
    v.retain(|o| *o < stream.len());
    v.sort_unstable();
    v.dedup();
    v
}

fn malformed_streams(env: &Env) -> Result<Vec<Report>, String> {
    with_vf_pair(env, |_pf, vf1, vf2| {
        let mark = kmsg::mark()?;
        let (mut a, mut b) = open_pair(vf1, vf2)?;
        let good = capture(&mut a)?;
        let mut d = Destination {
            c: &mut b,
            tried: 0,
        };
        // The untouched stream loads, however it is split.
        for chunk in [1, 16, 100, 65536] {
            d.check("the good stream", &good, chunk, None)?;
        }
        // Truncated at every field boundary: incomplete at RESUMING -> STOP.
        for cut in field_boundaries(&good) {
            d.check(
                &format!("truncated at {cut}"),
                &good[..cut],
                4096,
                Some(Refused::AtStop(libc::EINVAL)),
            )?;
        }
        d.check("empty", &[], 4096, Some(Refused::AtStop(libc::EINVAL)))?;
        // Framing: magic, version, kind, checksum of each section.
        let st = COMPAT_SECTION as usize;
        for (name, at, value) in [
            ("magic", 0, b'X'),
            ("version", 4, 2),
            ("kind", 6, 3),
            ("second magic", st, b'x'),
            ("second kind", st + 6, 1),
        ] {
            let mut s = good.clone();
            s[at] = value;
            d.check(name, &s, 4096, Some(Refused::AtWrite(libc::EINVAL)))?;
        }
        for at in [12, 20, 100, st + 12, st + 40, good.len() - 4] {
            let mut s = good.clone();
            s[at] ^= 0x40;
            d.check(
                &format!("bit flip at {at}"),
                &s,
                4096,
                Some(Refused::AtWrite(libc::EINVAL)),
            )?;
        }
        // A length that no section may have.
        let mut s = good.clone();
        s[8..12].copy_from_slice(&u32::MAX.to_le_bytes());
        d.check(
            "huge length",
            &s,
            4096,
            Some(Refused::AtWrite(libc::EINVAL)),
        )?;
        // Bytes after the end.
        let mut s = good.clone();
        s.push(0);
        d.check(
            "trailing byte",
            &s,
            4096,
            Some(Refused::AtWrite(libc::EINVAL)),
        )?;
        // An incompatible source: other queue resources, namespace size, model, CAP.
        for (name, at) in [
            ("I/O queues", 16 + 28),
            ("vectors", 16 + 30),
            ("model", 16 + 36),
            ("CAP", 16 + 16),
            ("namespace size", 16 + 96 + 8),
            ("NGUID", 16 + 96 + 16),
        ] {
            let mut s = good.clone();
            s[at] ^= 0x01;
            fix_crcs(&mut s);
            d.check(
                &format!("incompatible {name}"),
                &s,
                4096,
                Some(Refused::AtWrite(libc::EOPNOTSUPP)),
            )?;
        }
        // A malformed compatibility section (reserved byte set).
        let mut s = good.clone();
        s[16 + 13] = 1;
        fix_crcs(&mut s);
        d.check(
            "compat reserved byte",
            &s,
            4096,
            Some(Refused::AtWrite(libc::EINVAL)),
        )?;
        // Impossible queue counts: NIOSQ beyond the VF's queues (sizes no longer add up), and
        // the state of a running controller.
        let tp = st + 16 + 20;
        let mut s = good.clone();
        s[tp + 48 + 2..tp + 48 + 4].copy_from_slice(&200u16.to_le_bytes());
        fix_crcs(&mut s);
        d.check("NIOSQ 200", &s, 4096, Some(Refused::AtStop(libc::EINVAL)))?;
        let mut s = good.clone();
        s[tp + 2] &= !1;
        fix_crcs(&mut s);
        d.check(
            "not suspended",
            &s,
            4096,
            Some(Refused::AtStop(libc::EINVAL)),
        )?;
        // The device refuses what only it can check: an unaligned queue address.
        let niosq = u16::from_le_bytes([s[tp + 50], s[tp + 51]]);
        ensure(niosq >= 1, || "the captured state has no I/O queue".into())?;
        let mut s = good.clone();
        s[tp + 56] |= 0x8;
        fix_crcs(&mut s);
        d.check(
            "unaligned SQ base",
            &s,
            4096,
            Some(Refused::AtStop(libc::EIO)),
        )?;
        // Random bytes, seeded.
        let mut seed = 0x1234_5678_9abc_def0u64;
        for n in [1usize, 15, 16, 17, 200, 5000] {
            let bytes: Vec<u8> = (0..n)
                .map(|_| {
                    seed ^= seed << 13;
                    seed ^= seed >> 7;
                    seed ^= seed << 17;
                    seed as u8
                })
                .collect();
            let got = d.offer(&bytes, 4096)?;
            ensure(
                matches!(
                    got,
                    Some(Refused::AtWrite(libc::EINVAL) | Refused::AtStop(libc::EINVAL))
                ),
                || format!("{n} random bytes: {got:?}"),
            )?;
        }
        // After all of that the destination takes the good stream and runs it.
        d.check("the good stream again", &good, 4096, None)?;
        step(d.c, State::Running, false)?;
        println!("# {} streams offered", d.tried);
        let log = kmsg::since(mark)?;
        ensure(
            log.iter().any(|l| l.contains("migration stream refused")),
            || "no refusal logged".into(),
        )?;
        ensure(
            log.iter()
                .any(|l| l.contains("incompatible migration source")),
            || "no incompatibility logged".into(),
        )
    })
}

fn reset_and_close(env: &Env) -> Result<Vec<Report>, String> {
    with_vf_pair(env, |_pf, vf1, vf2| {
        let (mut a, b) = open_pair(vf1, vf2)?;
        // A reset in STOP_COPY: RUNNING again, the fd closed.
        let mut f = step(&a, State::StopCopy, true)?.ok_or("no fd")?;
        a.reset_device()?;
        expect_state(&a, State::Running, "after a reset in STOP_COPY")?;
        let r = f.read(&mut [0u8; 16]);
        ensure(
            r.as_ref().err().and_then(errno) == Some(libc::ENODEV),
            || format!("reading after the reset: {r:?}, want ENODEV"),
        )?;
        // A reset in PRE_COPY: the precopy info goes too.
        let f = step(&a, State::PreCopy, true)?.ok_or("no fd")?;
        a.reset_device()?;
        let pi = precopy_info(&f);
        ensure(
            pi.as_ref().err().and_then(errno) == Some(libc::EINVAL),
            || format!("precopy info after the reset: {pi:?}"),
        )?;
        // Closing the device while suspended: opened again, it runs.
        step(&a, State::PreCopyP2p, true)?;
        drop(a);
        drop(b);
        let mut a = Client::open(&vf1.bdf, Path::Container).map_err(String::from)?;
        expect_state(&a, State::Running, "after closing and opening again")?;
        a.create_io_queue()?;
        let lba = a.lba_size(NSID_NUM)?;
        let p = pattern(4096, 0xc105e);
        a.write_page(NSID_NUM, 4096 * 200, lba, &p)?;
        ensure(a.read_page(NSID_NUM, 4096 * 200, lba)? == p, || {
            "the controller does not work after the close while suspended".into()
        })
    })
}

fn pf_reset_is_error(env: &Env) -> Result<Vec<Report>, String> {
    with_vf_pair(env, |_pf, vf1, vf2| {
        let mark = kmsg::mark()?;
        let (mut a, mut b) = open_pair(vf1, vf2)?;
        // VF 1 suspended, its state half read out; VF 2 running.
        let mut f = step(&a, State::StopCopy, true)?.ok_or("no fd")?;
        // A reset of the PF (nvme reset: a controller reset) takes every secondary
        // controller offline and brings it back empty.
        module::run("nvme", &["reset", CHARDEV])?;
        expect_state(&a, State::Error, "VF 1 after the PF reset")?;
        expect_state(&b, State::Running, "VF 2 after the PF reset")?;
        let r = f.read(&mut [0u8; 16]);
        ensure(
            r.as_ref().err().and_then(errno) == Some(libc::ENODEV),
            || format!("reading the saving fd after the PF reset: {r:?}, want ENODEV"),
        )?;
        // ERROR is left only by a reset of the function.
        for to in [State::Running, State::Stop, State::Resuming] {
            let r = set_state(&a, to);
            ensure(
                r.as_ref().err().and_then(errno) == Some(libc::EINVAL),
                || format!("ERROR -> {to:?}: {:?}, want EINVAL", r.map(|f| f.is_some())),
            )?;
        }
        expect_state(&a, State::Error, "after the refused changes")?;
        a.reset_device()?;
        expect_state(&a, State::Running, "after VFIO_DEVICE_RESET")?;
        // Both controllers start over and migrate again.
        a.reenable()?;
        a.create_io_queue()?;
        b.reset_device()?;
        b.reenable()?;
        let lba = a.lba_size(NSID_NUM)?;
        migrate(&mut a, &mut b, lba, 400, 2, 2)?;
        let log = kmsg::since(mark)?;
        ensure(
            log.iter()
                .any(|l| l.contains("the PF was reset during migration")),
            || "the ERROR was not logged".into(),
        )
    })
}
