// SPDX-License-Identifier: GPL-2.0

//! The fuzz targets: one function per parser of untrusted input, each taking the fuzzer's
//! bytes and panicking when a property does not hold (a panic is the finding). The
//! libFuzzer binaries (`tests/fuzz/libfuzzer`, `cargo xtask fuzz`) call them, and so does
//! `cargo test`, on the seeds and on every regression input under `tests/fuzz/regressions`.
//!
//! | target             | code under test (all of it what the kernel runs)             |
//! |--------------------|--------------------------------------------------------------|
//! | `stream`           | `migration::resume`: the resuming data fd's checks           |
//! | `controller-state` | `lm::state`: `ControllerState::parse` and `check`            |
//! | `compat`           | `migration::compat` (parse, encode, check), `lm::formats`    |
//! | `sysfs-words`      | `mode`: the words of the `mode` and `sriov_vf_mode` files    |
//! | `module-params`    | `params`, and what takes the parameters (`sriov::plan`,      |
//! |                    | the dirty tracking queue, `queue::split_queues`)             |
//! | `passthru`         | `passthru`: the NVMe passthrough ioctls' argument            |

use std::{collections::BTreeSet, sync::OnceLock, vec::Vec};

use rnvme_spec::spec::{
    command::Command,
    lm::{
        formats::{StateFormat, StateFormats},
        state::{ControllerState, Limits, HEADER_SIZE, NVMECS_HEADER_SIZE, QUEUE_ENTRY_SIZE},
        track::{self, Ring},
    },
    migration::{
        compat::{self, CompatView},
        resume::{Destination, Refusal, Resume},
    },
    mode::{self, Mode, MODES},
    params::{Param, PARAMS},
    passthru::{DataDirection, Ioctl, Passthru, PassthruError, PASSTHRU_SIZE},
    queue::split_queues,
    sriov::{plan, FlexiblePool, PlanError, PrimaryCaps, VfResources},
};

use crate::{
    kstrto,
    mutate::{fix_checksums, Rng},
    seeds,
};

/// A fuzz target.
pub struct Target {
    /// Its name (`cargo xtask fuzz --target NAME`, the libFuzzer binary's name).
    pub name: &'static str,
    /// Runs one input; panics on a finding.
    pub run: fn(&[u8]),
    /// The initial corpus.
    pub seeds: fn() -> Vec<Vec<u8>>,
}

/// Every target.
pub const TARGETS: &[Target] = &[
    Target {
        name: "stream",
        run: stream,
        seeds: stream_seeds,
    },
    Target {
        name: "controller-state",
        run: controller_state,
        seeds: controller_state_seeds,
    },
    Target {
        name: "compat",
        run: compat,
        seeds: compat_seeds,
    },
    Target {
        name: "sysfs-words",
        run: sysfs_words,
        seeds: sysfs_words_seeds,
    },
    Target {
        name: "module-params",
        run: module_params,
        seeds: module_params_seeds,
    },
    Target {
        name: "passthru",
        run: passthru,
        seeds: passthru_seeds,
    },
];

/// The target called `name`.
pub fn target(name: &str) -> Option<&'static Target> {
    TARGETS.iter().find(|t| t.name == name)
}

fn u16_at(b: &[u8], o: usize) -> u16 {
    u16::from_le_bytes([b[o], b[o + 1]])
}

fn u32_at(b: &[u8], o: usize) -> u32 {
    u32::from_le_bytes([b[o], b[o + 1], b[o + 2], b[o + 3]])
}

// ---------------------------------------------------------------------------------------
// stream

/// The made-up destination every stream is checked against (built once).
fn destination() -> &'static seeds::Destination {
    static D: OnceLock<seeds::Destination> = OnceLock::new();
    D.get_or_init(seeds::destination)
}

fn dest_of(d: &seeds::Destination) -> Destination<'_> {
    Destination {
        fixed: &d.fixed,
        namespaces: &d.namespaces,
        formats: &d.formats,
        limits: &d.limits,
    }
}

/// The stream a `stream` input stands for: the input is one control byte and the stream;
/// bit 0 of the control byte asks for the sections' checksums to be fixed first (so that
/// the fuzzer reaches the parsers behind the CRC without finding it), the other bits seed
/// the split into writes. `None` for an empty input.
pub fn stream_of(input: &[u8]) -> Option<(Vec<u8>, u64)> {
    let (&ctl, rest) = input.split_first()?;
    let mut bytes = rest.to_vec();
    if ctl & 1 != 0 {
        fix_checksums(&mut bytes);
    }
    Some((bytes, u64::from(ctl >> 1) ^ ((rest.len() as u64) << 8)))
}

