// SPDX-License-Identifier: GPL-2.0

//! Migrations that do not finish.
//!
//! * Cancelled at every state a source can be in (RUNNING, PRE_COPY, PRE_COPY_P2P,
//!   RUNNING_P2P, STOP, STOP_COPY), reached the way QEMU walks them, with writes in flight
//!   and more queued while the controller is suspended, and the saving fd partly read:
//!   QEMU's `migrate_cancel` sets RUNNING straight away. The source then runs its own
//!   controller again: the saving fd is closed (`ENODEV`), every write completes on the
//!   source and reads back, and new I/O works. Afterwards the VF migrates successfully.
//! * The destination dies in RESUMING with the stream half written: once by closing the
//!   device fd with the data fd still open (a further write gets `ENODEV`), once by a
//!   process holding both being killed. The destination VF then opens in RUNNING and takes
//!   a new migration, which succeeds.

use std::{fs::File, io::Read, io::Write, time::Duration};

use crate::fixture::set_mode;
use crate::{
    disk::pattern,
    harness::{ensure, Env, Report, Test},
    kmsg,
    pci::Function,
    tests::{
        hardening::Campaign,
        migration::{migrate, open_pair, with_vf_pair},
    },
    vfio_client::{Client, Path, Q},
    vfio_migration::{read_all, set_state, state, write_all, ReadEnd, State},
};

/// The cancel and kill campaigns.
pub fn tests() -> Vec<Test> {
    vec![
        Test {
            name: "hardening/migration-cancel-at-every-state",
            groups: &["hardening", "migration"],
            run: cancel_at_every_state,
        },
        Test {
            name: "hardening/destination-killed-in-resuming",
            groups: &["hardening", "migration"],
            run: destination_killed,
        },
    ]
}

/// The namespace the pair shares.
const NSID: u32 = 2;
/// How long commands may take once a controller runs.
const COMPLETE: Duration = Duration::from_secs(10);

/// How a source reaches each state it can be cancelled in, as QEMU walks it: PRE_COPY
/// while the guest runs, then PRE_COPY_P2P and STOP_COPY when it stops; without pre-copy
/// RUNNING_P2P and STOP.
const WALKS: &[(State, &[State])] = &[
    (State::Running, &[]),
    (State::PreCopy, &[State::PreCopy]),
    (State::PreCopyP2p, &[State::PreCopy, State::PreCopyP2p]),
    (State::RunningP2p, &[State::RunningP2p]),
    (State::Stop, &[State::RunningP2p, State::Stop]),
    (
        State::StopCopy,
        &[State::PreCopy, State::PreCopyP2p, State::StopCopy],
    ),
];

fn suspended(s: State) -> bool {
    matches!(
        s,
        State::PreCopyP2p | State::RunningP2p | State::Stop | State::StopCopy
    )
}

/// A write queued on `c`'s I/O queue: its command ID, page and data.
struct Pending {
    cid: u16,
    page: u64,
    data: Vec<u8>,
}

/// Queues writes of pages `pages` (data pages `slot..`) and rings the doorbell.
fn queue_writes(
    c: &mut Client,
    lba: usize,
    pages: std::ops::Range<u64>,
    slot: usize,
) -> Result<Vec<Pending>, String> {
    let mut v = Vec::new();
    for (i, page) in pages.enumerate() {
        let data = pattern(4096, page ^ 0xca9c);
        c.set_page(slot + i, &data);
        let sqe = c.rw_sqe(0x01, NSID, page * 4096, lba, slot + i);
        let cid = c.push(Q::Io, sqe)?;
        v.push(Pending { cid, page, data });
    }
    c.ring_sq(Q::Io)?;
    Ok(v)
}

/// Reaps until every write of `pending` completed, checks their status and reads each back.
fn complete_and_check(c: &mut Client, lba: usize, pending: &[Pending]) -> Result<(), String> {
    let mut done = Vec::new();
    while done.len() < pending.len() {
        let cqe = c
            .reap(Q::Io, COMPLETE)?
            .ok_or_else(|| format!("{} of {} writes completed", done.len(), pending.len()))?;
        done.push(cqe);
    }
    for p in pending {
        let cqe = done
            .iter()
            .find(|c| c.cid == p.cid)
            .ok_or_else(|| format!("no completion for command {}", p.cid))?;
        ensure(cqe.status == 0, || {
            format!("write of page {} completed with {:#x}", p.page, cqe.status)
        })?;
    }
    for p in pending {
        ensure(c.read_page(NSID, p.page * 4096, lba)? == p.data, || {
            format!("page {} does not read back", p.page)
        })?;
    }
    Ok(())
}

