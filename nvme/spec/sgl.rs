// SPDX-License-Identifier: GPL-2.0

//! Scatter Gather Lists (NVM Express Base Specification 2.0, section 4.1.2): the other way
//! to describe a command's data. One Data Block descriptor covers a whole DMA segment, so
//! a large transfer that an IOMMU maps as one segment needs no list at all, where PRPs
//! need a list entry per page (and the controller has to read that list).
//!
//! A descriptor is 16 bytes: address (bytes 0-7), length (8-11), reserved (12-14) and the
//! SGL identifier (15: type in bits 7:4, subtype in bits 3:0). The driver only uses the
//! single descriptor in the command; data in several DMA segments keeps PRPs.

/// SGL identifier of a Data Block descriptor (type 0h, subtype 0h: an address).
const DATA_BLOCK: u8 = 0x00;

/// One SGL descriptor.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Descriptor {
    /// Bus address.
    pub addr: u64,
    /// Length in bytes.
    pub len: u32,
    /// SGL identifier (byte 15).
    pub id: u8,
}

impl Descriptor {
    /// A Data Block descriptor for `len` bytes at `addr`.
    pub fn data_block(addr: u64, len: u32) -> Self {
        Self {
            addr,
            len,
            id: DATA_BLOCK,
        }
    }

    /// The descriptor as command dwords 6 to 9 (the data pointer).
    pub fn to_dwords(self) -> [u32; 4] {
        [
            self.addr as u32,
            (self.addr >> 32) as u32,
            self.len,
            u32::from(self.id) << 24,
        ]
    }
}

/// The descriptor of a transfer made of `segments` (bus address, length) if it is one
/// non-empty segment; `None` otherwise (PRPs describe it).
pub fn single(segments: impl IntoIterator<Item = (u64, u32)>) -> Option<Descriptor> {
    let mut segments = segments.into_iter();
    match (segments.next(), segments.next()) {
        (Some((addr, len)), None) if len > 0 => Some(Descriptor::data_block(addr, len)),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_segment_is_one_data_block() {
        let d = single([(0x1_2345_6000, 128 * 1024)]).expect("one segment");
        assert_eq!(d, Descriptor::data_block(0x1_2345_6000, 128 * 1024));
        assert_eq!(d.to_dwords(), [0x2345_6000, 1, 128 * 1024, 0]);
    }

    #[test]
    fn anything_else_keeps_prps() {
        assert_eq!(single([]), None);
        assert_eq!(single([(0x1000, 0)]), None);
        assert_eq!(single([(0x1000, 4096), (0x3000, 4096)]), None);
    }
}