/// The verdict on a stream written whole, or in pieces split by `pieces`; an accepted
/// state must parse and fit again, as the device is given it.
fn stream_verdict(
    bytes: &[u8],
    dest: &Destination<'_>,
    pieces: Option<&mut Rng>,
) -> Result<usize, Refusal> {
    let mut r = Resume::new();
    match pieces {
        None => r.advance(bytes, dest)?,
        Some(rng) => {
            let mut end = 0;
            while end < bytes.len() {
                end = (end + 1 + rng.below(200)).min(bytes.len());
                r.advance(&bytes[..end], dest)?;
            }
            if bytes.is_empty() {
                r.advance(bytes, dest)?;
            }
        }
    }
    let (format, state) = r.finish(bytes, dest)?;
    assert!(
        dest.formats.index_of(&format).is_some(),
        "accepted a format the destination does not offer"
    );
    if let Err(e) = ControllerState::parse(state).and_then(|s| s.check(dest.limits)) {
        panic!("accepted a state that does not check: {e:?}");
    }
    Ok(state.len())
}

/// `stream`: the migration stream as the kernel's resuming data fd checks it
/// (`Resume::advance` after every write, `Resume::finish` at STOP). Properties: no panic;
/// the same verdict whether the stream is written whole or in pieces; an accepted stream's
/// format is one the destination offers and its controller state parses and fits.
pub fn stream(input: &[u8]) {
    let Some((bytes, seed)) = stream_of(input) else {
        return;
    };
    let dest = dest_of(destination());
    let whole = stream_verdict(&bytes, &dest, None);
    let pieces = stream_verdict(&bytes, &dest, Some(&mut Rng::new(seed)));
    assert_eq!(
        whole, pieces,
        "the verdict depends on how the stream is split"
    );
}

fn stream_seeds() -> Vec<Vec<u8>> {
    seeds::all(destination())
        .into_iter()
        .flat_map(|s| [[&[0u8][..], &s].concat(), [&[3u8][..], &s].concat()])
        .collect()
}

// ---------------------------------------------------------------------------------------
// controller-state

/// The limits a `controller-state` input starts with (6 bytes: I/O queues, 0's based
/// most entries, vectors).
const LIMITS_SIZE: usize = 6;

/// Whether `s` fits `l`, written as plainly as the rules of TP4159 and the driver read,
/// to compare with `ControllerState::check`.
fn fits_plainly(s: &ControllerState<'_>, l: &Limits) -> bool {
    if !s.header.suspended || s.niosq > l.io_queues || s.niocq > l.io_queues {
        return false;
    }
    let size_ok = |qsize: u16, head: u16, tail: u16| {
        qsize >= 1 && u32::from(qsize) < l.max_entries && head <= qsize && tail <= qsize
    };
    let mut cqids = BTreeSet::new();
    for cq in s.cqs() {
        if !(1..=l.io_queues).contains(&cq.qid) || !cqids.insert(cq.qid) {
            return false;
        }
        if !size_ok(cq.qsize, cq.head, cq.tail) || (cq.interrupts() && cq.vector() >= l.vectors) {
            return false;
        }
    }
    let mut sqids = BTreeSet::new();
    for sq in s.sqs() {
        if !(1..=l.io_queues).contains(&sq.qid) || !sqids.insert(sq.qid) {
            return false;
        }
        if !size_ok(sq.qsize, sq.head, sq.tail) || !cqids.contains(&sq.cqid) {
            return false;
        }
    }
    true
}

