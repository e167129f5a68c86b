// SPDX-License-Identifier: GPL-2.0

//! Fuzzed migration streams replayed into the kernel's resuming data fd.
//!
//! The fuzzer (`tests/fuzz`, `cargo xtask fuzz`) runs the stream parser on the host
//! against a made-up destination, which no VF in the VM is. Here the destination is a real
//! VF: its compatibility section (from a stream of the other VF of the pair), the PF's
//! state formats (Identify CNS 20h) and its limits, as the driver builds them
//! (`vfio-mode/migration/target.rs`). From the fuzzer's seeds for that destination plus
//! the captured stream, the deterministic input sequence of `rnvme_fuzz::inputs` (blind
//! mutations, PRNG seed 0x5eed) gives [`INPUTS`] inputs in well under a second; the
//! regression inputs of the fuzzer's `stream` target (`tests/fuzz/regressions/stream/`)
//! follow. The corpus is written to `fuzz-corpus/` in the run directory with the host
//! parser's verdict on each. Each input is written in one write to a resuming fd of the
//! destination, which then goes to STOP; the kernel must refuse it exactly where and how
//! the host parser does (`EINVAL` malformed, `EOPNOTSUPP` incompatible, at the write or at
//! STOP), and may only accept what the host accepts; an accepted state may still be
//! refused by the device (`EIO`: what only the device checks, such as a queue address).

use std::{fs, io::Write, os::fd::AsRawFd};

use rnvme_fuzz::{inputs, seeds, targets::stream_of};
use rnvme_spec::{
    spec::lm::{formats::StateFormats, state::Limits},
    spec::migration::{
        compat::CompatView,
        resume::{Destination, Refusal, Resume},
    },
};

use crate::{
    harness::{ensure, Env, Report, Test},
    nvme_ioctl::{Cmd, ADMIN_CMD},
    sriov::CHARDEV,
    tests::{
        hardening::Campaign,
        hardening_cancel::capture,
        migration::{migrate, open_pair, with_vf_pair},
    },
    vfio_client::Client,
    vfio_migration::{set_state, state, State},
};

/// The corpus replay.
pub fn tests() -> Vec<Test> {
    vec![Test {
        name: "hardening/fuzz-corpus-replay",
        groups: &["hardening", "migration"],
        run: replay,
    }]
}

/// Inputs in the corpus.
const INPUTS: usize = 300;
/// The fuzzer's default PRNG seed.
const SEED: u64 = 0x5eed;

/// Where and how a stream is refused, or that it is accepted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Verdict {
    /// The write fails with this errno.
    AtWrite(i32),
    /// The write succeeds, RESUMING -> STOP fails with this errno.
    AtStop(i32),
    /// Loaded (by the kernel), or accepted by the parser (on the host).
    Accepted,
}

/// The errno the driver returns for a refusal (`ResumingFile::refusal`).
fn errno_of(r: &Refusal) -> i32 {
    if r.incompatible() {
        libc::EOPNOTSUPP
    } else {
        libc::EINVAL
    }
}

/// The host parser's verdict, as the driver applies it: the whole input in one write
/// (`advance`), then at STOP the complete stream (`finish`) and its state format among the
/// PF's.
fn host_verdict(input: &[u8], dest: &Destination<'_>) -> Verdict {
    let mut r = Resume::new();
    if let Err(e) = r.advance(input, dest) {
        return Verdict::AtWrite(errno_of(&e));
    }
    match r.finish(input, dest) {
        Err(e) => Verdict::AtStop(errno_of(&e)),
        Ok((format, _)) if dest.formats.index_of(&format).is_none() => {
            Verdict::AtStop(libc::EOPNOTSUPP)
        }
        Ok(_) => Verdict::Accepted,
    }
}

/// The kernel's verdict: `c` reset, RESUMING, one write of `input`, STOP.
fn kernel_verdict(c: &mut Client, input: &[u8]) -> Result<Verdict, String> {
    c.reset_device()?;
    let mut fd = set_state(c, State::Resuming)
        .map_err(|e| format!("RESUMING: {e}"))?
        .ok_or("no resuming fd")?;
    match fd.write(input) {
        Ok(n) if n == input.len() => {}
        Ok(n) => return Err(format!("a write of {} bytes took {n}", input.len())),
        Err(e) => {
            let st = state(c).map_err(|e| e.to_string())?;
            ensure(st == State::Resuming, || {
                format!("after a refused write the state is {st:?}")
            })?;
            return Ok(Verdict::AtWrite(e.raw_os_error().unwrap_or(0)));
        }
    }
    match set_state(c, State::Stop) {
        Ok(_) => Ok(Verdict::Accepted),
        Err(e) => Ok(Verdict::AtStop(e.raw_os_error().unwrap_or(0))),
    }
}

