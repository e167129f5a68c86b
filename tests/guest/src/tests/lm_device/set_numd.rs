// SPDX-License-Identifier: GPL-2.0

//! Migration Send's NUMD is the number of dwords the command carries (not 0's based,
//! unlike Migration Receive's): a Set Controller State of exactly the state's length, and
//! parts that line up, each starting where the previous one's NUMD ended.

use super::*;

/// Sets VF 2's own state back into it: in one transfer of exactly its length (NUMD = its
/// dwords); with NUMD one short (a client counting from zero) and one long, both refused
/// and changing nothing; in parts of one dword, of odd sizes and with an empty part, each
/// at the offset where the previous one ended.
pub(super) fn set_numd(env: &Env) -> Result<Vec<Report>, String> {
    with_pair(env, |pf, [_, id2], vfs| {
        let mut clients = Client::open_many(&[&vfs[0].bdf, &vfs[1].bdf], Path::Container)?;
        let c2 = clients.get_mut(1).ok_or("no client for VF 2")?;
        // Queues, so that the state has entries after the header (and its last dword is
        // the vendor section's, which a lost dword would cut).
        c2.create_io_queue()?;
        let expect = |what: &str, got: u16, want: u16| {
            ensure(got == want, || {
                format!("{what}: status {got:#x}, want {want:#x}")
            })
        };
        expect("Suspend VF 2", pf.suspend(id2)?, 0)?;
        let state = pf.get_state(id2)?;
        let dwords = (state.len() / 4) as u32;
        let unchanged = |what: &str| -> Result<(), String> {
            ensure(
                without_clock(&pf.get_state(id2)?) == without_clock(&state),
                || format!("{what}: VF 2's state changed"),
            )
        };

        // Exactly the state's length: NUMD is the number of dwords.
        expect(
            &format!("Set of {} bytes with NUMD {dwords}", state.len()),
            pf.set_part_numd(id2, SEQ_ENTIRE, 0, &state, dwords, 0, 1)?,
            0,
        )?;
        unchanged("Set of exactly the state")?;

        // A client counting from zero sends one dword less than the state: refused (the
        // sizes in the header no longer add up), nothing loaded.
        expect(
            "Set with NUMD one short (0's based)",
            pf.set_part_numd(id2, SEQ_ENTIRE, 0, &state, dwords - 1, 0, 1)?,
            SC_INVALID_FIELD,
        )?;
        unchanged("Set with NUMD one short")?;
        // One dword more than the state: refused too.
        let mut longer = state.clone();
        longer.extend_from_slice(&[0; 4]);
        expect(
            "Set with NUMD one long",
            pf.set_part_numd(id2, SEQ_ENTIRE, 0, &longer, dwords + 1, 0, 1)?,
            SC_INVALID_FIELD,
        )?;
        unchanged("Set with NUMD one long")?;

        // Parts that line up: the first of one dword, then odd sizes, the last of one
        // dword; every part at the offset where the previous one ended (its NUMD * 4).
        let len = state.len();
        let cuts = [4, 52, 100, len - 4];
        expect(
            "Set in parts cut at 4, 52, 100 and 4 before the end",
            pf.set_parts(id2, &state, &cuts)?,
            0,
        )?;
        unchanged("Set in lined-up parts")?;
        // One dword per part.
        let every: Vec<usize> = (1..len / 4).map(|i| 4 * i).collect();
        expect(
            "Set one dword per part",
            pf.set_parts(id2, &state, &every)?,
            0,
        )?;
        unchanged("Set one dword per part")?;
        // An empty part (NUMD 0) moves nothing and keeps the sequence where it was.
        expect(
            "first part",
            pf.set_part(id2, SEQ_FIRST, 0, &state[..64], 0, 1)?,
            0,
        )?;
        expect(
            "an empty middle part",
            pf.set_part_numd(id2, SEQ_MIDDLE, 64, &[], 0, 0, 1)?,
            0,
        )?;
        expect(
            "the last part after the empty one",
            pf.set_part(id2, SEQ_LAST, 64, &state[64..], 0, 1)?,
            0,
        )?;
        unchanged("Set with an empty part")?;
        // Parts that a 0's based count would place: the second one starts a dword after
        // the end of the first. The gap is refused and ends the sequence.
        expect(
            "first part",
            pf.set_part(id2, SEQ_FIRST, 0, &state[..64], 0, 1)?,
            0,
        )?;
        expect(
            "a last part one dword after the first ended",
            pf.set_part(id2, SEQ_LAST, 68, &state[68..], 0, 1)?,
            SC_INVALID_FIELD,
        )?;
        unchanged("a refused part")?;

        expect("Resume VF 2", pf.resume(id2)?, 0)?;
        // VF 2 runs its queues again: a write completes.
        let lba = c2.lba_size(NSID)?;
        c2.write_page(NSID, 80 << 20, lba, &pattern(4096, 0x5e7))?;
        pf.alive()
    })
}
