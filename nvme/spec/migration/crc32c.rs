// SPDX-License-Identifier: GPL-2.0

//! CRC-32C (Castagnoli), the checksum of the migration stream's sections.
//!
//! Reflected polynomial 0x82F63B78, initial value and final XOR all ones: the CRC that
//! iSCSI, ext4 and btrfs use, so tools anywhere can check a stream.

/// The byte-wise lookup table, computed at build time.
const TABLE: [u32; 256] = {
    let mut t = [0u32; 256];
    let mut i = 0;
    while i < 256 {
        let mut c = i as u32;
        let mut k = 0;
        while k < 8 {
            c = if c & 1 != 0 {
                (c >> 1) ^ 0x82f6_3b78
            } else {
                c >> 1
            };
            k += 1;
        }
        t[i] = c;
        i += 1;
    }
    t
};

/// A CRC-32C being computed over data given in pieces.
#[derive(Clone, Copy, Debug)]
pub struct Crc32c(u32);

impl Default for Crc32c {
    fn default() -> Self {
        Self::new()
    }
}

impl Crc32c {
    /// The checksum of no data so far.
    pub const fn new() -> Self {
        Self(!0)
    }

    /// Adds `data`.
    #[must_use]
    pub fn update(mut self, data: &[u8]) -> Self {
        for b in data {
            self.0 = TABLE[((self.0 ^ u32::from(*b)) & 0xff) as usize] ^ (self.0 >> 8);
        }
        self
    }

    /// The checksum of everything added.
    pub fn finish(self) -> u32 {
        !self.0
    }
}

/// The CRC-32C of `data`.
pub fn crc32c(data: &[u8]) -> u32 {
    Crc32c::new().update(data).finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_vectors() {
        // The check value of the CRC catalogue, and RFC 3720 (iSCSI) B.4 test patterns.
        assert_eq!(crc32c(b"123456789"), 0xe306_9283);
        assert_eq!(crc32c(&[0u8; 32]), 0x8a91_36aa);
        assert_eq!(crc32c(&[0xffu8; 32]), 0x62a8_ab43);
        let inc: [u8; 32] = core::array::from_fn(|i| i as u8);
        assert_eq!(crc32c(&inc), 0x46dd_794e);
        assert_eq!(crc32c(b""), 0);
    }

    #[test]
    fn pieces_give_the_same_checksum() {
        let data = b"the quick brown fox jumps over the lazy dog";
        let split = Crc32c::new()
            .update(&data[..10])
            .update(&data[10..])
            .finish();
        assert_eq!(split, crc32c(data));
    }
}