fn errno(e: &std::io::Error) -> Option<i32> {
    e.raw_os_error()
}

fn cancel_at_every_state(env: &Env) -> Result<Vec<Report>, String> {
    with_vf_pair(env, |_pf, vf1, vf2| {
        let (mut a, mut b) = open_pair(vf1, vf2)?;
        let lba = a.lba_size(NSID)?;
        let mut c = Campaign::start("migration cancel")?;
        let mut in_flight = 0;
        for (k, (at, walk)) in WALKS.iter().enumerate() {
            let first = 200 + 16 * k as u64;
            // Writes in flight as the walk begins.
            let mut pending = queue_writes(&mut a, lba, first..first + 2, 0)?;
            let mut fd: Option<File> = None;
            for s in *walk {
                let r = set_state(&a, *s).map_err(|e| format!("{at:?}: walk to {s:?}: {e}"));
                c.count(&r);
                if let Some(f) = r? {
                    fd = Some(f);
                }
            }
            let st = state(&a).map_err(|e| e.to_string())?;
            ensure(st == *at, || format!("walked to {st:?}, want {at:?}"))?;
            if suspended(*at) {
                // More writes queued on the suspended controller.
                pending.extend(queue_writes(&mut a, lba, first + 2..first + 4, 2)?);
            }
            // Part of the stream read out: the compatibility section in PRE_COPY, a few
            // bytes of the controller state in STOP_COPY.
            if let Some(f) = fd.as_mut() {
                if *at == State::StopCopy {
                    let mut some = [0u8; 64];
                    let n = f
                        .read(&mut some)
                        .map_err(|e| format!("STOP_COPY read: {e}"))?;
                    ensure(n > 0, || "STOP_COPY read nothing".into())?;
                } else {
                    let (_, end) = read_all(f, 100).map_err(|e| format!("PRE_COPY read: {e}"))?;
                    ensure(end == ReadEnd::Temporary, || {
                        format!("PRE_COPY read ended {end:?}")
                    })?;
                }
            }
            // migrate_cancel: RUNNING, whatever the state.
            let r = set_state(&a, State::Running);
            c.count(&r);
            let got = r.map_err(|e| format!("{at:?} -> RUNNING: {e}"))?;
            ensure(got.is_none(), || {
                format!("{at:?} -> RUNNING opened a data fd")
            })?;
            let st = state(&a).map_err(|e| e.to_string())?;
            ensure(st == State::Running, || {
                format!("cancelled in {at:?}: state {st:?}")
            })?;
            if let Some(mut f) = fd {
                let r = f.read(&mut [0u8; 16]);
                ensure(
                    r.as_ref().err().and_then(errno) == Some(libc::ENODEV),
                    || format!("cancelled in {at:?}: the saving fd reads {r:?}, want ENODEV"),
                )?;
            }
            // The source's own I/O context works: what was queued completes, new I/O too.
            in_flight += pending.len();
            complete_and_check(&mut a, lba, &pending)
                .map_err(|e| format!("cancelled in {at:?}: {e}"))?;
            let fresh = pattern(4096, first);
            a.write_page(NSID, (first + 8) * 4096, lba, &fresh)?;
            ensure(a.read_page(NSID, (first + 8) * 4096, lba)? == fresh, || {
                format!("cancelled in {at:?}: new I/O does not read back")
            })?;
        }
        c.finish()?;
        println!(
            "# {} cancels, {in_flight} writes in flight completed on the source",
            WALKS.len()
        );
        // And the VF still migrates.
        let m = migrate(&mut a, &mut b, lba, 400, 2, 2)?;
        ensure(m.on_destination >= 2, || {
            "the migration after the cancels moved no write".into()
        })
    })
}

/// A full stream of `c`'s controller (cancelled afterwards: `c` runs on).
pub(crate) fn capture(c: &Client) -> Result<Vec<u8>, String> {
    let mut f = set_state(c, State::PreCopy)
        .map_err(|e| format!("PRE_COPY: {e}"))?
        .ok_or("no saving fd")?;
    let (mut s, _) = read_all(&mut f, 4096).map_err(|e| format!("PRE_COPY read: {e}"))?;
    set_state(c, State::StopCopy).map_err(|e| format!("STOP_COPY: {e}"))?;
    let (rest, end) = read_all(&mut f, 4096).map_err(|e| format!("STOP_COPY read: {e}"))?;
    ensure(end == ReadEnd::End, || "the stream did not end".into())?;
    s.extend_from_slice(&rest);
    set_state(c, State::Running).map_err(|e| format!("-> RUNNING: {e}"))?;
    Ok(s)
}

