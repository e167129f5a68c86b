// SPDX-License-Identifier: GPL-2.0

//! The test device model: NVMe live migration (a TP4159 subset) in the L0 QEMU's emulated
//! controller, driven through the PF's admin passthrough (`/dev/rnvme0`), with two VFs in
//! vfio mode driven by the userspace VFIO client in one container (one DMA mapping, the
//! same IOVAs for both). A VF is suspended with commands queued on it, its state moves to
//! the other VF, and the queued commands complete there; malformed states are refused
//! with the right status and change nothing; a VF cannot send the migration commands.

use std::{
    fs,
    os::fd::AsRawFd,
    time::{Duration, Instant},
};

use crate::fixture::{check_mode, with_loaded};
use crate::{
    disk::pattern,
    harness::{ensure, Env, Report, Test},
    module,
    nvme_ioctl::{Cmd, ADMIN_CMD},
    pci::Function,
    sriov::{list_secondary, set_numvfs, vfs, write_attr, CHARDEV},
    vfio_client::{Client, Cqe, Path, Q, QDEPTH},
};

mod command_errors;
mod identify;
mod malformed_state;
mod migrate_queued_io;
mod never_enabled;
mod pending_completions;
mod queued;
mod set_numd;

use command_errors::command_errors;
use identify::identify_and_effects;
use malformed_state::malformed_state;
use migrate_queued_io::migrate_queued_io;
use never_enabled::never_enabled;
use pending_completions::pending_completions;
use queued::*;
use set_numd::set_numd;

/// The shared namespace both VFs get.
const NSID: u32 = 2;

// Admin opcodes and selects.
const IDENTIFY: u8 = 0x06;
const GET_LOG_PAGE: u8 = 0x02;
const AER: u8 = 0x0c;
const MIGRATION_SEND: u8 = 0x41;
const MIGRATION_RECV: u8 = 0x42;
const SEL_SUSPEND: u32 = 0;
const SEL_RESUME: u32 = 1;
const SEL_SET: u32 = 2;
const STYPE_SUSPEND: u32 = 1;
const SEQ_MIDDLE: u32 = 0;
const SEQ_FIRST: u32 = 1;
const SEQ_LAST: u32 = 2;
const SEQ_ENTIRE: u32 = 3;

// Status codes (SCT << 8 | SC).
const SC_INVALID_OPCODE: u16 = 0x001;
const SC_INVALID_FIELD: u16 = 0x002;
const SC_INVALID_PRP_OFFSET: u16 = 0x013;
const SC_SEQ_ERROR: u16 = 0x00c;
const SC_INVALID_CQID: u16 = 0x100;
const SC_INVALID_QID: u16 = 0x101;
const SC_QSIZE: u16 = 0x102;
const SC_INVALID_VECTOR: u16 = 0x108;
const SC_INVALID_CTRL_ID: u16 = 0x11f;
const SC_SUSPENDED: u16 = 0x139;
const SC_NOT_SUSPENDED: u16 = 0x13a;

/// The UUID of the model's vendor specific state section (Identify CNS 20h).
const VENDOR_UUID: [u8; 16] = [
    0x46, 0xae, 0x03, 0xc3, 0x53, 0x84, 0x44, 0x21, 0xb4, 0x77, 0x21, 0x06, 0xba, 0x87, 0x98, 0x6e,
];

/// How long a suspended controller must show no completion.
const QUIET: Duration = Duration::from_millis(500);
/// How long commands may take once the controller runs again.
const COMPLETE: Duration = Duration::from_secs(10);

/// The live-migration model tests.
pub fn tests() -> Vec<Test> {
    vec![
        Test {
            name: "lm-device/identify-and-effects",
            groups: &["lm-device"],
            run: identify_and_effects,
        },
        Test {
            name: "lm-device/migrate-queued-io",
            groups: &["lm-device"],
            run: migrate_queued_io,
        },
        Test {
            name: "lm-device/pending-completions",
            groups: &["lm-device"],
            run: pending_completions,
        },
        Test {
            name: "lm-device/command-errors",
            groups: &["lm-device"],
            run: command_errors,
        },
        Test {
            name: "lm-device/malformed-state",
            groups: &["lm-device"],
            run: malformed_state,
        },
        Test {
            name: "lm-device/set-numd",
            groups: &["lm-device"],
            run: set_numd,
        },
        Test {
            name: "lm-device/never-enabled",
            groups: &["lm-device"],
            run: never_enabled,
        },
    ]
}

