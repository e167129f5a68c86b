// SPDX-License-Identifier: GPL-2.0

//! The migration commands' errors: each refused with the right status, changing nothing.

use super::*;

/// Statuses of the commands themselves: not suspended, already suspended, unknown
/// controller, bad selects and fields, multi-part sequence errors.
pub(super) fn command_errors(env: &Env) -> Result<Vec<Report>, String> {
    with_pair(env, |pf, [id1, id2], vfs| {
        let _clients = Client::open_many(&[&vfs[0].bdf, &vfs[1].bdf], Path::Container)?;
        let pf_cntlid = le16(&pf.identify(1)?, 78);
        let expect = |what: &str, got: u16, want: u16| {
            ensure(got == want, || {
                format!("{what}: status {got:#x}, want {want:#x}")
            })
        };
        // Not suspended.
        expect("Resume of a running VF", pf.resume(id1)?, SC_NOT_SUSPENDED)?;
        let (d, _) = pf.get_state_at(id1, 0, 48)?;
        expect("Get of a running VF", d.status, SC_NOT_SUSPENDED)?;
        // Take a state from VF 2 to have something valid to set.
        expect("Suspend VF 2", pf.suspend(id2)?, 0)?;
        let state = pf.get_state(id2)?;
        expect(
            "Set into a running VF",
            pf.set_entire(id1, &state)?,
            SC_NOT_SUSPENDED,
        )?;
        // Suspend twice.
        expect("second Suspend", pf.suspend(id2)?, SC_SUSPENDED)?;
        // Controllers that are not this primary's secondaries.
        for bad in [pf_cntlid, 0xffff, id2 + 100] {
            expect(
                &format!("Suspend of cntlid {bad}"),
                pf.suspend(bad)?,
                SC_INVALID_CTRL_ID,
            )?;
            let (d, _) = pf.get_state_at(bad, 0, 48)?;
            expect(
                &format!("Get of cntlid {bad}"),
                d.status,
                SC_INVALID_CTRL_ID,
            )?;
            expect(
                &format!("Set into cntlid {bad}"),
                pf.set_entire(bad, &state)?,
                SC_INVALID_CTRL_ID,
            )?;
        }
        // Bad selects and fields.
        expect(
            "Migration Send SEL 3",
            pf.send(3, id2, 0)?,
            SC_INVALID_FIELD,
        )?;
        let d = pf.admin(
            MIGRATION_RECV,
            [1, u32::from(id2), 0, 0, 0, 11],
            &mut [0u8; 48],
        )?;
        expect("Migration Receive SEL 1", d.status, SC_INVALID_FIELD)?;
        expect(
            "Suspend type 2",
            pf.send(SEL_SUSPEND, id1, 2)?,
            SC_INVALID_FIELD,
        )?;
        expect(
            "Set with CSVI 1",
            pf.set_part(id2, SEQ_ENTIRE, 0, &state, 1, 1)?,
            SC_INVALID_FIELD,
        )?;
        expect(
            "Set with CSUUIDI 2",
            pf.set_part(id2, SEQ_ENTIRE, 0, &state, 0, 2)?,
            SC_INVALID_FIELD,
        )?;
        let d = pf.admin(
            MIGRATION_RECV,
            [1 << 16, u32::from(id2) | 1 << 16, 0, 0, 0, 11],
            &mut [0u8; 48],
        )?;
        expect("Get with CSVI 1", d.status, SC_INVALID_FIELD)?;
        let (d, _) = pf.get_state_at(id2, 2, 48)?;
        expect("Get at an unaligned offset", d.status, SC_INVALID_FIELD)?;
        let (d, _) = pf.get_state_at(id2, 1 << 20, 48)?;
        expect("Get beyond the state", d.status, SC_INVALID_FIELD)?;
        expect(
            "Set entire at offset 4",
            pf.set_part(id2, SEQ_ENTIRE, 4, &state, 0, 1)?,
            SC_INVALID_FIELD,
        )?;
        // Multi-part sequences out of order.
        expect(
            "a middle part without a first",
            pf.set_part(id2, SEQ_MIDDLE, 0, &state[..64], 0, 1)?,
            SC_SEQ_ERROR,
        )?;
        expect(
            "a last part without a first",
            pf.set_part(id2, SEQ_LAST, 0, &state, 0, 1)?,
            SC_SEQ_ERROR,
        )?;
        expect(
            "first part",
            pf.set_part(id2, SEQ_FIRST, 0, &state[..64], 0, 1)?,
            0,
        )?;
        expect(
            "a last part with a gap",
            pf.set_part(id2, SEQ_LAST, 68, &state[68..], 0, 1)?,
            SC_INVALID_FIELD,
        )?;
        // The gap ended the sequence.
        expect(
            "a last part after the sequence ended",
            pf.set_part(id2, SEQ_LAST, 64, &state[64..], 0, 1)?,
            SC_SEQ_ERROR,
        )?;
        expect(
            "first part",
            pf.set_part(id2, SEQ_FIRST, 0, &state[..64], 0, 1)?,
            0,
        )?;
        expect(
            "a part ending beyond 1 MiB",
            pf.set_part(id2, SEQ_MIDDLE, (1 << 20) - 32, &state[..64], 0, 1)?,
            SC_INVALID_FIELD,
        )?;
        // A whole sequence still works, and Resume runs the VF again.
        let st = pf.set_parts(id2, &state, &[64, 128])?;
        expect("Set in three parts", st, 0)?;
        expect("Resume VF 2", pf.resume(id2)?, 0)?;
        let (d, _) = pf.get_state_at(id2, 0, 48)?;
        expect("Get after Resume", d.status, SC_NOT_SUSPENDED)?;
        pf.alive()
    })
}