/// Opens the pair again and migrates VF 1 to VF 2 with writes in flight: the destination
/// must start in RUNNING and load the state.
fn migrate_afresh(vf1: &Function, vf2: &Function, first: u64) -> Result<(), String> {
    let (mut a, mut b) = open_pair(vf1, vf2)?;
    let st = state(&b).map_err(|e| e.to_string())?;
    ensure(st == State::Running, || {
        format!("the destination opened again in {st:?}")
    })?;
    let lba = a.lba_size(NSID)?;
    let mark = kmsg::mark()?;
    migrate(&mut a, &mut b, lba, first, 2, 2)?;
    let loaded = kmsg::since(mark)?
        .iter()
        .any(|l| l.contains(&vf2.bdf) && l.contains("controller state loaded"));
    ensure(loaded, || "the destination logged no state loaded".into())
}

fn destination_killed(env: &Env) -> Result<Vec<Report>, String> {
    with_vf_pair(env, |_pf, vf1, vf2| {
        let mut c = Campaign::start("destination killed in RESUMING")?;
        // 1. The device fd closed with the data fd open and the stream half written.
        {
            let (a, b) = open_pair(vf1, vf2)?;
            let stream = capture(&a)?;
            let mut into = set_state(&b, State::Resuming)
                .map_err(|e| format!("RESUMING: {e}"))?
                .ok_or("no resuming fd")?;
            write_all(&mut into, &stream[..stream.len() / 2], 100)
                .map_err(|e| format!("half the stream: {e}"))?;
            drop(b);
            let r = into.write(&stream[stream.len() / 2..]);
            c.count(&r);
            ensure(
                r.as_ref().err().and_then(errno) == Some(libc::ENODEV),
                || format!("writing after the device closed: {r:?}, want ENODEV"),
            )?;
            drop(into);
            drop(a);
        }
        migrate_afresh(vf1, vf2, 500)?;

        // 2. A destination process killed with the stream half written.
        let stream = {
            let a = Client::open(&vf1.bdf, Path::Container).map_err(String::from)?;
            capture(&a)?
        };
        set_mode(vf2, "vfio")?;
        let r = killed_destination(vf2, &stream);
        c.count(&r);
        r?;
        migrate_afresh(vf1, vf2, 600)?;
        c.finish()
    })
}

/// A child process opens `vf` (a container of its own), moves it to RESUMING, writes half
/// of `stream` and kills itself with SIGKILL; checks it died that way.
fn killed_destination(vf: &Function, stream: &[u8]) -> Result<(), String> {
    // SAFETY: fork with no other thread of this process running a test; the child only
    // uses the VFIO client and exits through `_exit` or a signal, never returning.
    let pid = unsafe { libc::fork() };
    if pid < 0 {
        return Err("fork failed".into());
    }
    if pid == 0 {
        let code = (|| -> Result<(), String> {
            let b = Client::open(&vf.bdf, Path::Container).map_err(String::from)?;
            let mut into = set_state(&b, State::Resuming)
                .map_err(|e| e.to_string())?
                .ok_or("no resuming fd")?;
            write_all(&mut into, &stream[..stream.len() / 2], 64).map_err(|e| e.to_string())?;
            // SAFETY: the child kills itself; the kernel closes its fds.
            unsafe { libc::kill(libc::getpid(), libc::SIGKILL) };
            Ok(())
        })()
        .map_or_else(
            |e| {
                eprintln!("destination child: {e}");
                1
            },
            |()| 2,
        );
        // SAFETY: terminating the child without running the parent's destructors.
        unsafe { libc::_exit(code) };
    }
    let mut status = 0;
    // SAFETY: waiting for the child forked above.
    unsafe { libc::waitpid(pid, &mut status, 0) };
    ensure(
        libc::WIFSIGNALED(status) && libc::WTERMSIG(status) == libc::SIGKILL,
        || format!("the destination child did not die by SIGKILL in RESUMING (status {status:#x})"),
    )
}
