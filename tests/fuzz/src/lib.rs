// SPDX-License-Identifier: GPL-2.0

//! The fuzzer's inputs, shared by `rnvme-fuzz` (`cargo xtask fuzz`) and the guest's
//! in-kernel replay (`hardening/fuzz-corpus-replay`): well-formed streams for a destination
//! ([`seeds`]), the mutations ([`mutate`]), and the deterministic sequence of inputs the
//! fuzzer tries ([`inputs`]).

pub mod mutate;
pub mod seeds;

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
