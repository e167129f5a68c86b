// SPDX-License-Identifier: GPL-2.0

//! Commands queued on a suspended VF: writing, reaping, and checking where they completed.

use super::*;

/// Writes `pages` pages of `seed` patterns through queue `Io` of `c` from byte `at` of the
/// namespace, waiting for each.
pub(super) fn write_pages(
    c: &mut Client,
    lba: usize,
    at: u64,
    pages: usize,
    seed: u64,
) -> Result<(), String> {
    for i in 0..pages {
        c.write_page(
            NSID,
            at + 4096 * i as u64,
            lba,
            &pattern(4096, seed + i as u64),
        )?;
    }
    Ok(())
}

/// Reaps `cids.len()` completions from queue `Io` of `c`: each of `cids`, successful.
pub(super) fn reap_all(c: &mut Client, q: Q, cids: &[u16]) -> Result<Vec<Cqe>, String> {
    let mut got = Vec::new();
    let start = Instant::now();
    while got.len() < cids.len() {
        let left = COMPLETE.saturating_sub(start.elapsed());
        let Some(cqe) = c.reap(q, left)? else {
            return Err(format!(
                "{} of {} queued commands completed",
                got.len(),
                cids.len()
            ));
        };
        ensure(cqe.status == 0, || {
            format!("queued command failed: {cqe:?}")
        })?;
        got.push(cqe);
    }
    let mut seen: Vec<u16> = got.iter().map(|c| c.cid).collect();
    let mut want = cids.to_vec();
    seen.sort_unstable();
    want.sort_unstable();
    ensure(seen == want, || {
        format!("completed command IDs {seen:?}, submitted {want:?}")
    })?;
    Ok(got)
}

/// Commands queued on a suspended VF: the state says so, and they complete on the VF the
/// state is set into, through the same queue memory and that VF's doorbells.
pub(super) struct Queued {
    /// Command IDs of the Writes and Reads submitted while suspended.
    cids: Vec<u16>,
    /// Byte offset and seed of every page written (before and during the suspension).
    written: Vec<(u64, u64)>,
    /// Data pages the queued Reads fill, with what they must read.
    reads: Vec<(usize, u64)>,
}