/// Encodes `s` again (the layout of `lm::state`), reserved bytes zero.
fn encode_state(s: &ControllerState<'_>) -> Vec<u8> {
    let mut v = Vec::new();
    v.extend_from_slice(&s.header.version.to_le_bytes());
    v.push(u8::from(s.header.suspended));
    v.extend_from_slice(&[0; 13]);
    v.extend_from_slice(&((s.header.nvmecs_bytes / 4) as u128).to_le_bytes());
    v.extend_from_slice(&((s.header.vendor_bytes / 4) as u128).to_le_bytes());
    v.extend_from_slice(&s.nvmecs_version.to_le_bytes());
    v.extend_from_slice(&s.niosq.to_le_bytes());
    v.extend_from_slice(&s.niocq.to_le_bytes());
    v.extend_from_slice(&[0; 2]);
    for q in s.sqs() {
        v.extend_from_slice(&q.prp1.to_le_bytes());
        for f in [q.qsize, q.qid, q.cqid, q.attr, q.head, q.tail] {
            v.extend_from_slice(&f.to_le_bytes());
        }
        v.extend_from_slice(&[0; 4]);
    }
    for q in s.cqs() {
        v.extend_from_slice(&q.prp1.to_le_bytes());
        for f in [q.qsize, q.qid, q.head, q.tail] {
            v.extend_from_slice(&f.to_le_bytes());
        }
        v.extend_from_slice(&q.attr.to_le_bytes());
        v.extend_from_slice(&[0; 4]);
    }
    v.extend_from_slice(s.vendor);
    v
}

/// `b` with the bytes the layout reserves (or leaves undefined, CSATTR bits 7:1) zeroed.
fn without_reserved(b: &[u8], queues: usize) -> Vec<u8> {
    let mut v = b.to_vec();
    v[2] &= 1;
    v[3..16].fill(0);
    let n = HEADER_SIZE;
    v[n + 6..n + 8].fill(0);
    for q in 0..queues {
        let e = n + NVMECS_HEADER_SIZE + q * QUEUE_ENTRY_SIZE;
        v[e + 20..e + 24].fill(0);
    }
    v
}

/// `controller-state`: a controller state as Set Controller State would be given it,
/// against limits taken from the input's first 6 bytes. Properties: no panic; a parsed
/// state has the length its header describes and exactly its queue counts of entries,
/// and encodes back to the input (reserved bytes aside); `check` accepts exactly the
/// states that fit by a plain reading of the rules.
pub fn controller_state(input: &[u8]) {
    let Some((l, b)) = input.split_at_checked(LIMITS_SIZE) else {
        return;
    };
    let limits = Limits {
        io_queues: u16_at(l, 0),
        max_entries: u32::from(u16_at(l, 2)) + 1,
        vectors: u16_at(l, 4),
    };
    let Ok(s) = ControllerState::parse(b) else {
        return;
    };
    assert_eq!(s.header.total_len(), b.len(), "the header's length");
    assert_eq!(s.sqs().count(), usize::from(s.niosq), "submission queues");
    assert_eq!(s.cqs().count(), usize::from(s.niocq), "completion queues");
    assert_eq!(s.vendor.len(), s.header.vendor_bytes, "vendor bytes");
    let queues = usize::from(s.niosq) + usize::from(s.niocq);
    assert!(
        encode_state(&s) == without_reserved(b, queues),
        "the state does not encode back to its bytes"
    );
    let checked = s.check(&limits);
    assert_eq!(
        checked.is_ok(),
        fits_plainly(&s, &limits),
        "check says {checked:?} for limits {limits:?}"
    );
}

fn controller_state_seeds() -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    for (pairs, vendor, suspended) in [
        (0u16, 0usize, true),
        (1, 0, true),
        (2, 64, true),
        (4, 16, true),
        (1, 0, false),
        (5, 0, true),
    ] {
        let mut v = Vec::new();
        v.extend_from_slice(&4u16.to_le_bytes());
        v.extend_from_slice(&2047u16.to_le_bytes());
        v.extend_from_slice(&5u16.to_le_bytes());
        v.extend(seeds::controller_state(pairs, vendor, suspended));
        out.push(v);
    }
    out
}

// ---------------------------------------------------------------------------------------
// compat

/// A state format list (Identify CNS 20h) offering exactly `f`.
fn formats_offering(f: &StateFormat) -> StateFormats {
    let mut list = [0u8; 4096];
    list[0] = 1;
    list[1] = u8::from(f.uuid.is_some());
    list[2..4].copy_from_slice(&f.version.to_le_bytes());
    if let Some(u) = f.uuid {
        list[4..20].copy_from_slice(&u);
    }
    StateFormats::parse(&list).expect("a list of one format")
}

