// SPDX-License-Identifier: GPL-2.0

//! Device dirty tracking (`VFIO_DEVICE_FEATURE_DMA_LOGGING_*`) of a VF in vfio mode, as a
//! VMM uses it: the client's own reads land in its DMA memory at known IOVAs, and a report
//! must name every page written (a missed page is stale data after a live migration);
//! pages it names beyond those are counted and printed. Bad requests get the documented
//! errno, and a full tracking queue makes the driver report everything.

use std::collections::BTreeSet;

use crate::{
    harness::{ensure, Env, Report, Test, LM_TRACK_OFF},
    kmsg,
    module::{self, RNVME},
    sriov::CHARDEV,
    tests::migration::{open_pair, with_vf_pair, with_vf_pair_params, NSID_NUM},
    vfio_client::{Client, Path, DATA_PAGES, Q},
    vfio_dirty::{probe, report, start, stop, Range},
    vfio_migration::{flags, set_state, State, STOP_COPY},
};

/// The dirty tracking tests.
pub fn tests() -> Vec<Test> {
    vec![
        Test {
            name: "dirty-tracking/report",
            groups: &["dirty-tracking", "migration"],
            run: reports_every_page,
        },
        Test {
            name: "dirty-tracking/errors",
            groups: &["dirty-tracking", "migration"],
            run: errors,
        },
        Test {
            name: "dirty-tracking/queue-full",
            groups: &["dirty-tracking", "migration"],
            run: queue_full,
        },
        Test {
            name: "dirty-tracking/across-vf-reset",
            groups: &["dirty-tracking", "migration"],
            run: across_vf_reset,
        },
        Test {
            name: "dirty-tracking/cancelled-migration",
            groups: &["dirty-tracking", "migration"],
            run: cancelled_migration,
        },
        Test {
            name: "dirty-tracking/pf-reset",
            groups: &["dirty-tracking", "migration"],
            run: pf_reset,
        },
        Test {
            name: "dirty-tracking/without-device-tracking",
            groups: &[LM_TRACK_OFF],
            run: without_device_tracking,
        },
        Test {
            name: "dirty-tracking/closed-while-logging",
            groups: &["dirty-tracking", "migration"],
            run: closed_while_logging,
        },
    ]
}

const PAGE: u64 = 4096;

/// The errno of `r`, or what it did instead of failing.
fn errno<T: std::fmt::Debug>(what: &str, r: std::io::Result<T>, want: i32) -> Result<(), String> {
    match r {
        Err(e) if e.raw_os_error() == Some(want) => Ok(()),
        other => Err(format!("{what}: {other:?}, want errno {want}")),
    }
}

/// The client's area as one tracked range.
fn area(c: &Client) -> Range {
    let (iova, length) = c.area();
    Range { iova, length }
}

/// The pages of `c`'s area the last report named.
fn dirty(c: &Client, what: &str) -> Result<BTreeSet<u64>, String> {
    let r = area(c);
    report(c, r.iova, r.length, PAGE)
        .map(|v| v.into_iter().collect())
        .map_err(|e| format!("{what}: report: {e}"))
}

/// Reads a page into each of `pages` (data pages of `c`); returns their IOVAs and the
/// completion queue's page, which the controller wrote too.
fn read_pages(c: &mut Client, pages: &[usize]) -> Result<BTreeSet<u64>, String> {
    let lba = c.lba_size(NSID_NUM)?;
    let mut written = BTreeSet::new();
    for (i, &p) in pages.iter().enumerate() {
        c.clear_page(p);
        c.read_into(NSID_NUM, i as u64 * PAGE, lba, p)?;
        written.insert(c.data_iova(p));
    }
    let cq = c.queue_state(Q::Io).ok_or("no I/O queue")?.cq_iova();
    written.insert(cq & !(PAGE - 1));
    Ok(written)
}

/// Every page in `want` is in `got`; the extra ones are printed.
fn covers(got: &BTreeSet<u64>, want: &BTreeSet<u64>, what: &str) -> Result<(), String> {
    let missing: Vec<_> = want.difference(got).map(|p| format!("{p:#x}")).collect();
    ensure(missing.is_empty(), || {
        format!("{what}: pages written but not reported: {missing:?}")
    })?;
    let extra = got.difference(want).count();
    println!(
        "{what}: {} page(s) reported, {} written, {extra} extra",
        got.len(),
        want.len()
    );
    Ok(())
}