// --- the PF's admin passthrough ------------------------------------------------------

/// The PF's controller device.
struct Pf {
    file: fs::File,
}

/// What an admin command returned: its status (SCT and SC) and completion DW0.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Done {
    status: u16,
    dw0: u32,
}

impl Pf {
    fn open() -> Result<Self, String> {
        let file = fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(CHARDEV)
            .map_err(|e| format!("{CHARDEV}: {e}"))?;
        Ok(Self { file })
    }

    /// Sends admin command `opcode` with CDW10 to 15 and data `buf` (its direction is the
    /// opcode's).
    fn admin(&self, opcode: u8, cdw: [u32; 6], buf: &mut [u8]) -> Result<Done, String> {
        let mut cmd = if buf.is_empty() {
            Cmd::raw(opcode, 0, 0, 0, cdw[0])
        } else {
            Cmd::new(opcode, 0, buf, cdw[0])
        };
        for (i, v) in cdw.iter().enumerate().skip(1) {
            cmd = cmd.cdw(10 + i, *v);
        }
        let rc = cmd
            .send(self.file.as_raw_fd(), ADMIN_CMD)
            .map_err(|errno| format!("admin opcode {opcode:#x}: errno {errno}"))?;
        let dw0 = cmd.result();
        Ok(Done {
            status: (rc & 0x7ff) as u16,
            dw0,
        })
    }

    fn identify(&self, cns: u32) -> Result<Vec<u8>, String> {
        let mut buf = vec![0u8; 4096];
        let d = self.admin(IDENTIFY, [cns, 0, 0, 0, 0, 0], &mut buf)?;
        ensure(d.status == 0, || {
            format!("Identify CNS {cns:#x}: status {:#x}", d.status)
        })?;
        Ok(buf)
    }

    /// Migration Send with select `sel` for secondary controller `cntlid`.
    fn send(&self, sel: u32, cntlid: u16, cdw11_hi: u32) -> Result<u16, String> {
        let cdw11 = u32::from(cntlid) | cdw11_hi << 16;
        Ok(self
            .admin(MIGRATION_SEND, [sel, cdw11, 0, 0, 0, 0], &mut [])?
            .status)
    }

    fn suspend(&self, cntlid: u16) -> Result<u16, String> {
        self.send(SEL_SUSPEND, cntlid, STYPE_SUSPEND)
    }

    fn resume(&self, cntlid: u16) -> Result<u16, String> {
        self.send(SEL_RESUME, cntlid, 0)
    }

    /// Get Controller State: `len` bytes (a multiple of 4) from byte `offset`.
    fn get_state_at(
        &self,
        cntlid: u16,
        offset: u64,
        len: usize,
    ) -> Result<(Done, Vec<u8>), String> {
        let mut buf = vec![0u8; len];
        let numd = (len / 4 - 1) as u32;
        // CSUUIDI 1: the model's vendor format.
        let cdw11 = u32::from(cntlid) | 1 << 16;
        let d = self.admin(
            MIGRATION_RECV,
            [0, cdw11, offset as u32, (offset >> 32) as u32, 0, numd],
            &mut buf,
        )?;
        Ok((d, buf))
    }

    /// The whole controller state of suspended `cntlid`: the header first, then the
    /// size it announces.
    fn get_state(&self, cntlid: u16) -> Result<Vec<u8>, String> {
        let (d, hdr) = self.get_state_at(cntlid, 0, 48)?;
        ensure(d.status == 0, || {
            format!("Get Controller State: status {:#x}", d.status)
        })?;
        ensure(d.dw0 & 1 == 1, || format!("CSUP clear: DW0 {:#x}", d.dw0))?;
        let len = 48 + 4 * (le32(&hdr, 16) as usize + le32(&hdr, 32) as usize);
        ensure(len <= 16 << 10, || format!("a state of {len} bytes"))?;
        let (d, state) = self.get_state_at(cntlid, 0, len)?;
        ensure(d.status == 0 && d.dw0 & 1 == 1, || {
            format!("Get Controller State of {len} bytes: {d:?}")
        })?;
        Ok(state)
    }

    /// Set Controller State part `seqind` at `offset`, CSVI `csvi`, CSUUIDI `csuuidi`:
    /// all of `data`, NUMD its number of dwords (Migration Send's NUMD is not 0's based).
    fn set_part(
        &self,
        cntlid: u16,
        seqind: u32,
        offset: u64,
        data: &[u8],
        csvi: u32,
        csuuidi: u32,
    ) -> Result<u16, String> {
        let numd = (data.len() / 4) as u32;
        self.set_part_numd(cntlid, seqind, offset, data, numd, csvi, csuuidi)
    }

