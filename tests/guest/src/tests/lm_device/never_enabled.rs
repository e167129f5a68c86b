// SPDX-License-Identifier: GPL-2.0

//! States of controllers without an admin queue: never enabled (CC.EN 0) with an event
//! queued, disabled with an event queued, and enabled but failed to start. Every state Get
//! returns, Set takes; the event moves and is delivered once the destination is enabled.

use super::*;

/// Event type Notice, information Namespace Attribute Changed, log page 04h, as a queued
/// event entry of the vendor section: type, information, log page, reserved.
const NS_CHANGED_EVENT: [u8; 4] = [2, 0, 0x04, 0];

/// The queued event entries of the vendor section `v`.
fn events(v: &[u8]) -> Vec<[u8; 4]> {
    let at = vs::FIXED + 4 * le16(v, vs::NAER) as usize;
    (0..le16(v, vs::NEVT) as usize)
        .map(|i| {
            let mut e = [0u8; 4];
            e.copy_from_slice(&v[at + 4 * i..at + 4 * i + 4]);
            e
        })
        .collect()
}

/// Sets `state` into suspended `dst` in one transfer and checks that `dst` then reports
/// it (the clock aside).
fn set_and_compare(pf: &Pf, dst: u16, state: &[u8], what: &str) -> Result<(), String> {
    let st = pf.set_entire(dst, state)?;
    ensure(st == 0, || {
        format!("{what}: Set Controller State: status {st:#x}")
    })?;
    ensure(
        without_clock(&pf.get_state(dst)?) == without_clock(state),
        || format!("{what}: the destination's state differs from what was set"),
    )
}

/// `nvme attach-ns` (`verb` "attach-ns") or `detach-ns` of the shared namespace for
/// secondary controller `id`, through the PF.
fn ns_to(verb: &str, id: u16) -> Result<(), String> {
    module::run(
        "nvme",
        &[
            verb,
            CHARDEV,
            "-n",
            &NSID.to_string(),
            "-c",
            &id.to_string(),
        ],
    )
    .map(|_| ())
}

fn detach(id: u16) -> Result<(), String> {
    ns_to("detach-ns", id)
}

