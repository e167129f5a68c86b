// SPDX-License-Identifier: GPL-2.0

//! Fuzzing of rnvme's parsers of untrusted input.
//!
//! - [`targets`]: the fuzz targets, one per parser, each checking properties of what it
//!   parses; the libFuzzer binaries (`tests/fuzz/libfuzzer`, run by `cargo xtask fuzz`)
//!   and `cargo test` (seeds and the regression inputs under `tests/fuzz/regressions`)
//!   call them.
//! - [`seeds`]: well-formed migration streams for a destination, [`mutate`]: blind
//!   mutations of them, and [`inputs`]: a deterministic sequence of seeds and mutants,
//!   which the guest's in-kernel replay (`hardening/fuzz-corpus-replay`) regenerates for
//!   the real destination VF and writes into the kernel's resuming data fd.
//! - [`kstrto`]: a model of the kernel's parser of module parameter words.

pub mod kstrto;
pub mod mutate;
pub mod seeds;
pub mod targets;

use std::{fs, io, path::Path};

use mutate::{mutate, Rng};

/// The inputs the fuzzer tries from `seeds` with PRNG seed `seed`, in order, each with the
/// seed of the PRNG that splits it into pieces: first unmutated seeds, then mutants.
pub struct Inputs<'a> {
    seeds: &'a [Vec<u8>],
    rng: Rng,
    i: usize,
}

/// The sequence of inputs from `seeds` (not empty) with PRNG seed `seed`.
pub fn inputs(seeds: &[Vec<u8>], seed: u64) -> Inputs<'_> {
    Inputs {
        seeds,
        rng: Rng::new(seed),
        i: 0,
    }
}

impl Iterator for Inputs<'_> {
    type Item = (Vec<u8>, u64);

    fn next(&mut self) -> Option<Self::Item> {
        let n = self.seeds.len();
        let mut input = self.seeds.get(self.rng.below(n))?.clone();
        // Every seed as it is first, then mutants.
        if self.i >= n {
            let other = &self.seeds[self.rng.below(n)];
            mutate(&mut self.rng, &mut input, other);
        }
        self.i += 1;
        Some((input, self.rng.next_u64()))
    }
}

/// The regression inputs of target `name`, kept in the tree
/// (`tests/fuzz/regressions/<name>/`, one file each): what the fuzzer once found, sorted by
/// file name. None if the folder does not exist.
pub fn regressions(name: &str) -> io::Result<Vec<(String, Vec<u8>)>> {
    regressions_in(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("regressions"),
        name,
    )
}

/// The regression inputs of target `name` under `root` (see [`regressions`]).
pub fn regressions_in(root: &Path, name: &str) -> io::Result<Vec<(String, Vec<u8>)>> {
    let dir = root.join(name);
    if !dir.is_dir() {
        return Ok(Vec::new());
    }
    let mut out = Vec::new();
    for e in fs::read_dir(&dir)? {
        let path = e?.path();
        if path.is_file() {
            let file = path
                .file_name()
                .unwrap_or_default()
                .to_string_lossy()
                .into_owned();
            out.push((file, fs::read(&path)?));
        }
    }
    out.sort();
    Ok(out)
}