/// Starts tracking `c`'s whole area at 4 KiB pages.
fn start_area(c: &Client, what: &str) -> Result<(), String> {
    start(c, PAGE, &[area(c)]).map_err(|e| format!("{what}: {e}"))
}

/// The next report of `c`'s area names every page of `written` ([`covers`]).
fn reported(c: &Client, written: &BTreeSet<u64>, what: &str) -> Result<(), String> {
    covers(&dirty(c, what)?, written, what)
}

fn reports_every_page(env: &Env) -> Result<Vec<Report>, String> {
    with_vf_pair(env, |_pf, vf1, vf2| {
        let (mut a, _b) = open_pair(vf1, vf2)?;
        let f = flags(&a).map_err(|e| format!("{}: migration flags: {e}", vf1.bdf))?;
        ensure(f & STOP_COPY != 0, || format!("migration flags {f:#x}"))?;
        probe(&a).map_err(|e| format!("{}: probe: {e}", vf1.bdf))?;
        start_area(&a, "start")?;
        let idle = dirty(&a, "before any I/O")?;
        ensure(idle.is_empty(), || {
            format!("before any I/O: {} page(s) reported dirty", idle.len())
        })?;

        let pages: Vec<usize> = (0..DATA_PAGES).collect();
        let written = read_pages(&mut a, &pages)?;
        reported(&a, &written, "after reads")?;
        let again = dirty(&a, "second report")?;
        ensure(again.is_empty(), || {
            format!("second report without I/O: {} page(s)", again.len())
        })?;

        // Reads that land while the drain work runs between reports are not lost either.
        let some = [1usize, 5, 9];
        let written = read_pages(&mut a, &some)?;
        std::thread::sleep(std::time::Duration::from_millis(200));
        reported(&a, &written, "after a pause")?;

        stop(&a).map_err(|e| format!("stop: {e}"))?;
        let r = area(&a);
        errno(
            "report after stop",
            report(&a, r.iova, r.length, PAGE),
            libc::EINVAL,
        )?;
        // Tracking can start again on the same device.
        start_area(&a, "start again")?;
        let written = read_pages(&mut a, &[3])?;
        reported(&a, &written, "restarted")?;
        stop(&a).map_err(|e| format!("stop again: {e}"))
    })
}

fn errors(env: &Env) -> Result<Vec<Report>, String> {
    with_vf_pair(env, |_pf, vf1, vf2| {
        let (a, _b) = open_pair(vf1, vf2)?;
        let r = area(&a);
        // Report and stop before a start.
        errno(
            "report before start",
            report(&a, r.iova, r.length, PAGE),
            libc::EINVAL,
        )?;
        stop(&a).map_err(|e| format!("stop before start: {e}"))?;
        // The VFIO core's checks.
        errno("no ranges", start(&a, PAGE, &[]), libc::EINVAL)?;
        let many: Vec<Range> = (0..257)
            .map(|i| Range {
                iova: r.iova + i * 2 * PAGE,
                length: PAGE,
            })
            .collect();
        errno("257 ranges", start(&a, PAGE, &many), libc::E2BIG)?;
        let unaligned = Range {
            iova: r.iova + 512,
            length: PAGE,
        };
        errno(
            "unaligned range",
            start(&a, PAGE, &[unaligned]),
            libc::EINVAL,
        )?;
        let empty = Range {
            iova: r.iova,
            length: 0,
        };
        errno("empty range", start(&a, PAGE, &[empty]), libc::EINVAL)?;
        let overlap = [
            r,
            Range {
                iova: r.iova + PAGE,
                length: PAGE,
            },
        ];
        errno(
            "overlapping ranges",
            start(&a, PAGE, &overlap),
            libc::EINVAL,
        )?;
        let wrap = Range {
            iova: u64::MAX - PAGE + 1,
            length: 2 * PAGE,
        };
        errno("range past 2^64", start(&a, PAGE, &[wrap]), libc::EOVERFLOW)?;
        // The driver's.
        errno("page size 2048", start(&a, 2048, &[r]), libc::EINVAL)?;
        errno("page size 12288", start(&a, 3 * PAGE, &[r]), libc::EINVAL)?;
        // More ranges than the device takes are merged, not refused.
        let spread: Vec<Range> = (0..20)
            .map(|i| Range {
                iova: r.iova + i * 2 * PAGE,
                length: PAGE,
            })
            .collect();
        start(&a, PAGE, &spread).map_err(|e| format!("20 ranges: {e}"))?;
        stop(&a).map_err(|e| format!("stop after 20 ranges: {e}"))?;

        start(&a, PAGE, &[r]).map_err(|e| format!("start: {e}"))?;
        errno("start twice", start(&a, PAGE, &[r]), libc::EINVAL)?;
        errno(
            "report outside the range",
            report(&a, r.iova + r.length, PAGE, PAGE),
            libc::EINVAL,
        )?;
        errno(
            "report across the range's end",
            report(&a, r.iova, r.length + PAGE, PAGE),
            libc::EINVAL,
        )?;
        errno(
            "report page size 2048",
            report(&a, r.iova, r.length, 2048),
            libc::EINVAL,
        )?;
        // A report at a coarser page size than the start's is fine.
        report(&a, r.iova, r.length, 4 * PAGE).map_err(|e| format!("report at 16 KiB: {e}"))?;
        stop(&a).map_err(|e| format!("stop: {e}"))?;
        stop(&a).map_err(|e| format!("stop twice: {e}"))
    })
}

