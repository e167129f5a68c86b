// SPDX-License-Identifier: GPL-2.0

//! A VF's state, commands queued on it, moves to the other VF and back.

use super::*;

/// The required scenario: I/O on VF 1, Suspend, commands queued on the suspended VF, Get
/// Controller State, Suspend VF 2, Set (in three parts) into VF 2, Resume VF 2: the
/// queued commands complete through VF 2 in the same queue memory. Then back from VF 2 to
/// VF 1 with one transfer. The AER outstanding on VF 1 at the start is outstanding on the
/// destination each time and completes when an event comes.
pub(super) fn migrate_queued_io(env: &Env) -> Result<Vec<Report>, String> {
    with_pair(env, |pf, [id1, id2], vfs| {
        let mut clients = Client::open_many(&[&vfs[0].bdf, &vfs[1].bdf], Path::Container)?;
        let mut c2 = clients.pop().ok_or("no client for VF 2")?;
        let mut c1 = clients.pop().ok_or("no client for VF 1")?;
        let lba = c1.lba_size(NSID)?;
        c1.create_io_queue()?;
        // VF 2 runs queues of its own until the state replaces them.
        c2.create_io_queue()?;
        c2.write_page(NSID, 64 << 20, lba, &pattern(4096, 0xd2))?;
        // An Asynchronous Event Request outstanding on VF 1.
        let aer_cid = c1.submit(Q::Admin, Client::sqe(AER, 0, 0, 0, 0, 0))?;

        // Round 1: VF 1 -> VF 2, Set in three parts.
        let (state, queued) = suspend_with_queued_io(pf, &mut c1, id1, lba, 1, aer_cid)?;
        let st = pf.suspend(id2)?;
        ensure(st == 0, || format!("Suspend VF 2: status {st:#x}"))?;
        let cuts = [(state.len() / 3) & !3, (2 * state.len() / 3) & !3];
        let st = pf.set_parts(id2, &state, &cuts)?;
        ensure(st == 0, || {
            format!("Set Controller State in parts: {st:#x}")
        })?;
        // The destination reports the state it was given (the clock aside).
        ensure(
            without_clock(&pf.get_state(id2)?) == without_clock(&state),
            || "VF 2's state after Set differs from what was set".into(),
        )?;
        let st = pf.resume(id2)?;
        ensure(st == 0, || format!("Resume VF 2: status {st:#x}"))?;
        c2.adopt_queues(&c1);
        check_completed_on(&mut c2, &c1, &queued, lba)
            .map_err(|e| format!("VF 1 -> VF 2 (Set in parts): {e}"))?;
        // The source stays suspended: its own doorbells do nothing.
        let (d, _) = pf.get_state_at(id1, 0, 48)?;
        ensure(d.status == 0 && d.dw0 & 1 == 1, || {
            format!("VF 1 after the migration: {d:?}")
        })?;

        // Round 2: VF 2 -> VF 1, Set in one transfer.
        let (state, queued) = suspend_with_queued_io(pf, &mut c2, id2, lba, 2, aer_cid)?;
        let st = pf.set_entire(id1, &state)?;
        ensure(st == 0, || format!("Set Controller State entire: {st:#x}"))?;
        let st = pf.resume(id1)?;
        ensure(st == 0, || format!("Resume VF 1: status {st:#x}"))?;
        c1.adopt_queues(&c2);
        check_completed_on(&mut c1, &c2, &queued, lba)
            .map_err(|e| format!("VF 2 -> VF 1 (Set entire): {e}"))?;

        // The Changed Namespace List carried twice still lists namespace 2; reading it
        // re-arms the event, and the AER carried twice completes on VF 1 when its
        // namespace changes.
        let (st, log) = c1.get_log(0x04, 4096)?;
        ensure(
            st == 0 && le32(&log, 0) == NSID && le32(&log, 4) == 0,
            || format!("Changed Namespace List: status {st:#x}, {:02x?}", &log[..8]),
        )?;
        module::run(
            "nvme",
            &[
                "detach-ns",
                CHARDEV,
                "-n",
                &NSID.to_string(),
                "-c",
                &id1.to_string(),
            ],
        )?;
        let cqe = c1
            .reap(Q::Admin, COMPLETE)?
            .ok_or("the migrated AER did not complete on a namespace change")?;
        ensure(
            cqe.cid == aer_cid && cqe.status == 0 && cqe.dw0 & 0xff_ff07 == 0x04_0002,
            || format!("AER completion {cqe:?}, want command {aer_cid}, notice, log 04h"),
        )
    })
}