/// The PF's state formats (Identify CNS 20h through its controller device).
fn pf_formats() -> Result<StateFormats, String> {
    let f = fs::File::open(CHARDEV).map_err(|e| format!("{CHARDEV}: {e}"))?;
    let mut buf = vec![0u8; 4096];
    let got = Cmd::new(0x06, 0, &mut buf, 0x20).send(f.as_raw_fd(), ADMIN_CMD);
    ensure(got == Ok(0), || format!("Identify CNS 20h: {got:?}"))?;
    StateFormats::parse(&buf).map_err(|e| format!("CNS 20h: {e:?}"))
}

/// The destination a VF of the pair is, from a stream of the other (same resources, same
/// namespace) and the PF's formats.
fn destination_of(stream: &[u8]) -> Result<seeds::Destination, String> {
    let len = stream
        .get(8..12)
        .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as usize)
        .ok_or("the stream has no header")?;
    let payload = stream.get(16..16 + len).ok_or("the stream is truncated")?;
    let view = CompatView::parse(payload).map_err(|e| format!("compatibility section: {e:?}"))?;
    let fixed = view.fixed;
    Ok(seeds::Destination {
        fixed,
        namespaces: view.namespaces().collect(),
        formats: pf_formats()?,
        limits: Limits {
            io_queues: fixed.io_queues,
            max_entries: u32::from(fixed.cap as u16) + 1,
            vectors: fixed.vectors,
        },
    })
}

fn replay(env: &Env) -> Result<Vec<Report>, String> {
    with_vf_pair(env, |_pf, vf1, vf2| {
        let (mut a, mut b) = open_pair(vf1, vf2)?;
        let good = capture(&a)?;
        let d = destination_of(&good)?;
        let dest = Destination {
            fixed: &d.fixed,
            namespaces: &d.namespaces,
            formats: &d.formats,
            limits: &d.limits,
        };
        ensure(host_verdict(&good, &dest) == Verdict::Accepted, || {
            "the host parser refuses the captured stream: the destination is modelled wrong".into()
        })?;
        let mut seeds = seeds::all(&d);
        seeds.push(good);
        let mut corpus: Vec<Vec<u8>> = inputs(&seeds, SEED).take(INPUTS).map(|(i, _)| i).collect();
        // Then the stream target's regression inputs, read from the tree (the guest sees
        // the host's root over 9p at the same path), as the stream they stand for.
        let kept = rnvme_fuzz::regressions("stream")
            .map_err(|e| format!("tests/fuzz/regressions/stream: {e}"))?;
        corpus.extend(
            kept.iter()
                .filter_map(|(_, i)| stream_of(i).map(|(s, _)| s)),
        );
        let dir = env.out.join("fuzz-corpus");
        fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        let mut index = String::new();

        let mut c = Campaign::start("fuzz corpus replay")?;
        let (mut loaded, mut device_refused) = (0, 0);
        for (n, input) in corpus.iter().enumerate() {
            let host = host_verdict(input, &dest);
            let file = format!("{n:03}.bin");
            fs::write(dir.join(&file), input).map_err(|e| format!("{file}: {e}"))?;
            index.push_str(&format!("{file} {host:?}\n"));
            let kernel = kernel_verdict(&mut b, input)?;
            c.count(&match kernel {
                Verdict::Accepted => Ok(()),
                _ => Err(()),
            });
            match (host, kernel) {
                (h, k) if h == k => loaded += usize::from(k == Verdict::Accepted),
                (Verdict::Accepted, Verdict::AtStop(libc::EIO)) => device_refused += 1,
                (h, k) => {
                    return Err(format!(
                        "input {n} ({} bytes): the kernel's verdict {k:?}, the host parser's \
                         {h:?} (fuzz-corpus/{file})",
                        input.len()
                    ))
                }
            }
        }
        fs::write(dir.join("index.txt"), index).map_err(|e| format!("index.txt: {e}"))?;
        c.finish()?;
        println!(
            "# of which {} regression inputs of the fuzzer's stream target, {loaded} loaded, \
             {device_refused} accepted by the parser and refused by the device",
            corpus.len() - INPUTS
        );
        ensure(loaded >= 1, || "no input was loaded".into())?;
        // The destination takes a real migration afterwards.
        b.reset_device()?;
        b.reenable()?;
        let lba = a.lba_size(2)?;
        migrate(&mut a, &mut b, lba, 700, 2, 2).map(|_| ())
    })
}
