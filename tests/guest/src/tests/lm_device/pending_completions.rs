// SPDX-License-Identifier: GPL-2.0

//! Completions a suspended controller holds move with its state.

use super::*;

/// Completions that do not fit their queue when the VF is suspended travel in the state:
/// the host fills the I/O completion queue (15 entries) without consuming any, submits 8
/// more commands, and after the migration reaps all 23 on the destination, the 8 pending
/// ones in the order the state lists them.
pub(super) fn pending_completions(env: &Env) -> Result<Vec<Report>, String> {
    with_pair(env, |pf, [id1, id2], vfs| {
        let mut clients = Client::open_many(&[&vfs[0].bdf, &vfs[1].bdf], Path::Container)?;
        let mut c2 = clients.pop().ok_or("no client for VF 2")?;
        let mut c1 = clients.pop().ok_or("no client for VF 1")?;
        let lba = c1.lba_size(NSID)?;
        c1.create_io_queue()?;
        let at = |i: usize| (32 << 20) + 4096 * i as u64;
        let mut cids = Vec::new();
        let (first, more) = (usize::from(QDEPTH) - 1, 8);
        for round in [0..first, first..first + more] {
            for i in round {
                c1.set_page(1 + i, &pattern(4096, 0x9e00 + i as u64));
                cids.push(c1.push(Q::Io, c1.rw_sqe(0x01, NSID, at(i), lba, 1 + i))?);
            }
            c1.ring_sq(Q::Io)?;
            // Time to run (the completion queue is full after the first round).
            std::thread::sleep(Duration::from_secs(1));
        }
        ensure(pf.suspend(id1)? == 0, || "Suspend VF 1 failed".into())?;
        let state = pf.get_state(id1)?;
        let s = State::parse(&state)?;
        let npend = le16(&s.vendor, vs::NPEND);
        ensure(
            usize::from(npend) == more && le16(&s.vendor, vs::NEVT) == 0,
            || format!("{npend} pending completions in the state, want {more}"),
        )?;
        let cq = &s.cqs[0];
        ensure(le16(cq, 14) == QDEPTH - 1 && le16(cq, 12) == 0, || {
            format!(
                "IOCQ head {} tail {}, want a full queue",
                le16(cq, 12),
                le16(cq, 14)
            )
        })?;
        ensure(pf.suspend(id2)? == 0, || "Suspend VF 2 failed".into())?;
        ensure(pf.set_entire(id2, &state)? == 0, || {
            "Set into VF 2 failed".into()
        })?;
        ensure(pf.resume(id2)? == 0, || "Resume VF 2 failed".into())?;
        c2.adopt_queues(&c1);
        let mut got = Vec::new();
        for _ in 0..first + more {
            let cqe = c2
                .reap(Q::Io, COMPLETE)?
                .ok_or_else(|| format!("{} of {} completions arrived", got.len(), cids.len()))?;
            ensure(cqe.status == 0, || format!("{cqe:?}"))?;
            got.push(cqe.cid);
        }
        // Completions come in any order; the pending ones in the order of the state.
        let pending: Vec<u16> = (0..more)
            .map(|i| le16(&s.vendor, vs::FIXED + 16 * i + 2))
            .collect();
        ensure(got[first..] == pending[..], || {
            format!(
                "completions after the migration {:?}, pending in the state {pending:?}",
                &got[first..]
            )
        })?;
        let mut sorted = got.clone();
        sorted.sort_unstable();
        ensure(sorted == cids, || {
            format!("completions {got:?}, submitted {cids:?}")
        })?;
        for i in 0..first + more {
            ensure(
                c2.read_page(NSID, at(i), lba)? == pattern(4096, 0x9e00 + i as u64),
                || format!("page {i} does not read back"),
            )?;
        }
        Ok(())
    })
}