/// `compat`: the compatibility section (`CompatView::parse`), and the same bytes as a
/// state format list (`StateFormats::parse`, what Identify CNS 20h returns). Properties: no
/// panic; a parsed section encodes back to exactly its bytes (the layout has no slack);
/// the namespace iterator yields the count, in increasing NSID order; a section is
/// compatible with a VF described by itself, and one compatible with the made-up
/// destination describes that destination (the enable timeout in CAP aside); a format list
/// finds the index of the format it prefers.
pub fn compat(input: &[u8]) {
    if let Ok(f) = StateFormats::parse(input) {
        if let Some(p) = f.preferred() {
            assert!(
                f.index_of(&p).is_some(),
                "the preferred format has no index"
            );
        }
    }
    let Ok(view) = CompatView::parse(input) else {
        return;
    };
    let nss: Vec<_> = view.namespaces().collect();
    assert_eq!(nss.len(), view.namespace_count(), "namespace count");
    assert!(
        nss.windows(2).all(|w| w[0].nsid < w[1].nsid) && nss.first().is_none_or(|n| n.nsid > 0),
        "NSIDs not increasing"
    );
    let mut again = vec![0u8; compat::size(nss.len())];
    let n = compat::encode(&view.fixed, &nss, &mut again).expect("it fits its own size");
    assert!(
        n == input.len() && again == input,
        "the section does not encode back to its bytes"
    );
    let own = formats_offering(&view.fixed.format);
    assert_eq!(
        compat::check(&view, &view.fixed, &nss, &own),
        Ok(()),
        "a section is not compatible with itself"
    );
    let d = destination();
    if compat::check(&view, &d.fixed, &d.namespaces, &d.formats).is_ok() {
        let (mut s, mut t) = (view.fixed, d.fixed);
        s.cap &= !(0xff << 24);
        t.cap &= !(0xff << 24);
        (s.format, t.format) = (StateFormat::default(), StateFormat::default());
        assert_eq!(s, t, "compatible with a destination it does not describe");
        assert_eq!(nss, d.namespaces, "compatible with other namespaces");
        assert!(d.formats.index_of(&view.fixed.format).is_some());
    }
}

fn compat_seeds() -> Vec<Vec<u8>> {
    let d = destination();
    let mut out = Vec::new();
    for nss in [&d.namespaces[..], &d.namespaces[..1], &[]] {
        let mut c = vec![0u8; compat::size(nss.len())];
        compat::encode(&d.fixed, nss, &mut c).expect("the seed fits");
        out.push(c);
    }
    let mut other = d.fixed;
    other.format.uuid = None;
    let mut c = vec![0u8; compat::size(0)];
    compat::encode(&other, &[], &mut c).expect("the seed fits");
    out.push(c);
    out
}

// ---------------------------------------------------------------------------------------
// sysfs-words

/// `sysfs-words`: a write to the `mode` or `sriov_vf_mode` attribute (`Mode::parse`).
/// Properties: a mode is taken exactly for its name, with or without one newline; what
/// the attribute shows names every mode once, the current one in brackets, and each shown
/// word parses back.
pub fn sysfs_words(input: &[u8]) {
    let got = Mode::parse(input);
    let want = MODES
        .into_iter()
        .find(|m| input == m.name().as_bytes() || input == [m.name().as_bytes(), b"\n"].concat());
    assert_eq!(got, want, "the word {input:?}");
    let current = MODES[usize::from(input.first().copied().unwrap_or(0)) % MODES.len()];
    let mut shown = String::new();
    mode::show_choices(current, &mut shown).expect("formatting into a String");
    let words: Vec<&str> = shown.trim_end_matches('\n').split(' ').collect();
    assert_eq!(words.len(), MODES.len());
    for (w, m) in words.iter().zip(MODES) {
        let bare = w.trim_start_matches('[').trim_end_matches(']');
        assert_eq!(Mode::parse(bare.as_bytes()), Some(m));
        assert_eq!(w.starts_with('['), m == current);
    }
}

fn sysfs_words_seeds() -> Vec<Vec<u8>> {
    [&b"nvme"[..], b"vfio\n", b"vfio\n\n", b"VFIO", b""]
        .iter()
        .map(|s| s.to_vec())
        .collect()
}

// ---------------------------------------------------------------------------------------
// module-params

/// Bytes of context before a `module-params` input's word: the parameter (1), VFs (2),
/// the flexible queue pool (total 2, max per VF 2, granularity 1), the vector pool
/// (the same), and the I/O queues a controller granted (2).
const PARAMS_CONTEXT: usize = 1 + 2 + 5 + 5 + 2;

