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

use crate::{
    disk::pattern,
    harness::{ensure, Env, Report, Test},
    module,
    nvme_ioctl::{Cmd, ADMIN_CMD},
    pci::Function,
    sriov::{list_secondary, set_numvfs, vfs, write_attr, CHARDEV},
    tests::{smoke::with_loaded, vfio::check_mode},
    vfio_client::{Client, Cqe, Path, Q, QDEPTH},
};

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

    /// Set Controller State part `seqind` at `offset`, CSVI `csvi`, CSUUIDI `csuuidi`.
    fn set_part(
        &self,
        cntlid: u16,
        seqind: u32,
        offset: u64,
        data: &[u8],
        csvi: u32,
        csuuidi: u32,
    ) -> Result<u16, String> {
        let mut buf = data.to_vec();
        let numd = (buf.len() / 4).saturating_sub(1) as u32;
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
    pub const FEAT_NQ: usize = 80;
    pub const FEAT_TS: usize = 112;
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

// --- the tests ------------------------------------------------------------------------

/// The primary announces HMLMS, one state format (CNS 20h) and both commands in its
/// Commands Supported and Effects log; a secondary controller has none of it and refuses
/// both opcodes.
fn identify_and_effects(env: &Env) -> Result<Vec<Report>, String> {
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

/// Writes `pages` pages of `seed` patterns through queue `Io` of `c` from byte `at` of the
/// namespace, waiting for each.
fn write_pages(c: &mut Client, lba: usize, at: u64, pages: usize, seed: u64) -> Result<(), String> {
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
fn reap_all(c: &mut Client, q: Q, cids: &[u16]) -> Result<Vec<Cqe>, String> {
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
struct Queued {
    /// Command IDs of the Writes and Reads submitted while suspended.
    cids: Vec<u16>,
    /// Byte offset and seed of every page written (before and during the suspension).
    written: Vec<(u64, u64)>,
    /// Data pages the queued Reads fill, with what they must read.
    reads: Vec<(usize, u64)>,
}

/// Suspends `src` (driven by `c`), queues four Writes and two Reads on it, checks they
/// stay pending and what Get Controller State reports; returns the state.
fn suspend_with_queued_io(
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
fn check_completed_on(c: &mut Client, src: &Client, q: &Queued, lba: usize) -> Result<(), String> {
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

/// The required scenario: I/O on VF 1, Suspend, commands queued on the suspended VF, Get
/// Controller State, Suspend VF 2, Set (in three parts) into VF 2, Resume VF 2: the
/// queued commands complete through VF 2 in the same queue memory. Then back from VF 2 to
/// VF 1 with one transfer. The AER outstanding on VF 1 at the start is outstanding on the
/// destination each time and completes when an event comes.
fn migrate_queued_io(env: &Env) -> Result<Vec<Report>, String> {
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

/// Completions that do not fit their queue when the VF is suspended travel in the state:
/// the host fills the I/O completion queue (15 entries) without consuming any, submits 8
/// more commands, and after the migration reaps all 23 on the destination, the 8 pending
/// ones in the order the state lists them.
fn pending_completions(env: &Env) -> Result<Vec<Report>, String> {
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

/// Statuses of the commands themselves: not suspended, already suspended, unknown
/// controller, bad selects and fields, multi-part sequence errors.
fn command_errors(env: &Env) -> Result<Vec<Report>, String> {
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

/// A small deterministic generator for the random states.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

/// Malformed states: truncated at every dword, wrong versions, queue counts beyond the
/// VF's resources, duplicate and missing queue IDs, bad addresses, sizes, heads, vectors,
/// registers and vendor fields, random bytes. Each is refused with its status, the target
/// keeps its state, and QEMU keeps answering.
fn malformed_state(env: &Env) -> Result<Vec<Report>, String> {
    with_pair(env, |pf, [_id1, id2], vfs| {
        let mut clients = Client::open_many(&[&vfs[0].bdf, &vfs[1].bdf], Path::Container)?;
        let mut c2 = clients.pop().ok_or("no client for VF 2")?;
        let lba = c2.lba_size(NSID)?;
        c2.create_io_queue()?;
        c2.write_page(NSID, 0, lba, &pattern(4096, 7))?;
        ensure(pf.suspend(id2)? == 0, || "Suspend VF 2 failed".into())?;
        let good = pf.get_state(id2)?;
        let base = State::parse(&good)?;
        ensure(base.sqs.len() == 1 && base.cqs.len() == 1, || {
            format!("{} SQs, {} CQs", base.sqs.len(), base.cqs.len())
        })?;
        let before = without_clock(&good);

        let mut cases: Vec<(String, Vec<u8>, u16)> = Vec::new();
        // Truncated at every dword boundary (the header's sizes then do not add up).
        for len in (4..good.len()).step_by(4) {
            cases.push((
                format!("truncated to {len} bytes"),
                good[..len].to_vec(),
                SC_INVALID_FIELD,
            ));
        }
        let mut add = |what: &str, want: u16, f: &dyn Fn(&mut State)| {
            let mut s = base.clone();
            f(&mut s);
            cases.push((what.to_string(), s.build(), want));
        };
        // Versions and the vendor section's identity.
        add("vendor magic", SC_INVALID_FIELD, &|s| {
            put32(&mut s.vendor, vs::MAGIC, 0x4d4c_4e53)
        });
        add("vendor version 2", SC_INVALID_FIELD, &|s| {
            put16(&mut s.vendor, vs::VER, 2)
        });
        add("vendor length field", SC_INVALID_FIELD, &|s| {
            put32(&mut s.vendor, vs::LEN, 204)
        });
        add("vendor section cut short", SC_INVALID_FIELD, &|s| {
            s.vendor.truncate(vs::FIXED - 4);
            s.fix_vendor_len();
        });
        add("no vendor section", SC_INVALID_FIELD, &|s| s.vendor.clear());
        // Queue counts and IDs.
        add("3 I/O SQs for 2 queues", SC_INVALID_FIELD, &|s| {
            let mut e = s.sqs[0];
            for qid in [2u16, 3] {
                put16(&mut e, 10, qid);
                s.sqs.push(e);
            }
        });
        add("3 I/O CQs for 2 queues", SC_INVALID_FIELD, &|s| {
            let mut e = s.cqs[0];
            for qid in [2u16, 3] {
                put16(&mut e, 10, qid);
                s.cqs.push(e);
            }
        });
        add("duplicate SQ ID", SC_INVALID_QID, &|s| {
            let e = s.sqs[0];
            s.sqs.push(e);
        });
        add("duplicate CQ ID", SC_INVALID_QID, &|s| {
            let e = s.cqs[0];
            s.cqs.push(e);
        });
        add("SQ ID 0", SC_INVALID_QID, &|s| put16(&mut s.sqs[0], 10, 0));
        add("SQ ID beyond the resources", SC_INVALID_QID, &|s| {
            put16(&mut s.sqs[0], 10, 3)
        });
        add("CQ ID 0", SC_INVALID_QID, &|s| put16(&mut s.cqs[0], 10, 0));
        add("SQ naming a missing CQ", SC_INVALID_CQID, &|s| {
            put16(&mut s.sqs[0], 12, 2)
        });
        add("SQ naming CQ 0", SC_INVALID_CQID, &|s| {
            put16(&mut s.sqs[0], 12, 0)
        });
        // Addresses.
        add("SQ PRP1 unaligned", SC_INVALID_PRP_OFFSET, &|s| {
            let p = le64(&s.sqs[0], 0);
            put64(&mut s.sqs[0], 0, p | 0x200);
        });
        add("CQ PRP1 unaligned", SC_INVALID_PRP_OFFSET, &|s| {
            let p = le64(&s.cqs[0], 0);
            put64(&mut s.cqs[0], 0, p | 0x4);
        });
        add("SQ PRP1 zero", SC_INVALID_FIELD, &|s| {
            put64(&mut s.sqs[0], 0, 0)
        });
        add("CQ PRP1 zero", SC_INVALID_FIELD, &|s| {
            put64(&mut s.cqs[0], 0, 0)
        });
        add("admin SQ unaligned", SC_INVALID_FIELD, &|s| {
            let p = le64(&s.vendor, vs::ASQ);
            put64(&mut s.vendor, vs::ASQ, p + 8);
        });
        add("admin CQ zero", SC_INVALID_FIELD, &|s| {
            put64(&mut s.vendor, vs::ACQ, 0)
        });
        // Sizes (QSIZE is 0's based: 0 is one entry) and positions.
        add("SQ of one entry", SC_QSIZE, &|s| put16(&mut s.sqs[0], 8, 0));
        add("CQ of one entry", SC_QSIZE, &|s| put16(&mut s.cqs[0], 8, 0));
        add("SQ beyond MQES", SC_QSIZE, &|s| {
            put16(&mut s.sqs[0], 8, 0x800)
        });
        add("CQ of 65536 entries", SC_QSIZE, &|s| {
            put16(&mut s.cqs[0], 8, 0xffff)
        });
        add("SQ head = size", SC_INVALID_FIELD, &|s| {
            put16(&mut s.sqs[0], 16, QDEPTH)
        });
        add("SQ tail = size", SC_INVALID_FIELD, &|s| {
            put16(&mut s.sqs[0], 18, QDEPTH)
        });
        add("CQ head = size", SC_INVALID_FIELD, &|s| {
            put16(&mut s.cqs[0], 12, QDEPTH)
        });
        add("CQ tail beyond size", SC_INVALID_FIELD, &|s| {
            put16(&mut s.cqs[0], 14, 999)
        });
        add("admin SQ head = size", SC_INVALID_FIELD, &|s| {
            put16(&mut s.vendor, vs::ASQ_HEAD, QDEPTH)
        });
        // Attributes and vectors (a VF has 2 vectors).
        add("CQ vector 2", SC_INVALID_VECTOR, &|s| {
            let a = le32(&s.cqs[0], 16);
            put32(&mut s.cqs[0], 16, a & 0xffff | 2 << 16);
        });
        add("CQ not contiguous", SC_INVALID_FIELD, &|s| {
            let a = le32(&s.cqs[0], 16);
            put32(&mut s.cqs[0], 16, a & !1);
        });
        add("SQ not contiguous", SC_INVALID_FIELD, &|s| {
            put16(&mut s.sqs[0], 14, 0)
        });
        add("SQ reserved attribute", SC_INVALID_FIELD, &|s| {
            put16(&mut s.sqs[0], 14, 0x11)
        });
        add("SQ reserved bytes", SC_INVALID_FIELD, &|s| s.sqs[0][22] = 1);
        // Registers.
        add("CC.EN 0 with queues", SC_INVALID_FIELD, &|s| {
            let cc = le32(&s.vendor, vs::CC);
            put32(&mut s.vendor, vs::CC, cc & !1);
            put32(&mut s.vendor, vs::CSTS, 0);
        });
        add("CSTS.RDY 0 with CC.EN 1", SC_INVALID_FIELD, &|s| {
            put32(&mut s.vendor, vs::CSTS, 0)
        });
        add("CC reserved bit", SC_INVALID_FIELD, &|s| {
            let cc = le32(&s.vendor, vs::CC);
            put32(&mut s.vendor, vs::CC, cc | 1 << 30);
        });
        add("CC.MPS 15", SC_INVALID_FIELD, &|s| {
            let cc = le32(&s.vendor, vs::CC);
            put32(&mut s.vendor, vs::CC, cc | 0xf << 7);
        });
        add("AQA of one entry", SC_INVALID_FIELD, &|s| {
            let aqa = le32(&s.vendor, vs::AQA);
            put32(&mut s.vendor, vs::AQA, aqa & !0xfff);
        });
        // Features, namespaces, asynchronous events, pending completions.
        add("another Number of Queues", SC_INVALID_FIELD, &|s| {
            put32(&mut s.vendor, vs::FEAT_NQ, 0x0003_0003)
        });
        add("namespace 1 attached", SC_INVALID_FIELD, &|s| {
            s.vendor[vs::ATTACHED] |= 1
        });
        add("5 outstanding AERs", SC_INVALID_FIELD, &|s| {
            put16(&mut s.vendor, vs::NAER, 5);
            for cid in 1..=5u16 {
                s.vendor.extend_from_slice(&u32::from(cid).to_le_bytes());
            }
            s.fix_vendor_len();
        });
        add("one AER command ID twice", SC_INVALID_FIELD, &|s| {
            put16(&mut s.vendor, vs::NAER, 2);
            s.vendor.extend_from_slice(&9u32.to_le_bytes());
            s.vendor.extend_from_slice(&9u32.to_le_bytes());
            s.fix_vendor_len();
        });
        add("pending completion for SQ 2", SC_INVALID_QID, &|s| {
            put16(&mut s.vendor, vs::NPEND, 1);
            let mut e = [0u8; 16];
            put16(&mut e, 0, 2);
            s.vendor.extend_from_slice(&e);
            s.fix_vendor_len();
        });
        add(
            "more pending completions than SQ entries",
            SC_INVALID_FIELD,
            &|s| {
                let n = QDEPTH + 1;
                put16(&mut s.vendor, vs::NPEND, n);
                for cid in 0..n {
                    let mut e = [0u8; 16];
                    put16(&mut e, 0, 1);
                    put16(&mut e, 2, cid);
                    s.vendor.extend_from_slice(&e);
                }
                s.fix_vendor_len();
            },
        );
        // Header fields (built by hand: `build` writes a valid header).
        let mut hdr_case = |what: &str, f: &dyn Fn(&mut Vec<u8>)| {
            let mut b = good.clone();
            f(&mut b);
            cases.push((what.to_string(), b, SC_INVALID_FIELD));
        };
        hdr_case("header version 1", &|b| put16(b, 0, 1));
        hdr_case("header not suspended", &|b| b[2] = 0);
        hdr_case("header reserved byte", &|b| b[10] = 1);
        hdr_case("NVMECSS beyond 32 bits", &|b| b[24] = 1);
        hdr_case("NVMECSS one dword more", &|b| {
            let n = le32(b, 16);
            put32(b, 16, n + 1);
            let v = le32(b, 32);
            put32(b, 32, v - 1);
        });
        hdr_case("NVMECS version 1", &|b| put16(b, 48, 1));
        hdr_case("NVMECS reserved", &|b| put16(b, 54, 1));
        // Random bytes (seeded): whole states, and valid headers over random bodies.
        let mut rng = Rng(0x5eed_1159);
        for i in 0..16 {
            let len = 4 * (1 + (rng.next() % 200) as usize);
            let mut b: Vec<u8> = (0..len).map(|_| rng.next() as u8).collect();
            if i % 2 == 1 && len >= 104 {
                b[..56].fill(0);
                b[2] = 1;
                put32(&mut b, 16, 2);
                put32(&mut b, 32, ((len - 56) / 4) as u32);
            }
            cases.push((format!("random state {i} ({len} bytes)"), b, 0));
        }

        let mut refused = 0;
        for (what, state, want) in &cases {
            let got = pf.set_entire(id2, state)?;
            // want 0: any error will do (random bytes).
            ensure(got != 0 && (*want == 0 || got == *want), || {
                format!(
                    "{what}: status {got:#x}, want {:#x}",
                    if *want == 0 { 0xffff } else { *want }
                )
            })?;
            ensure(without_clock(&pf.get_state(id2)?) == before, || {
                format!("{what}: the refused state changed VF 2")
            })?;
            pf.alive().map_err(|e| format!("{what}: {e}"))?;
            refused += 1;
        }
        ensure(refused > 100, || {
            format!("only {refused} malformed states tried")
        })?;

        // The unchanged state is accepted, and VF 2 runs on.
        let st = pf.set_entire(id2, &good)?;
        ensure(st == 0, || format!("the valid state: status {st:#x}"))?;
        ensure(pf.resume(id2)? == 0, || "Resume VF 2 failed".into())?;
        ensure(c2.read_page(NSID, 0, lba)? == pattern(4096, 7), || {
            "VF 2 reads other data after the campaign".into()
        })
    })
}