    /// Set Controller State part `seqind` at `offset` with NUMD `numd` whatever `data`
    /// holds (the data buffer is `data`).
    #[allow(clippy::too_many_arguments)]
    fn set_part_numd(
        &self,
        cntlid: u16,
        seqind: u32,
        offset: u64,
        data: &[u8],
        numd: u32,
        csvi: u32,
        csuuidi: u32,
    ) -> Result<u16, String> {
        let mut buf = data.to_vec();
        let cdw10 = SEL_SET | seqind << 16;
        let cdw11 = u32::from(cntlid) | csvi << 16 | csuuidi << 24;
        Ok(self
            .admin(
                MIGRATION_SEND,
                [cdw10, cdw11, offset as u32, (offset >> 32) as u32, 0, numd],
                &mut buf,
            )?
            .status)
    }

    /// Set Controller State in one transfer.
    fn set_entire(&self, cntlid: u16, state: &[u8]) -> Result<u16, String> {
        self.set_part(cntlid, SEQ_ENTIRE, 0, state, 0, 1)
    }

    /// Set Controller State in parts cut at `cuts` (dword multiples): first, middles,
    /// last.
    fn set_parts(&self, cntlid: u16, state: &[u8], cuts: &[usize]) -> Result<u16, String> {
        let mut bounds = vec![0];
        bounds.extend_from_slice(cuts);
        bounds.push(state.len());
        let parts = bounds.len() - 1;
        for i in 0..parts {
            let seq = match i {
                0 => SEQ_FIRST,
                i if i == parts - 1 => SEQ_LAST,
                _ => SEQ_MIDDLE,
            };
            let (from, to) = (bounds[i], bounds[i + 1]);
            let st = self.set_part(cntlid, seq, from as u64, &state[from..to], 0, 1)?;
            if st != 0 {
                return Ok(st);
            }
        }
        Ok(0)
    }

    /// Fails unless the controller still answers Identify (QEMU is alive).
    fn alive(&self) -> Result<(), String> {
        let id = self.identify(1)?;
        ensure(&id[24..38] == b"QEMU NVMe Ctrl", || {
            "Identify Controller after a refused command has another model name".into()
        })
    }
}

fn le16(b: &[u8], at: usize) -> u16 {
    u16::from_le_bytes([b[at], b[at + 1]])
}