fn pool(b: &[u8]) -> FlexiblePool {
    FlexiblePool {
        total: u32::from(u16_at(b, 0)),
        primary: 0,
        max_per_secondary: u16_at(b, 2),
        granularity: u16::from(b[4]),
    }
}

/// Checks a plan of VF resources against what was asked and what is there.
fn check_plan(
    caps: &PrimaryCaps,
    vfs: u16,
    wanted: VfResources,
    got: Result<VfResources, PlanError>,
) {
    let Ok(res) = got else {
        return;
    };
    for (count, want, p, min) in [
        (res.queues, wanted.queues, &caps.vq, 2),
        (res.vectors, wanted.vectors, &caps.vi, 1),
    ] {
        assert!(count >= min, "{count} below the minimum {min}");
        assert!(
            u32::from(count) * u32::from(vfs) <= p.total,
            "{count} for {vfs} VFs from {}",
            p.total
        );
        assert!(
            count <= p.max_per_secondary,
            "{count} over {}",
            p.max_per_secondary
        );
        assert_eq!(
            count % p.granularity.max(1),
            0,
            "not a multiple of the granularity"
        );
        assert!(want == 0 || count == want, "asked {want}, planned {count}");
    }
}

/// `module-params`: a word written to a numeric module parameter, parsed as the kernel's
/// `kstrtou16`/`kstrtouint` parse it ([`kstrto`]), checked by the driver's rule
/// (`params`), and given to what uses the parameter, with the controller's side taken from
/// the input. Properties: no panic; a valid value fits its C type and reads back (what
/// sysfs shows is a valid write); `vf_queues`/`vf_vectors` give a plan that respects the
/// pools' totals, maxima, granularity and minimum; a valid `cdq_entries` makes a queue the
/// Controller Data Queue command takes and a ring that wraps at its end; `poll_queues`
/// leaves an interrupt-driven queue.
pub fn module_params(input: &[u8]) {
    let Some((ctx, word)) = input.split_at_checked(PARAMS_CONTEXT) else {
        return;
    };
    let param = PARAMS[usize::from(ctx[0]) % PARAMS.len()];
    let Some(v) = kstrto::parse(word) else {
        return;
    };
    let Ok(v) = u32::try_from(v) else {
        return;
    };
    if !param.valid(v) {
        return;
    }
    // The kernel refuses a number its C type does not hold (ERANGE) before it asks the
    // rule, so the rule must not take one.
    assert!(v <= param.type_max(), "{} takes {v}", param.name());
    assert_eq!(kstrto::parse(v.to_string().as_bytes()), Some(u64::from(v)));
    let vfs = u16_at(ctx, 1).max(1);
    let caps = PrimaryCaps {
        cntlid: 0,
        crt: 0b11,
        vq: pool(&ctx[3..8]),
        vi: pool(&ctx[8..13]),
    };
    let granted = u32::from(u16_at(ctx, 13));
    match param {
        Param::VfQueues | Param::VfVectors => {
            let value = u16::try_from(v).expect("valid values fit a u16");
            let wanted = if param == Param::VfQueues {
                VfResources {
                    queues: value,
                    vectors: 0,
                }
            } else {
                VfResources {
                    queues: 0,
                    vectors: value,
                }
            };
            let got = plan(&caps, vfs, caps.vq.total, caps.vi.total, wanted);
            check_plan(&caps, vfs, wanted, got);
        }
        Param::CdqEntries => {
            let bytes = v as usize * track::ENTRY_SIZE;
            let dwords = u32::try_from(bytes / 4).expect("the queue's size fits");
            assert!(
                Command::cdq_create(1, 0x1000, dwords).is_some(),
                "cdq_entries={v} makes a queue the command refuses"
            );
            let mut ring = Ring::new(v).expect("a valid queue makes a ring");
            let blank = track::Entry::parse(&[0; track::ENTRY_SIZE]);
            let start = ring.is_new(&blank);
            for _ in 0..v {
                assert!(ring.head_offset() + track::ENTRY_SIZE <= bytes);
                ring.advance();
            }
            assert_eq!(ring.head(), 0, "the ring does not wrap at its end");
            assert_ne!(ring.is_new(&blank), start, "no phase change");
        }
        Param::PollQueues => {
            let s = split_queues(granted, v);
            assert!(s.interrupt >= 1 && s.poll <= v);
            assert_eq!(s.interrupt + s.poll, granted.max(1));
        }
        Param::Sgls => assert!(v <= 1),
    }
}

