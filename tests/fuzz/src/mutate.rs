// SPDX-License-Identifier: GPL-2.0

//! Mutations of migration streams, and the small PRNG that drives them.
//!
//! Most mutations are blind (bits, bytes, lengths, splices); [`fix_checksums`] then lets
//! half of the inputs past the CRC, so that the parsers behind it see the damage too.

/// xorshift64*: fast, reproducible from a seed, good enough to pick mutations.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Self(seed.max(1))
    }

    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// A number below `n` (0 for `n == 0`).
    pub fn below(&mut self, n: usize) -> usize {
        if n == 0 {
            0
        } else {
            (self.next_u64() % n as u64) as usize
        }
    }

    pub fn chance(&mut self, one_in: usize) -> bool {
        self.below(one_in) == 0
    }
}

/// Values that tend to break length and count checks.
const INTERESTING_U32: [u32; 12] = [
    0,
    1,
    2,
    3,
    4,
    0x7f,
    0xff,
    0x100,
    0xffff,
    0x1_0000,
    0x7fff_ffff,
    0xffff_ffff,
];

/// Offsets where the sections start (as far as their headers can be read).
pub fn section_starts(b: &[u8]) -> Vec<usize> {
    let mut out = Vec::new();
    let mut at = 0;
    while at + 16 <= b.len() {
        out.push(at);
        let len = u32::from_le_bytes([b[at + 8], b[at + 9], b[at + 10], b[at + 11]]) as usize;
        match at.checked_add(16 + len) {
            Some(next) if next <= b.len() => at = next,
            _ => break,
        }
    }
    out
}

/// Recomputes the CRC of every section whose header and payload are present.
pub fn fix_checksums(b: &mut [u8]) {
    for at in section_starts(b) {
        let len = u32::from_le_bytes([b[at + 8], b[at + 9], b[at + 10], b[at + 11]]) as usize;
        let Some(end) = (at + 16).checked_add(len).filter(|e| *e <= b.len()) else {
            break;
        };
        let crc = rnvme_spec::spec::migration::crc32c::Crc32c::new()
            .update(&b[at..at + 12])
            .update(&b[at + 16..end])
            .finish();
        b[at + 12..at + 16].copy_from_slice(&crc.to_le_bytes());
    }
}

/// Applies one to four mutations to `b`; `other` may be spliced in.
pub fn mutate(rng: &mut Rng, b: &mut Vec<u8>, other: &[u8]) {
    for _ in 0..1 + rng.below(4) {
        let len = b.len();
        match rng.below(10) {
            0 if len > 0 => {
                let i = rng.below(len);
                b[i] ^= 1 << rng.below(8);
            }
            1 if len > 0 => {
                let i = rng.below(len);
                b[i] = [0u8, 1, 0x7f, 0x80, 0xff][rng.below(5)];
            }
            2 if len >= 4 => {
                let i = rng.below(len - 3);
                let v = INTERESTING_U32[rng.below(INTERESTING_U32.len())];
                if rng.chance(2) {
                    b[i..i + 2].copy_from_slice(&(v as u16).to_le_bytes());
                } else {
                    b[i..i + 4].copy_from_slice(&v.to_le_bytes());
                }
            }
            3 => {
                // Truncate, often right at or next to a section boundary.
                let starts = section_starts(b);
                let cut = if !starts.is_empty() && rng.chance(2) {
                    (starts[rng.below(starts.len())] + rng.below(20)).min(len)
                } else {
                    rng.below(len + 1)
                };
                b.truncate(cut);
            }
            4 => {
                let i = rng.below(len + 1);
                let n = 1 + rng.below(32);
                let ins: Vec<u8> = (0..n).map(|_| rng.next_u64() as u8).collect();
                b.splice(i..i, ins);
            }
            5 if len > 0 => {
                let i = rng.below(len);
                let n = 1 + rng.below((len - i).min(64));
                b.drain(i..i + n);
            }
            6 => {
                let cut = rng.below(len + 1);
                let from = rng.below(other.len() + 1);
                b.truncate(cut);
                b.extend_from_slice(&other[from..]);
            }
            7 => {
                // A field inside the compatibility section or the controller state.
                let starts = section_starts(b);
                if let Some(&s) = starts.get(rng.below(starts.len().max(1))) {
                    let i = s + 16 + rng.below(128);
                    if i + 2 <= b.len() {
                        let v = INTERESTING_U32[rng.below(INTERESTING_U32.len())] as u16;
                        b[i..i + 2].copy_from_slice(&v.to_le_bytes());
                    }
                }
            }
            8 => {
                // Repeat or drop a section.
                let starts = section_starts(b);
                if starts.len() >= 2 {
                    let k = rng.below(starts.len() - 1);
                    let sec = b[starts[k]..starts[k + 1]].to_vec();
                    if rng.chance(2) {
                        b.splice(starts[k]..starts[k], sec);
                    } else {
                        b.drain(starts[k]..starts[k + 1]);
                    }
                }
            }
            _ => {
                let n = rng.below(64);
                b.extend((0..n).map(|_| rng.next_u64() as u8));
            }
        }
    }
    if rng.chance(2) {
        fix_checksums(b);
    }
}