fn le32(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

fn le64(b: &[u8], at: usize) -> u64 {
    u64::from(le32(b, at)) | u64::from(le32(b, at + 4)) << 32
}

fn put16(b: &mut [u8], at: usize, v: u16) {
    b[at..at + 2].copy_from_slice(&v.to_le_bytes());
}

fn put32(b: &mut [u8], at: usize, v: u32) {
    b[at..at + 4].copy_from_slice(&v.to_le_bytes());
}

fn put64(b: &mut [u8], at: usize, v: u64) {
    b[at..at + 8].copy_from_slice(&v.to_le_bytes());
}

// --- the controller state, as Documentation/lm-device.rst describes it -----------------

/// Offsets in the vendor specific section.
mod vs {
    pub const MAGIC: usize = 0;
    pub const VER: usize = 4;
    pub const LEN: usize = 8;
    pub const NAER: usize = 12;
    pub const NPEND: usize = 16;
    pub const NEVT: usize = 14;
    pub const CC: usize = 20;
    pub const CSTS: usize = 24;
    pub const AQA: usize = 28;
    pub const ASQ: usize = 32;
    pub const ACQ: usize = 40;
    pub const ASQ_HEAD: usize = 52;
    pub const ASQ_TAIL: usize = 54;
    pub const FLAGS: usize = 61;
    pub const FEAT_NQ: usize = 80;
    pub const FEAT_TS: usize = 112;
    pub const FEAT_HBS: usize = 120;
    pub const CHANGED: usize = 136;
    pub const ATTACHED: usize = 168;
    pub const FIXED: usize = 200;
}

/// A controller state split into its parts.
#[derive(Clone, Debug)]
struct State {
    sqs: Vec<[u8; 24]>,
    cqs: Vec<[u8; 24]>,
    vendor: Vec<u8>,
}

impl State {
    fn parse(b: &[u8]) -> Result<Self, String> {
        ensure(b.len() >= 56, || format!("state of {} bytes", b.len()))?;
        let nvmecss = le32(b, 16) as usize;
        let vss = le32(b, 32) as usize;
        ensure(48 + 4 * (nvmecss + vss) == b.len(), || {
            format!("sizes {nvmecss} + {vss} dwords for {} bytes", b.len())
        })?;
        let (niosq, niocq) = (le16(b, 50) as usize, le16(b, 52) as usize);
        ensure(4 * nvmecss == 8 + 24 * (niosq + niocq), || {
            format!("NVMECSS {nvmecss} for {niosq} SQs and {niocq} CQs")
        })?;
        let entry = |i: usize| -> [u8; 24] {
            let mut e = [0u8; 24];
            e.copy_from_slice(&b[56 + 24 * i..80 + 24 * i]);
            e
        };
        Ok(Self {
            sqs: (0..niosq).map(entry).collect(),
            cqs: (niosq..niosq + niocq).map(entry).collect(),
            vendor: b[48 + 4 * nvmecss..].to_vec(),
        })
    }

    /// The state's bytes, with the header sizes computed.
    fn build(&self) -> Vec<u8> {
        let mut b = vec![0u8; 56];
        b[2] = 1;
        let nvmecss = (8 + 24 * (self.sqs.len() + self.cqs.len())) / 4;
        put32(&mut b, 16, nvmecss as u32);
        put32(&mut b, 32, (self.vendor.len() / 4) as u32);
        put16(&mut b, 50, self.sqs.len() as u16);
        put16(&mut b, 52, self.cqs.len() as u16);
        for e in self.sqs.iter().chain(&self.cqs) {
            b.extend_from_slice(e);
        }
        b.extend_from_slice(&self.vendor);
        b
    }

    /// Sets the vendor section's length field to its size.
    fn fix_vendor_len(&mut self) {
        let len = self.vendor.len() as u32;
        put32(&mut self.vendor, vs::LEN, len);
    }
}

/// A state with the fields that move with time (the timestamp) cleared, to compare two
/// states of one controller.
fn without_clock(b: &[u8]) -> Vec<u8> {
    let mut v = b.to_vec();
    let nvmecss = le32(b, 16) as usize;
    let ts = 48 + 4 * nvmecss + vs::FEAT_TS;
    if ts + 8 <= v.len() {
        put64(&mut v, ts, 0);
    }
    v
}

// --- setup ----------------------------------------------------------------------------

/// Two VFs with the shared namespace attached to both secondary controllers, in vfio
/// mode; `f` gets the PF device, both secondary controller IDs and both VFs. Afterwards
/// the namespace is detached, the VFs go back to nvme mode and are disabled.
fn with_pair(
    env: &Env,
    f: impl FnOnce(&Pf, [u16; 2], &[Function]) -> Result<(), String>,
) -> Result<Vec<Report>, String> {
    with_loaded(env, |pf| {
        let vf_mode = pf.dir().join("sriov_vf_mode");
        write_attr(&vf_mode, "vfio").map_err(|e| format!("sriov_vf_mode=vfio: errno {e}"))?;
        let result = (|| {
            set_numvfs(pf, 2)?;
            let vfs = vfs(pf)?;
            ensure(vfs.len() == 2, || format!("{} VFs", vfs.len()))?;
            let sec = list_secondary()?;
            let scid = |vfn: u64| {
                sec.iter()
                    .find(|s| s.vfn == vfn && s.online)
                    .map(|s| s.scid as u16)
                    .ok_or_else(|| format!("no online secondary controller for VF {vfn}"))
            };
            let ids = [scid(1)?, scid(2)?];
            let ns = NSID.to_string();
            for id in ids {
                module::run(
                    "nvme",
                    &["attach-ns", CHARDEV, "-n", &ns, "-c", &id.to_string()],
                )?;
            }
            for vf in &vfs {
                check_mode(vf, "vfio")?;
            }
            let pfdev = Pf::open()?;
            let r = f(&pfdev, ids, &vfs);
            for id in ids {
                // A controller the test detached already refuses; that is fine.
                let _ = module::run(
                    "nvme",
                    &["detach-ns", CHARDEV, "-n", &ns, "-c", &id.to_string()],
                );
            }
            r
        })();
        let _ = write_attr(&vf_mode, "nvme");
        result.and(set_numvfs(pf, 0))
    })
}
