// SPDX-License-Identifier: GPL-2.0

//! The primary controller announces the live-migration commands; a secondary has none.

use super::*;

/// The primary announces HMLMS, one state format (CNS 20h) and both commands in its
/// Commands Supported and Effects log; a secondary controller has none of it and refuses
/// both opcodes.
pub(super) fn identify_and_effects(env: &Env) -> Result<Vec<Report>, String> {
    with_pair(env, |pf, _ids, vfs| {
        let id = pf.identify(1)?;
        let oacs = le16(&id, 256);
        ensure(oacs & 1 << 11 != 0, || {
            format!("PF OACS {oacs:#x} lacks HMLMS")
        })?;
        let fmts = pf.identify(0x20)?;
        ensure(fmts[0] == 1 && fmts[1] == 1 && le16(&fmts, 2) == 0, || {
            format!(
                "CNS 20h: NV {} NUUID {} VERS[0] {:#x}",
                fmts[0],
                fmts[1],
                le16(&fmts, 2)
            )
        })?;
        ensure(fmts[4..20] == VENDOR_UUID, || {
            format!("CNS 20h UUID[0] {:02x?}", &fmts[4..20])
        })?;
        ensure(fmts[20..].iter().all(|&b| b == 0), || {
            "CNS 20h has data after UUID[0]".into()
        })?;
        // Commands Supported and Effects (log 05h): admin opcodes at 4 bytes each.
        let mut log = vec![0u8; 4096];
        let numdl = (4096 / 4 - 1) << 16;
        let d = pf.admin(GET_LOG_PAGE, [0x05 | numdl, 0, 0, 0, 0, 0], &mut log)?;
        ensure(d.status == 0, || format!("effects log: {d:?}"))?;
        for op in [MIGRATION_SEND, MIGRATION_RECV] {
            let acs = le32(&log, 4 * usize::from(op));
            ensure(acs & 1 == 1, || format!("ACS[{op:#x}] = {acs:#x}"))?;
        }

        // The secondary controller, through its own admin queue.
        let mut c = Client::open(&vfs[0].bdf, Path::Container)?;
        let (st, vf_id) = c.identify_raw(1)?;
        let vf_oacs = le16(&vf_id, 256);
        ensure(st == 0 && vf_oacs & 1 << 11 == 0, || {
            format!("VF Identify: status {st:#x}, OACS {vf_oacs:#x}")
        })?;
        let (st, _) = c.identify_raw(0x20)?;
        ensure(st & 0x7ff == SC_INVALID_FIELD, || {
            format!("VF Identify CNS 20h: status {st:#x}")
        })?;
        for op in [MIGRATION_SEND, MIGRATION_RECV] {
            for sel in 0..3u32 {
                let cqe = c.execute(Q::Admin, Client::sqe(op, 0, 0, sel, 1, 0))?;
                ensure(cqe.status & 0x7ff == SC_INVALID_OPCODE, || {
                    format!("VF: opcode {op:#x} SEL {sel}: status {:#x}", cqe.status)
                })?;
            }
        }
        Ok(())
    })
}
