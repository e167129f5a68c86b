// SPDX-License-Identifier: GPL-2.0

//! The live-migration admin commands of TP4159 that a primary controller runs for one of
//! its secondary controllers: Migration Send (Suspend, Resume, Set Controller State) and
//! Migration Receive (Get Controller State).
//!
//! Field layout (libnvme `nvme_lm_*`): CDW10 bits 7:0 select the operation (SEL), bits
//! 31:16 are the management operation specific field (MOS); CDW11 bits 15:0 name the
//! secondary controller (CNTLID); offsets are in CDW12/13 and lengths in CDW15 (NUMD).
//!
//! NUMD counts differently in the two commands: Migration Receive's is 0's based (the
//! transfer is NUMD + 1 dwords), Migration Send's is the number of dwords itself (a
//! Set Controller State part of N dwords has NUMD N). The evidence for both is in
//! `Documentation/lm-device.rst` ("NUMD").

use super::super::command::Command;

/// Migration Send.
pub const MIGRATION_SEND: u8 = 0x41;
/// Migration Receive.
pub const MIGRATION_RECEIVE: u8 = 0x42;

/// Migration Send SEL: Suspend.
const SEL_SUSPEND: u32 = 0;
/// Migration Send SEL: Resume.
const SEL_RESUME: u32 = 1;
/// Migration Send SEL: Set Controller State.
const SEL_SET_STATE: u32 = 2;
/// Migration Receive SEL: Get Controller State.
const SEL_GET_STATE: u32 = 0;

/// Suspend type (CDW11 bits 23:16 of Suspend).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum SuspendType {
    /// Notification that a suspend follows; the controller keeps running.
    Notification = 0,
    /// Suspend: the controller fetches no commands and raises no interrupts.
    Suspend = 1,
}

/// Which part of a multi-command Set Controller State transfer a command carries
/// (SEQIND, MOS bits 1:0).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum Sequence {
    /// Neither the first nor the last part.
    Middle = 0,
    /// The first part of several.
    First = 1,
    /// The last part of several.
    Last = 2,
    /// The whole state in one command.
    Entire = 3,
}

impl Sequence {
    /// The indicator of part `index` (0-based) of a transfer in `parts` parts.
    pub fn of(index: usize, parts: usize) -> Self {
        match (index == 0, index + 1 >= parts) {
            (true, true) => Self::Entire,
            (true, false) => Self::First,
            (false, true) => Self::Last,
            (false, false) => Self::Middle,
        }
    }
}

/// The controller state format a Get or Set Controller State uses: indexes into the
/// Supported Controller State Formats list (Identify CNS 0x20, see
/// [`super::formats`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FormatIndex {
    /// Controller State Version Index (CSVI): index into the list of versions.
    pub version: u8,
    /// Controller State UUID Index (CSUUIDI): 1-based index into the list of UUIDs of
    /// vendor-specific formats, 0 for none.
    pub uuid: u8,
}

/// Migration Receive's NUMD for a transfer of `bytes` bytes (a non-zero multiple of 4):
/// 0's based, the number of dwords minus one.
fn receive_numd(bytes: u32) -> Option<u32> {
    (bytes != 0 && bytes & 3 == 0).then(|| bytes / 4 - 1)
}

/// Migration Send's NUMD for a transfer of `bytes` bytes (a non-zero multiple of 4): the
/// number of dwords, not 0's based.
fn send_numd(bytes: u32) -> Option<u32> {
    (bytes != 0 && bytes & 3 == 0).then_some(bytes / 4)
}

/// One Set Controller State command of a transfer: which part it is, where it goes in the
/// state and how many bytes it carries.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SetPart {
    /// Its sequence indicator.
    pub seq: Sequence,
    /// Byte offset of the part in the state (a multiple of 4).
    pub offset: u64,
    /// Bytes of the part (a non-zero multiple of 4).
    pub bytes: u32,
}

/// The Set Controller State commands that carry a state of `len` bytes in pieces of at
/// most `chunk` bytes: consecutive, each starting where the previous one ended, the last
/// ending at `len`. `None` unless both are non-zero multiples of 4 (and `chunk` fits a
/// command).
pub fn set_parts(len: usize, chunk: usize) -> Option<impl Iterator<Item = SetPart>> {
    if len == 0 || len & 3 != 0 || chunk == 0 || chunk & 3 != 0 || u32::try_from(chunk).is_err() {
        return None;
    }
    let parts = len.div_ceil(chunk);
    Some((0..parts).map(move |i| {
        let offset = i * chunk;
        SetPart {
            seq: Sequence::of(i, parts),
            offset: offset as u64,
            bytes: (len - offset).min(chunk) as u32,
        }
    }))
}

impl Command {
    /// Migration Send Suspend of secondary controller `cntlid`.
    pub fn lm_suspend(cntlid: u16, stype: SuspendType) -> Self {
        Self::new(MIGRATION_SEND)
            .with_cdw(10, SEL_SUSPEND)
            .with_cdw(11, u32::from(cntlid) | (u32::from(stype as u8) << 16))
    }