fn module_params_seeds() -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    for (i, words) in [
        &["0", "2", "4096", "1"][..],
        &["0", "1", "2048"],
        &["4", "4096", "65536", "0x1000"],
        &["0", "8", "9"],
        &["0", "1", "010"],
    ]
    .iter()
    .enumerate()
    {
        for w in *words {
            let mut v = vec![i as u8];
            v.extend_from_slice(&8u16.to_le_bytes());
            for (total, max, gran) in [(24u16, 3u16, 1u8), (16, 2, 1)] {
                v.extend_from_slice(&total.to_le_bytes());
                v.extend_from_slice(&max.to_le_bytes());
                v.push(gran);
            }
            v.extend_from_slice(&3u16.to_le_bytes());
            v.extend_from_slice(w.as_bytes());
            out.push(v);
        }
    }
    out
}

// ---------------------------------------------------------------------------------------
// passthru

/// `passthru`: the argument of an NVMe passthrough ioctl (`Passthru::parse`), with the
/// driver's largest transfer from the input's first 4 bytes, which also stand for an ioctl
/// number (`Ioctl::from_cmd`). Properties: no panic; an accepted command came from a whole
/// structure without flags, reserved bits or metadata; its data fits the largest transfer
/// and has a buffer and a direction, or there is none; every command field is the one
/// userspace wrote; an ioctl's result field lies inside its argument.
pub fn passthru(input: &[u8]) {
    let Some((head, b)) = input.split_at_checked(4) else {
        return;
    };
    let number = u32_at(head, 0);
    if let Some(io) = Ioctl::from_cmd(number) {
        if let Some((at, len)) = io.result_field() {
            assert!(
                at + len <= io.arg_size(),
                "{io:?}'s result outside its argument"
            );
        }
        assert_eq!(
            (number >> 16) & 0x3fff,
            io.arg_size() as u32,
            "{io:?}'s size field"
        );
    }
    let max_data = number >> 8;
    let got = Passthru::parse(b, max_data);
    if b.len() < PASSTHRU_SIZE {
        assert_eq!(got, Err(PassthruError::Truncated));
        return;
    }
    let Ok(p) = got else {
        return;
    };
    assert_eq!(b[1], 0, "flags");
    assert_eq!(u16_at(b, 2), 0, "rsvd1");
    assert!(b[16..24].iter().all(|x| *x == 0), "metadata pointer");
    assert_eq!(u32_at(b, 32), 0, "metadata length");
    assert!(p.data_len <= max_data, "{} over {max_data}", p.data_len);
    assert_eq!(p.data_len, u32_at(b, 36));
    if p.data_len == 0 {
        assert_eq!(p.dir, DataDirection::None);
    } else {
        assert!(p.addr != 0 && p.dir != DataDirection::None);
        assert_eq!(p.dir, DataDirection::of_opcode(b[0]));
    }
    assert_eq!(p.cmd.opcode(), b[0]);
    assert_eq!(p.cmd.cid(), 0, "userspace chose a command ID");
    assert_eq!(p.cmd.nsid(), u32_at(b, 4));
    assert_eq!((p.cmd.dw[2], p.cmd.dw[3]), (u32_at(b, 8), u32_at(b, 12)));
    for (i, at) in (10..16).zip((40..64).step_by(4)) {
        assert_eq!(p.cmd.dw[i], u32_at(b, at), "CDW{i}");
    }
    assert!(
        p.cmd.dw[4..10].iter().all(|d| *d == 0),
        "a data pointer or metadata from userspace"
    );
    assert_eq!(p.timeout_ms, u32_at(b, 64));
}

fn passthru_seeds() -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    for (opcode, len, addr) in [
        (0x06u8, 4096u32, 0x7fff_0000u64),
        (0x02, 512, 0x1000),
        (0x09, 0, 0),
        (0x80, 0, 0),
    ] {
        let mut b = vec![0u8; 4 + PASSTHRU_SIZE + 8];
        b[0..4].copy_from_slice(&0xc048_4e41u32.to_le_bytes());
        let a = &mut b[4..];
        a[0] = opcode;
        a[4..8].copy_from_slice(&1u32.to_le_bytes());
        a[24..32].copy_from_slice(&addr.to_le_bytes());
        a[36..40].copy_from_slice(&len.to_le_bytes());
        a[40..44].copy_from_slice(&1u32.to_le_bytes());
        out.push(b);
    }
    out
}
