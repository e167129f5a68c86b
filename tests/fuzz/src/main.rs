// SPDX-License-Identifier: GPL-2.0

//! `rnvme-fuzz`: mutation fuzzing of the migration stream parser, run by `cargo xtask
//! fuzz`.
//!
//! Every input goes through exactly what the kernel's resuming data fd runs
//! (`rnvme_spec::spec::migration::resume`): once written whole, once in random pieces. The checks: no
//! panic, the same verdict both ways, and an accepted stream's controller state fits the
//! destination. The inputs start from well-formed streams ([`seeds`]) and are mutated
//! blindly ([`mutate`]), half of them with their checksums fixed so that the parsers
//! behind the CRC see the damage too. It prints how many inputs were tried, accepted and
//! refused (by reason), and can write a corpus (a few inputs per verdict) for the
//! in-kernel replay test.

use std::{
    collections::BTreeMap,
    fs,
    panic::{self, AssertUnwindSafe},
    path::PathBuf,
    process::ExitCode,
    time::Instant,
};

use clap::Parser;
use rnvme_spec::{
    spec::lm::state::ControllerState,
    spec::migration::resume::{Destination, Refusal, Resume},
};

use rnvme_fuzz::{inputs, mutate::Rng, seeds};

/// Fuzzes the rnvme migration stream parser.
#[derive(Parser)]
#[command(about)]
struct Args {
    /// Inputs to try.
    #[arg(long, default_value_t = 1_000_000)]
    execs: u64,
    /// PRNG seed (the same seed tries the same inputs).
    #[arg(long, default_value_t = 0x5eed)]
    seed: u64,
    /// Write a corpus here: up to 4 inputs per verdict, and `index.txt`.
    #[arg(long)]
    corpus: Option<PathBuf>,
}

/// The verdict on one input: accepted, or refused, by the name of the refusal's kind.
fn verdict(
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
    let (_, state) = r.finish(bytes, dest)?;
    // An accepted state must parse and fit again, as the device will be given it.
    match ControllerState::parse(state).and_then(|s| s.check(dest.limits)) {
        Ok(()) => Ok(state.len()),
        Err(e) => panic!("accepted a state that does not check: {e:?}"),
    }
}

/// A short name of a verdict, for counting: the refusal's variant path.
fn name(v: &Result<usize, Refusal>) -> String {
    match v {
        Ok(_) => "accepted".to_string(),
        Err(r) => {
            let s = format!("{r:?}");
            // `State(TooManyQueues { .. })` -> `State-TooManyQueues`
            s.split(|c: char| !c.is_alphanumeric())
                .filter(|w| !w.is_empty() && w.chars().next().is_some_and(char::is_uppercase))
                .take(2)
                .collect::<Vec<_>>()
                .join("-")
        }
    }
}

fn main() -> ExitCode {
    let args = Args::parse();
    let d = seeds::destination();
    let dest = Destination {
        fixed: &d.fixed,
        namespaces: &d.namespaces,
        formats: &d.formats,
        limits: &d.limits,
    };
    let seeds = seeds::all(&d);
    let mut counts: BTreeMap<String, u64> = BTreeMap::new();
    let mut samples: BTreeMap<String, Vec<Vec<u8>>> = BTreeMap::new();
    let mut failures = 0u64;
    // The library's own panics are the finding; keep their messages short.
    panic::set_hook(Box::new(|info| eprintln!("panic: {info}")));
    let started = Instant::now();
    for (input, piece_seed) in inputs(&seeds, args.seed).take(args.execs as usize) {
        let mut piece_rng = Rng::new(piece_seed);
        let outcome = panic::catch_unwind(AssertUnwindSafe(|| {
            let whole = verdict(&input, &dest, None);
            let pieces = verdict(&input, &dest, Some(&mut piece_rng));
            (whole, pieces)
        }));
        let key = match outcome {
            Ok((whole, pieces)) if whole == pieces => name(&whole),
            Ok((whole, pieces)) => {
                if failures < 5 {
                    eprintln!("verdicts differ: whole {whole:?}, in pieces {pieces:?}");
                }
                failures += 1;
                "DIFFERENT".to_string()
            }
            Err(_) => {
                if failures < 5 {
                    eprintln!("input: {input:02x?}");
                }
                failures += 1;
                "PANIC".to_string()
            }
        };
        let kept = samples.entry(key.clone()).or_default();
        if kept.len() < 4 {
            kept.push(input);
        }
        *counts.entry(key).or_default() += 1;
    }
    let secs = started.elapsed().as_secs_f64();
    let refused: u64 = counts
        .iter()
        .filter(|(k, _)| k.as_str() != "accepted")
        .map(|(_, n)| n)
        .sum();
    println!(
        "fuzz: {} inputs in {secs:.1} s ({:.0}/s), seed {:#x}",
        args.execs,
        args.execs as f64 / secs,
        args.seed
    );
    for (k, n) in &counts {
        println!("  {n:>9}  {k}");
    }
    if let Some(dir) = &args.corpus {
        if let Err(e) = write_corpus(dir, &samples) {
            eprintln!("corpus: {e}");
            return ExitCode::FAILURE;
        }
        println!(
            "corpus: {} inputs in {}",
            samples.values().map(Vec::len).sum::<usize>(),
            dir.display()
        );
    }
    println!(
        "fuzz executions: {}, accepted: {}, refused: {}, crashes: {}",
        args.execs,
        counts.get("accepted").copied().unwrap_or(0),
        refused
            - counts.get("PANIC").copied().unwrap_or(0)
            - counts.get("DIFFERENT").copied().unwrap_or(0),
        failures
    );
    if failures > 0 {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}

/// Writes every kept input as `<verdict>-<n>.bin` and `index.txt` (`<file> <verdict>`).
fn write_corpus(dir: &PathBuf, samples: &BTreeMap<String, Vec<Vec<u8>>>) -> std::io::Result<()> {
    fs::create_dir_all(dir)?;
    let mut index = String::new();
    for (verdict, inputs) in samples {
        for (n, input) in inputs.iter().enumerate() {
            let file = format!("{verdict}-{n}.bin");
            fs::write(dir.join(&file), input)?;
            index.push_str(&format!("{file} {verdict}\n"));
        }
    }
    fs::write(dir.join("index.txt"), index)
}