/// A VF migrated before its guest enabled the controller, and the two other states
/// without an admin queue.
pub(super) fn never_enabled(env: &Env) -> Result<Vec<Report>, String> {
    with_pair(env, |pf, [id1, id2], vfs| {
        let expect = |what: &str, got: u16, want: u16| {
            ensure(got == want, || {
                format!("{what}: status {got:#x}, want {want:#x}")
            })
        };

        // 1. Not enabled since its reset: the VFs (which QEMU keeps across VF enables,
        //    with their Changed Namespace Lists) have the namespace detached, their
        //    lists read and cleared, and are reset (the client's close); then the
        //    namespace is attached to each, which queues an event on a controller nobody
        //    has enabled since.
        {
            let mut clients = Client::open_many(&[&vfs[0].bdf, &vfs[1].bdf], Path::Container)?;
            for (c, id) in clients.iter_mut().zip([id1, id2]) {
                detach(id)?;
                let (st, _) = c.get_log(0x04, 4096)?;
                expect("Changed Namespace List", st, 0)?;
            }
        }
        for id in [id1, id2] {
            ns_to("attach-ns", id)?;
        }
        expect("Suspend VF 1", pf.suspend(id1)?, 0)?;
        expect("Suspend VF 2", pf.suspend(id2)?, 0)?;
        let state = pf.get_state(id1)?;
        let s = State::parse(&state)?;
        let v = &s.vendor;
        ensure(
            le32(v, vs::CC) & 1 == 0 && s.sqs.is_empty() && s.cqs.is_empty(),
            || format!("VF 1 not enabled: CC {:#x}", le32(v, vs::CC)),
        )?;
        ensure(events(v) == [NS_CHANGED_EVENT], || {
            format!("VF 1 not enabled: queued events {:02x?}", events(v))
        })?;
        ensure(v[vs::CHANGED] == 1 << (NSID - 1), || {
            format!("changed namespaces {:#x}", v[vs::CHANGED])
        })?;
        // Get -> Set: into the same controller, and into the other one.
        set_and_compare(pf, id1, &state, "not enabled, into itself")?;
        set_and_compare(pf, id2, &state, "not enabled, VF 1 -> VF 2")?;
        // Two events of other kinds: loaded as they are.
        let mut two = s.clone();
        two.vendor.extend_from_slice(&[1, 1, 0x02, 0]);
        let n = le16(&two.vendor, vs::NEVT);
        put16(&mut two.vendor, vs::NEVT, n + 1);
        two.fix_vendor_len();
        set_and_compare(pf, id2, &two.build(), "not enabled, two events")?;
        set_and_compare(pf, id2, &state, "not enabled, back to one event")?;
        expect("Resume VF 1", pf.resume(id1)?, 0)?;
        expect("Resume VF 2", pf.resume(id2)?, 0)?;

        // 2. Disabled with an event queued, moved to a disabled VF without one; the
        //    guest enables the destination and its AER reports the event. Opening the
        //    VFs resets them (the queued events go; the Changed Namespace List stays).
        let mut clients = Client::open_many(&[&vfs[0].bdf, &vfs[1].bdf], Path::Container)?;
        let mut c2 = clients.pop().ok_or("no client for VF 2")?;
        let mut c1 = clients.pop().ok_or("no client for VF 1")?;
        // VF 2: namespace detached (already in its list: no new event), list read (which
        // clears it and the notice), then disabled: nothing queued.
        detach(id2)?;
        let (st, _) = c2.get_log(0x04, 4096)?;
        expect("VF 2: Changed Namespace List", st, 0)?;
        c2.reset_device()?;
        // VF 1: list read, disabled, then its namespace detached: a new event, queued on
        // a disabled controller.
        let (st, _) = c1.get_log(0x04, 4096)?;
        expect("VF 1: Changed Namespace List", st, 0)?;
        c1.reset_device()?;
        detach(id1)?;
        expect("Suspend VF 1", pf.suspend(id1)?, 0)?;
        expect("Suspend VF 2", pf.suspend(id2)?, 0)?;
        let empty = State::parse(&pf.get_state(id2)?)?;
        ensure(
            le32(&empty.vendor, vs::CC) & 1 == 0 && events(&empty.vendor).is_empty(),
            || {
                format!(
                    "VF 2 disabled: CC {:#x}, events {:02x?}",
                    le32(&empty.vendor, vs::CC),
                    events(&empty.vendor)
                )
            },
        )?;
        let state = pf.get_state(id1)?;
        let s = State::parse(&state)?;
        ensure(
            le32(&s.vendor, vs::CC) & 1 == 0 && events(&s.vendor) == [NS_CHANGED_EVENT],
            || {
                format!(
                    "VF 1 disabled after a detach: CC {:#x}, events {:02x?}",
                    le32(&s.vendor, vs::CC),
                    events(&s.vendor)
                )
            },
        )?;
        set_and_compare(pf, id2, &state, "disabled, VF 1 -> VF 2")?;
        expect("Resume VF 2", pf.resume(id2)?, 0)?;
        expect("Resume VF 1", pf.resume(id1)?, 0)?;
        // The guest on VF 2 enables the controller and asks for events: the one queued on
        // VF 1 completes its AER at once.
        c2.reenable()?;
        let aer = c2.submit(Q::Admin, Client::sqe(AER, 0, 0, 0, 0, 0))?;
        let cqe = c2
            .reap(Q::Admin, COMPLETE)?
            .ok_or("the event carried from VF 1 did not complete an AER on VF 2")?;
        ensure(
            cqe.cid == aer && cqe.status == 0 && cqe.dw0 & 0xff_ff07 == 0x04_0002,
            || format!("AER completion {cqe:?}, want command {aer}, notice, log 04h"),
        )?;
        let (st, log) = c2.get_log(0x04, 4096)?;
        ensure(
            st == 0 && le32(&log, 0) == NSID && le32(&log, 4) == 0,
            || {
                format!(
                    "VF 2's Changed Namespace List: status {st:#x}, {:02x?}",
                    &log[..8]
                )
            },
        )?;

        // 3. Enabled but failed to start (an admin queue of one entry): CC.EN 1, CSTS.CFS,
        //    no admin queue. Its state moves to VF 2, which then shows the same failure.
        c1.reset_device()?;
        c1.enable_badly()?;
        expect("Suspend VF 1", pf.suspend(id1)?, 0)?;
        expect("Suspend VF 2", pf.suspend(id2)?, 0)?;
        let state = pf.get_state(id1)?;
        let s = State::parse(&state)?;
        let (cc, csts, flags) = (
            le32(&s.vendor, vs::CC),
            le32(&s.vendor, vs::CSTS),
            s.vendor[vs::FLAGS],
        );
        ensure(cc & 1 == 1 && csts & 3 == 2 && flags == 4, || {
            format!("VF 1 after a failed start: CC {cc:#x} CSTS {csts:#x} flags {flags:#x}")
        })?;
        set_and_compare(pf, id2, &state, "failed start, VF 1 -> VF 2")?;
        expect("Resume VF 2", pf.resume(id2)?, 0)?;
        expect("Resume VF 1", pf.resume(id1)?, 0)?;
        ensure(c2.cc() & 1 == 1 && c2.csts() & 3 == 2, || {
            format!(
                "VF 2 after the failed start's state: CC {:#x} CSTS {:#x}",
                c2.cc(),
                c2.csts()
            )
        })?;
        // Both come back with a reset.
        for c in [&mut c1, &mut c2] {
            c.reset_device()?;
            c.reenable()?;
        }
        pf.alive()
    })
}