/// Suspends `src` (driven by `c`), queues four Writes and two Reads on it, checks they
/// stay pending and what Get Controller State reports; returns the state.
pub(super) fn suspend_with_queued_io(
    pf: &Pf,
    c: &mut Client,
    src: u16,
    lba: usize,
    round: u64,
    aer_cid: u16,
) -> Result<(Vec<u8>, Queued), String> {
    // I/O on the source first, waited for.
    let base = round * (1 << 20);
    write_pages(c, lba, base, 4, round * 100)?;
    let mut written: Vec<(u64, u64)> = (0..4).map(|i| (base + 4096 * i, round * 100 + i)).collect();

    let st = pf.suspend(src)?;
    ensure(st == 0, || format!("Suspend {src}: status {st:#x}"))?;
    let io = c.queue_state(Q::Io).ok_or("no I/O queue")?.clone();
    let head_before = io.tail;

    // Four Writes (data pages 1 to 4) and two Reads of pages written before (into data
    // pages 5 and 6), each with its own doorbell write, on the suspended controller.
    let mut cids = Vec::new();
    for i in 0..4usize {
        let at = base + 4096 * (4 + i as u64);
        let seed = round * 100 + 4 + i as u64;
        c.set_page(1 + i, &pattern(4096, seed));
        cids.push(c.submit(Q::Io, c.rw_sqe(0x01, NSID, at, lba, 1 + i))?);
        written.push((at, seed));
    }
    let reads = vec![(5, round * 100), (6, round * 100 + 1)];
    for (page, seed) in &reads {
        c.clear_page(*page);
        let at = base + 4096 * (seed - round * 100);
        cids.push(c.submit(Q::Io, c.rw_sqe(0x02, NSID, at, lba, *page))?);
    }
    let quiet_from = Instant::now();
    while quiet_from.elapsed() < QUIET {
        ensure(!c.cq_ready(Q::Io)?, || {
            "a command completed on the suspended controller".into()
        })?;
        ensure(!c.cq_ready(Q::Admin)?, || {
            "the AER completed on the suspended controller".into()
        })?;
        std::thread::sleep(Duration::from_millis(20));
    }

    // Reading the state in pieces gives the same bytes as at once.
    let state = pf.get_state(src)?;
    let mut pieces = Vec::new();
    let mut off = 0;
    while off < state.len() {
        let (d, part) = pf.get_state_at(src, off as u64, 64)?;
        ensure(d.status == 0 && d.dw0 & 1 == 1, || {
            format!("Get at {off}: {d:?}")
        })?;
        pieces.extend_from_slice(&part);
        off += 64;
    }
    ensure(
        without_clock(&pieces[..state.len()]) == without_clock(&state)
            && pieces[state.len()..].iter().all(|&b| b == 0),
        || "the state read in 64-byte pieces differs from the state read at once".into(),
    )?;

    // The header, the queues and the vendor section describe what the host did.
    ensure(le16(&state, 0) == 0 && state[2] == 1, || {
        format!("header VER {:#x} CSATTR {:#x}", le16(&state, 0), state[2])
    })?;
    let s = State::parse(&state)?;
    ensure(s.sqs.len() == 1 && s.cqs.len() == 1, || {
        format!("NIOSQ {} NIOCQ {}", s.sqs.len(), s.cqs.len())
    })?;
    let (sq, cq) = (&s.sqs[0], &s.cqs[0]);
    let tail_now = c.queue_state(Q::Io).ok_or("no I/O queue")?.tail;
    ensure(
        le64(sq, 0) == io.sq_iova()
            && le16(sq, 8) == QDEPTH - 1
            && le16(sq, 10) == 1
            && le16(sq, 12) == 1
            && le16(sq, 14) & 1 == 1
            && le16(sq, 16) == head_before
            && le16(sq, 18) == tail_now,
        || {
            format!(
                "IOSQ state prp1 {:#x} qsize {} qid {} cqid {} attr {:#x} head {} tail {}; \
                 want prp1 {:#x}, head {head_before}, tail {tail_now}",
                le64(sq, 0),
                le16(sq, 8),
                le16(sq, 10),
                le16(sq, 12),
                le16(sq, 14),
                le16(sq, 16),
                le16(sq, 18),
                io.sq_iova()
            )
        },
    )?;
    ensure(
        le64(cq, 0) == io.cq_iova()
            && le16(cq, 10) == 1
            && le16(cq, 12) == io.head
            && le16(cq, 14) == io.head
            && le32(cq, 16) & 0x3 == 0x1,
        || format!("IOCQ state {cq:02x?}; host head {}", io.head),
    )?;
    let v = &s.vendor;
    let admin = c.queue_state(Q::Admin).ok_or("no admin queue")?;
    ensure(
        le32(v, vs::MAGIC) == 0x4d4c_4e52
            && le16(v, vs::VER) == 1
            && le32(v, vs::CC) & 1 == 1
            && le32(v, vs::CSTS) & 1 == 1
            && le64(v, vs::ASQ) == admin.sq_iova()
            && le64(v, vs::ACQ) == admin.cq_iova()
            && le16(v, vs::ASQ_TAIL) == admin.tail
            && le16(v, vs::ASQ_HEAD) == admin.tail,
        || format!("vendor section {:02x?}", &v[..64]),
    )?;
    ensure(
        le16(v, vs::NAER) == 1 && le16(v, vs::FIXED) == aer_cid && le16(v, vs::NPEND) == 0,
        || {
            format!(
                "vendor section: {} AERs (first {}), {} pending; want AER {aer_cid}",
                le16(v, vs::NAER),
                le16(v, vs::FIXED),
                le16(v, vs::NPEND)
            )
        },
    )?;
    ensure(v[vs::ATTACHED] == 1 << (NSID - 1), || {
        format!("attached namespaces {:#x}", v[vs::ATTACHED])
    })?;
    // Attaching namespace 2 put it in the Changed Namespace List, which nobody read.
    ensure(v[vs::CHANGED] == 1 << (NSID - 1), || {
        format!("changed namespaces {:#x}", v[vs::CHANGED])
    })?;
    Ok((
        state,
        Queued {
            cids,
            written,
            reads,
        },
    ))
}

/// After the state went to the destination driven by `c` (which took the queues over from
/// `src`): the queued commands complete there, the Reads (into `src`'s data pages) read
/// what was written before, and every page reads back.
pub(super) fn check_completed_on(
    c: &mut Client,
    src: &Client,
    q: &Queued,
    lba: usize,
) -> Result<(), String> {
    let cqes = reap_all(c, Q::Io, &q.cids)?;
    ensure(cqes.iter().all(|e| e.sqid == 1), || format!("{cqes:?}"))?;
    for (page, seed) in &q.reads {
        ensure(src.page(*page) == pattern(4096, *seed), || {
            format!("a Read queued on the source read other data (seed {seed})")
        })?;
    }
    for (at, seed) in &q.written {
        ensure(c.read_page(NSID, *at, lba)? == pattern(4096, *seed), || {
            format!("the page at {at} does not read back after the migration")
        })?;
    }
    Ok(())
}
