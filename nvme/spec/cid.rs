// SPDX-License-Identifier: GPL-2.0

//! Command identifiers of I/O commands: the block layer tag plus a generation count.
//!
//! A tag is reused as soon as its request completes. A completion that names a tag whose
//! request already completed, or a later use of the same tag, would complete the wrong
//! request: its data buffer is then unmapped while the controller may still write it, and the
//! request that really owns the completion waits for its timeout. As the C driver does, the
//! upper four bits of the 16-bit identifier carry a counter that advances with every
//! submission of the tag, so such a completion is recognised and dropped.

/// Bits of a command identifier that hold the tag.
pub const TAG_BITS: u32 = 12;

/// Tags of a queue must be below this (the largest queue depth the encoding allows).
pub const MAX_TAGS: u32 = 1 << TAG_BITS;

const TAG_MASK: u16 = (MAX_TAGS - 1) as u16;

/// The generation counter of one request: four bits, advanced on every submission.
///
/// # Invariants
///
/// The value is below 16.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Generation(u8);

impl Generation {
    /// The generation a counter holding `raw` stands for (only its low four bits count).
    pub fn from_raw(raw: u8) -> Self {
        // INVARIANT: masked to four bits.
        Self(raw & 0xf)
    }

    /// The value, below 16.
    pub fn raw(self) -> u8 {
        self.0
    }

    /// The generation of the next submission of the same tag.
    #[must_use]
    pub fn next(self) -> Self {
        Self::from_raw(self.0.wrapping_add(1))
    }
}

/// The command identifier of the submission of `tag` in generation `generation`; `None` if
/// the tag does not fit in [`TAG_BITS`] bits.
pub fn encode(tag: u16, generation: Generation) -> Option<u16> {
    if u32::from(tag) >= MAX_TAGS {
        return None;
    }
    Some((u16::from(generation.raw()) << TAG_BITS) | tag)
}

/// The tag a command identifier names.
pub fn tag(cid: u16) -> u16 {
    cid & TAG_MASK
}

/// The generation a command identifier carries.
pub fn generation(cid: u16) -> Generation {
    Generation::from_raw((cid >> TAG_BITS) as u8)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodes_tag_in_low_bits_and_generation_in_high_bits() {
        assert_eq!(encode(0, Generation::from_raw(0)), Some(0));
        assert_eq!(encode(5, Generation::from_raw(3)), Some(0x3005));
        assert_eq!(encode(0xfff, Generation::from_raw(0xf)), Some(0xffff));
        assert_eq!(tag(0x3005), 5);
        assert_eq!(generation(0x3005), Generation::from_raw(3));
    }

    #[test]
    fn rejects_tags_beyond_twelve_bits() {
        assert_eq!(encode(MAX_TAGS as u16, Generation::default()), None);
        assert_eq!(encode(u16::MAX, Generation::default()), None);
        assert!(encode((MAX_TAGS - 1) as u16, Generation::default()).is_some());
    }

    #[test]
    fn generation_wraps_after_sixteen_submissions() {
        let mut g = Generation::default();
        for expected in 1..16u8 {
            g = g.next();
            assert_eq!(g.raw(), expected);
        }
        assert_eq!(g.next(), Generation::default());
        assert_eq!(Generation::from_raw(0x1f).raw(), 0xf);
    }

    #[test]
    fn round_trips_every_tag_and_generation() {
        for t in [0u16, 1, 255, 1023, 4095] {
            for g in 0..16u8 {
                let cid = encode(t, Generation::from_raw(g)).unwrap();
                assert_eq!(tag(cid), t);
                assert_eq!(generation(cid).raw(), g);
            }
        }
    }
}