fn queue_full(env: &Env) -> Result<Vec<Report>, String> {
    // Four entries: three usable, so a few reads overflow the queue before any drain.
    with_vf_pair_params(env, &[("cdq_entries", "4")], |_pf, vf1, vf2| {
        let (mut a, _b) = open_pair(vf1, vf2)?;
        let mark = kmsg::mark()?;
        start_area(&a, "start")?;
        // Every other page, so that no two changes merge into one entry, four times over:
        // far more entries than the queue holds between two drains.
        let pages: Vec<usize> = (0..DATA_PAGES).step_by(2).collect();
        for _ in 0..4 {
            read_pages(&mut a, &pages)?;
        }
        let got = dirty(&a, "after an overflow")?;
        let all = all_pages(&a);
        ensure(got == all, || {
            format!(
                "after an overflow {} of {} pages reported, want all",
                got.len(),
                all.len()
            )
        })?;
        let again = dirty(&a, "second report")?;
        ensure(again.is_empty(), || {
            format!("second report: {} page(s)", again.len())
        })?;
        // Reads after the overflow are tracked again.
        let written = read_pages(&mut a, &[2])?;
        reported(&a, &written, "after the overflow")?;
        stop(&a).map_err(|e| format!("stop: {e}"))?;
        let warned = kmsg::count_since(mark, "dirty tracking queue overflowed")?;
        ensure(warned == 1, || {
            format!("the overflow was logged {warned} time(s), want once")
        })
    })
}

/// The whole area reported dirty.
fn all_pages(c: &Client) -> BTreeSet<u64> {
    let r = area(c);
    (0..r.length / PAGE).map(|i| r.iova + i * PAGE).collect()
}

fn across_vf_reset(env: &Env) -> Result<Vec<Report>, String> {
    with_vf_pair(env, |_pf, vf1, vf2| {
        let (mut a, _b) = open_pair(vf1, vf2)?;
        start_area(&a, "start")?;
        let before = read_pages(&mut a, &[0, 1])?;
        // A function reset (FLR) of the VF: the queue is the PF's, the tracking goes on.
        a.reset_device()?;
        a.reenable()?;
        a.create_io_queue()?;
        let mut written = read_pages(&mut a, &[4, 6])?;
        written.extend(before);
        reported(&a, &written, "across a VF reset")?;
        stop(&a).map_err(|e| format!("stop: {e}"))
    })
}

fn cancelled_migration(env: &Env) -> Result<Vec<Report>, String> {
    with_vf_pair(env, |_pf, vf1, vf2| {
        let (mut a, _b) = open_pair(vf1, vf2)?;
        start_area(&a, "start")?;
        // What a VMM does when a migration is cancelled in pre-copy: back to RUNNING with
        // the saving fd closed; the tracking is the VMM's to stop.
        let fd = set_state(&a, State::PreCopy).map_err(|e| format!("PRE_COPY: {e}"))?;
        ensure(fd.is_some(), || "PRE_COPY opened no data fd".into())?;
        let written = read_pages(&mut a, &[2, 3])?;
        set_state(&a, State::Running).map_err(|e| format!("RUNNING: {e}"))?;
        drop(fd);
        reported(&a, &written, "after the cancel")?;
        stop(&a).map_err(|e| format!("stop: {e}"))?;
        // The next migration tracks again.
        start_area(&a, "start again")?;
        let written = read_pages(&mut a, &[7])?;
        reported(&a, &written, "the next migration")?;
        stop(&a).map_err(|e| format!("stop again: {e}"))
    })
}