    /// Migration Send Resume of secondary controller `cntlid`.
    pub fn lm_resume(cntlid: u16) -> Self {
        Self::new(MIGRATION_SEND)
            .with_cdw(10, SEL_RESUME)
            .with_cdw(11, u32::from(cntlid))
    }

    /// Migration Send Set Controller State: `bytes` bytes (a non-zero multiple of 4) of
    /// state in format `format`, to go at `offset` of the state of secondary controller
    /// `cntlid`; part `seq` of the transfer. NUMD is `bytes / 4` (Migration Send's is not
    /// 0's based). The data pointer is set by the caller.
    pub fn lm_set_state(
        cntlid: u16,
        format: FormatIndex,
        seq: Sequence,
        offset: u64,
        bytes: u32,
    ) -> Option<Self> {
        Some(
            Self::new(MIGRATION_SEND)
                .with_cdw(10, SEL_SET_STATE | (u32::from(seq as u8) << 16))
                .with_cdw(
                    11,
                    u32::from(cntlid)
                        | (u32::from(format.version) << 16)
                        | (u32::from(format.uuid) << 24),
                )
                .with_cdw(12, offset as u32)
                .with_cdw(13, (offset >> 32) as u32)
                .with_cdw(15, send_numd(bytes)?),
        )
    }

    /// Set Controller State part `part` (of [`set_parts`]) for secondary controller
    /// `cntlid` in format `format`.
    pub fn lm_set_state_part(cntlid: u16, format: FormatIndex, part: SetPart) -> Option<Self> {
        Self::lm_set_state(cntlid, format, part.seq, part.offset, part.bytes)
    }

    /// Migration Receive Get Controller State: `bytes` bytes (a non-zero multiple of 4)
    /// from `offset` of the state of secondary controller `cntlid` in format `format`
    /// (NUMD 0's based: `bytes / 4 - 1`). The completion's DW0 bit 0 says whether the
    /// controller is suspended.
    pub fn lm_get_state(cntlid: u16, format: FormatIndex, offset: u64, bytes: u32) -> Option<Self> {
        Some(
            Self::new(MIGRATION_RECEIVE)
                .with_cdw(10, SEL_GET_STATE | (u32::from(format.version) << 16))
                .with_cdw(11, u32::from(cntlid) | (u32::from(format.uuid) << 16))
                .with_cdw(12, offset as u32)
                .with_cdw(13, (offset >> 32) as u32)
                .with_cdw(15, receive_numd(bytes)?),
        )
    }
}

/// Whether the DW0 of a Get Controller State completion says the controller is suspended
/// (CSUP).
pub fn csup(dw0: u32) -> bool {
    dw0 & 1 != 0
}

/// Command specific status codes of the migration commands (status code type 1).
pub mod status {
    /// The secondary controller is suspended (and the command needs it running).
    pub const CONTROLLER_SUSPENDED: u8 = 0x39;
    /// The secondary controller is not suspended (and the command needs it suspended).
    pub const CONTROLLER_NOT_SUSPENDED: u8 = 0x3a;
    /// Invalid Controller Identifier (CNTLID names no secondary controller of this
    /// primary).
    pub const INVALID_CONTROLLER_ID: u8 = 0x1f;
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::vec::Vec;

    #[test]
    fn suspend_and_resume_name_the_secondary() {
        let s = Command::lm_suspend(0x12, SuspendType::Suspend);
        assert_eq!(s.opcode(), 0x41);
        assert_eq!(s.dw[10], 0);
        assert_eq!(s.dw[11], 0x0001_0012);
        let r = Command::lm_resume(7);
        assert_eq!((r.opcode(), r.dw[10], r.dw[11]), (0x41, 1, 7));
    }

    #[test]
    fn set_state_carries_sequence_format_offset_and_length() {
        let f = FormatIndex {
            version: 0,
            uuid: 1,
        };
        let c = Command::lm_set_state(3, f, Sequence::Last, 0x1_0000_0200, 4096).unwrap();
        assert_eq!(c.opcode(), 0x41);
        assert_eq!(c.dw[10], 2 | (2 << 16));
        assert_eq!(c.dw[11], 3 | (1 << 24));
        assert_eq!((c.dw[12], c.dw[13]), (0x200, 1));
        // Migration Send's NUMD is the number of dwords: 4096 bytes are 1024 dwords.
        assert_eq!(c.dw[15], 1024);
        assert!(Command::lm_set_state(3, f, Sequence::Entire, 0, 0).is_none());
        assert!(Command::lm_set_state(3, f, Sequence::Entire, 0, 6).is_none());
    }