fn pf_reset(env: &Env) -> Result<Vec<Report>, String> {
    with_vf_pair(env, |_pf, vf1, vf2| {
        let (mut a, _b) = open_pair(vf1, vf2)?;
        start_area(&a, "start")?;
        let mark = kmsg::mark()?;
        // A reset of the PF deletes its queues: the driver can no longer tell what the VF
        // writes, so every report says everything, until the VMM stops.
        module::run("nvme", &["reset", CHARDEV])?;
        let all = all_pages(&a);
        for n in ["first", "second"] {
            let got = dirty(&a, &format!("{n} report after the PF reset"))?;
            ensure(got == all, || {
                format!(
                    "{n} report after the PF reset: {} of {} pages",
                    got.len(),
                    all.len()
                )
            })?;
        }
        stop(&a).map_err(|e| format!("stop after the PF reset: {e}"))?;
        // The VF's controller came back empty; a new tracking works.
        a.reset_device()?;
        a.reenable()?;
        a.create_io_queue()?;
        start_area(&a, "start after the PF reset")?;
        let written = read_pages(&mut a, &[8])?;
        reported(&a, &written, "after the PF reset")?;
        stop(&a).map_err(|e| format!("stop: {e}"))?;
        crate::tests::vfio_qemu::no_problems_since(mark)
    })
}

fn closed_while_logging(env: &Env) -> Result<Vec<Report>, String> {
    with_vf_pair(env, |_pf, vf1, vf2| {
        let mark = kmsg::mark()?;
        {
            let (mut a, _b) = open_pair(vf1, vf2)?;
            start_area(&a, "start")?;
            read_pages(&mut a, &[0])?;
            // The module is held while the device is open.
            ensure(module::rmmod(RNVME).is_err(), || {
                "rmmod succeeded while a VFIO device logs".into()
            })?;
            // Closed without a stop (a VMM that crashed).
        }
        let stopped = kmsg::count_since(mark, "dirty tracking stopped")?;
        ensure(stopped == 1, || {
            format!("closing the device stopped the tracking {stopped} time(s), want once")
        })?;
        // The queue memory came back: a new user tracks again.
        let mut a = Client::open(&vf1.bdf, Path::Container).map_err(String::from)?;
        a.create_io_queue()?;
        start_area(&a, "start after the close")?;
        let written = read_pages(&mut a, &[5])?;
        reported(&a, &written, "after the close")?;
        Ok(())
    })
}

/// A PF whose controller does not track the memory its VFs write (the model's
/// `x-lm-track=off`, a boot of its own): the VFs migrate, but the driver registers no
/// logging operations, so every logging request is `ENOTTY`, which is what makes QEMU
/// refuse to migrate them without `enable-migration=on`.
fn without_device_tracking(env: &Env) -> Result<Vec<Report>, String> {
    with_vf_pair(env, |_pf, vf1, vf2| {
        let (a, b) = open_pair(vf1, vf2)?;
        for (c, vf) in [(&a, vf1), (&b, vf2)] {
            let f = flags(c).map_err(|e| format!("{}: migration flags: {e}", vf.bdf))?;
            ensure(f & STOP_COPY != 0, || {
                format!("{}: migration flags {f:#x} lack STOP_COPY", vf.bdf)
            })?;
            errno(&format!("{}: probe", vf.bdf), probe(c), libc::ENOTTY)?;
            let r = area(c);
            errno(
                &format!("{}: start", vf.bdf),
                start(c, PAGE, &[r]),
                libc::ENOTTY,
            )?;
            errno(
                &format!("{}: report", vf.bdf),
                report(c, r.iova, r.length, PAGE),
                libc::ENOTTY,
            )?;
            errno(&format!("{}: stop", vf.bdf), stop(c), libc::ENOTTY)?;
        }
        Ok(())
    })
}