    #[test]
    fn get_state_puts_the_version_in_mos_and_the_uuid_in_cdw11() {
        let f = FormatIndex {
            version: 2,
            uuid: 1,
        };
        let c = Command::lm_get_state(9, f, 48, 8).unwrap();
        assert_eq!(c.opcode(), 0x42);
        assert_eq!(c.dw[10], 2 << 16);
        assert_eq!(c.dw[11], 9 | (1 << 16));
        // Migration Receive's NUMD is 0's based: 8 bytes are 2 dwords, NUMD 1.
        assert_eq!((c.dw[12], c.dw[13], c.dw[15]), (48, 0, 1));
        assert!(csup(1) && !csup(2));
    }

    /// The state of one of the test VM's VFs with one queue pair and nothing pending: 48
    /// header, 8 + 2 * 24 NVMe controller state, 200 vendor bytes.
    const STATE: usize = 48 + 8 + 2 * 24 + 200;

    #[test]
    fn a_set_of_exactly_the_state_s_length_names_every_dword_of_it() {
        let f = FormatIndex {
            version: 0,
            uuid: 1,
        };
        let set = Command::lm_set_state(5, f, Sequence::Entire, 0, STATE as u32).unwrap();
        // 304 bytes are 76 dwords; a 0's based count (75) would lose the last one.
        assert_eq!(set.dw[15] as usize * 4, STATE);
        assert_eq!(set.dw[15], 76);
        // The Get of the same bytes counts from zero.
        let get = Command::lm_get_state(5, f, 0, STATE as u32).unwrap();
        assert_eq!((get.dw[15] as usize + 1) * 4, STATE);
        // A single dword: NUMD 1 to send, 0 to receive.
        assert_eq!(
            Command::lm_set_state(5, f, Sequence::Entire, 0, 4)
                .unwrap()
                .dw[15],
            1
        );
        assert_eq!(Command::lm_get_state(5, f, 0, 4).unwrap().dw[15], 0);
        assert!(Command::lm_get_state(5, f, 0, 0).is_none());
        assert!(Command::lm_get_state(5, f, 0, 2).is_none());
    }

    /// Checks that `parts` carry a state of `len` bytes: consecutive, each at the offset
    /// the previous one ended (as NUMD * 4 of its command says), the sequence indicators
    /// first .. last (or entire), and the commands encoding the same.
    fn check_parts(len: usize, chunk: usize, parts: &[SetPart]) {
        let f = FormatIndex {
            version: 0,
            uuid: 1,
        };
        let mut end = 0u64;
        for (i, p) in parts.iter().enumerate() {
            let c = Command::lm_set_state_part(7, f, *p).unwrap();
            let offset = u64::from(c.dw[12]) | u64::from(c.dw[13]) << 32;
            assert_eq!(offset, end, "part {i} of {len} in {chunk}: offset");
            assert_eq!(offset, p.offset);
            assert_eq!(c.dw[15] * 4, p.bytes, "part {i}: NUMD");
            assert!(p.bytes as usize <= chunk && p.bytes > 0);
            assert_eq!(c.dw[10], 2 | u32::from(p.seq as u8) << 16);
            assert_eq!(p.seq, Sequence::of(i, parts.len()));
            end = offset + u64::from(c.dw[15]) * 4;
        }
        assert_eq!(
            end, len as u64,
            "{len} bytes in parts of {chunk}: the parts end at {end}"
        );
    }

    #[test]
    fn set_parts_line_up() {
        for (len, chunk, n) in [
            (STATE, 64 * 1024, 1),
            (STATE, STATE, 1),
            (STATE, 128, 3),
            (STATE, 4, STATE / 4),
            (STATE, STATE - 4, 2),
            (3 * 1024, 1024, 3),
            (64 * 1024, 64 * 1024, 1),
            (64 * 1024 + 4, 64 * 1024, 2),
        ] {
            let parts: Vec<SetPart> = set_parts(len, chunk).unwrap().collect();
            assert_eq!(parts.len(), n, "{len} bytes in parts of {chunk}");
            check_parts(len, chunk, &parts);
        }
        let one: Vec<SetPart> = set_parts(STATE, 64 * 1024).unwrap().collect();
        assert_eq!(
            one,
            [SetPart {
                seq: Sequence::Entire,
                offset: 0,
                bytes: STATE as u32
            }]
        );
        let three: Vec<SetPart> = set_parts(3 * 1024, 1024).unwrap().collect();
        let seqs: Vec<Sequence> = three.iter().map(|p| p.seq).collect();
        assert_eq!(seqs, [Sequence::First, Sequence::Middle, Sequence::Last]);
        assert_eq!(three[2].offset, 2048);
        assert!(set_parts(0, 1024).is_none());
        assert!(set_parts(STATE + 2, 1024).is_none());
        assert!(set_parts(STATE, 0).is_none());
        assert!(set_parts(STATE, 1022).is_none());
    }

    #[test]
    fn sequence_of_parts() {
        assert_eq!(Sequence::of(0, 1), Sequence::Entire);
        assert_eq!(Sequence::of(0, 3), Sequence::First);
        assert_eq!(Sequence::of(1, 3), Sequence::Middle);
        assert_eq!(Sequence::of(2, 3), Sequence::Last);
    }
}
