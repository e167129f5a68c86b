// SPDX-License-Identifier: GPL-2.0

//! Identify data structures (NVM Express Base Specification 2.0, section 5.17.2): the
//! fields the driver uses, decoded from the 4 KiB buffers the controller fills.

use core::fmt;

/// Size of every Identify data structure.
pub const IDENTIFY_SIZE: usize = 4096;

/// A fixed-size ASCII field of an Identify structure (space padded, as the spec says).
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct AsciiField<const N: usize>(pub [u8; N]);

impl<const N: usize> AsciiField<N> {
    /// The field without trailing spaces and NULs; non-printable bytes show as `?`.
    pub fn trimmed(&self) -> &[u8] {
        let end = self
            .0
            .iter()
            .rposition(|&b| b != b' ' && b != 0)
            .map_or(0, |i| i + 1);
        &self.0[..end]
    }
}

impl<const N: usize> fmt::Display for AsciiField<N> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for &b in self.trimmed() {
            let c = if (0x20..0x7f).contains(&b) {
                b as char
            } else {
                '?'
            };
            fmt::Write::write_char(f, c)?;
        }
        Ok(())
    }
}

impl<const N: usize> fmt::Debug for AsciiField<N> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "\"{self}\"")
    }
}

fn u16_at(b: &[u8; IDENTIFY_SIZE], o: usize) -> u16 {
    u16::from_le_bytes([b[o], b[o + 1]])
}

fn u32_at(b: &[u8; IDENTIFY_SIZE], o: usize) -> u32 {
    u32::from_le_bytes([b[o], b[o + 1], b[o + 2], b[o + 3]])
}

fn u64_at(b: &[u8; IDENTIFY_SIZE], o: usize) -> u64 {
    u64::from(u32_at(b, o)) | (u64::from(u32_at(b, o + 4)) << 32)
}

fn ascii<const N: usize>(b: &[u8; IDENTIFY_SIZE], o: usize) -> AsciiField<N> {
    let mut f = [0u8; N];
    f.copy_from_slice(&b[o..o + N]);
    AsciiField(f)
}

/// The Identify Controller fields the driver uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IdentifyController {
    /// PCI vendor ID.
    pub vid: u16,
    /// PCI subsystem vendor ID.
    pub ssvid: u16,
    /// Serial number.
    pub serial: AsciiField<20>,
    /// Model number.
    pub model: AsciiField<40>,
    /// Firmware revision.
    pub firmware: AsciiField<8>,
    /// Maximum data transfer size, as `2 ^ MDTS` minimum pages; 0 means no limit.
    pub mdts: u8,
    /// Controller ID.
    pub cntlid: u16,
    /// Version (same encoding as the VS register).
    pub ver: u32,
    /// Optional asynchronous events supported (bit 8 namespace attribute notices, bit 9
    /// firmware activation notices).
    pub oaes: u32,
    /// Optional admin command support.
    pub oacs: u16,
    /// Asynchronous event request limit, 0's based.
    pub aerl: u8,
    /// Number of namespaces (the highest valid NSID).
    pub nn: u32,
    /// Optional NVM command support (bit 2 DSM, bit 3 Write Zeroes).
    pub oncs: u16,
    /// Volatile write cache present (bit 0).
    pub vwc: u8,
    /// Required and maximum submission queue entry size (bits 3:0 and 7:4, log2).
    pub sqes: u8,
    /// Required and maximum completion queue entry size (bits 3:0 and 7:4, log2).
    pub cqes: u8,
    /// SGL support (bits 1:0: 00b none, 01b any alignment, 10b dword granularity).
    pub sgls: u32,
    /// NVM Subsystem NVMe Qualified Name (NUL padded; empty before NVMe 1.2.1).
    pub subnqn: AsciiField<256>,
}

impl IdentifyController {
    /// Decodes the structure returned by Identify CNS 01h.
    pub fn parse(b: &[u8; IDENTIFY_SIZE]) -> Self {
        Self {
            vid: u16_at(b, 0),
            ssvid: u16_at(b, 2),
            serial: ascii(b, 4),
            model: ascii(b, 24),
            firmware: ascii(b, 64),
            mdts: b[77],
            cntlid: u16_at(b, 78),
            ver: u32_at(b, 80),
            oaes: u32_at(b, 92),
            oacs: u16_at(b, 256),
            aerl: b[259],
            sqes: b[512],
            cqes: b[513],
            nn: u32_at(b, 516),
            oncs: u16_at(b, 520),
            vwc: b[525],
            sgls: u32_at(b, 536),
            subnqn: ascii(b, 768),
        }
    }

    /// The subsystem NQN the C driver shows: SUBNQN, or for a controller without one the
    /// NQN it builds from the vendor IDs, serial and model number (space padded as in
    /// Identify). Written to `out`; returns its length.
    pub fn subsystem_nqn(&self, out: &mut [u8; 256]) -> usize {
        let nqn = self.subnqn.trimmed();
        if !nqn.is_empty() {
            out[..nqn.len()].copy_from_slice(nqn);
            return nqn.len();
        }
        const PREFIX: &[u8] = b"nqn.2014.08.org.nvmexpress:";
        const HEX: &[u8; 16] = b"0123456789abcdef";
        let mut n = 0;
        let mut put = |bytes: &[u8]| {
            for &b in bytes {
                if n < out.len() {
                    out[n] = b;
                    n += 1;
                }
            }
        };
        put(PREFIX);
        for v in [self.vid, self.ssvid] {
            let digits = [12, 8, 4, 0].map(|s| HEX[usize::from((v >> s) & 0xf)]);
            put(&digits);
        }
        put(&self.serial.0);
        put(&self.model.0);
        n
    }

    /// Maximum transfer of one command in bytes for a controller whose minimum page size
    /// is `min_page_size`, or `None` when the controller sets no limit.
    pub fn max_transfer_bytes(&self, min_page_size: usize) -> Option<usize> {
        if self.mdts == 0 {
            return None;
        }
        min_page_size.checked_shl(u32::from(self.mdts))
    }

    /// Whether Doorbell Buffer Config (shadow doorbells) is supported (OACS bit 8).
    pub fn supports_dbbuf(&self) -> bool {
        self.oacs & (1 << 8) != 0
    }

    /// Whether Virtualization Management is supported (OACS bit 7).
    pub fn supports_virtualization_management(&self) -> bool {
        self.oacs & (1 << 7) != 0
    }

    /// Whether NVM commands may describe their data with SGLs (SGLS bits 1:0), as the C
    /// driver tests it.
    pub fn supports_sgls(&self) -> bool {
        self.sgls & 0b11 != 0
    }

    /// Whether a volatile write cache is present.
    pub fn has_volatile_write_cache(&self) -> bool {
        self.vwc & 1 != 0
    }
}

/// The Identify Namespace (NVM command set) fields the driver uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IdentifyNamespace {
    /// Namespace size in logical blocks.
    pub nsze: u64,
    /// Namespace capacity in logical blocks.
    pub ncap: u64,
    /// Number of LBA formats, 0's based.
    pub nlbaf: u8,
    /// Formatted LBA size: bits 3:0 (and 6:5) select the LBA format.
    pub flbas: u8,
    /// log2 of the logical block size of the format in use.
    pub lba_shift: u8,
    /// Metadata bytes per logical block of the format in use.
    pub metadata: u16,
    /// Namespace Globally Unique Identifier (all zero: none).
    pub nguid: [u8; 16],
    /// IEEE Extended Unique Identifier (all zero: none).
    pub eui64: [u8; 8],
}

impl IdentifyNamespace {
    /// Decodes the structure returned by Identify CNS 00h, or `None` for an inactive
    /// namespace (all zeroes) or an LBA format outside the structure.
    pub fn parse(b: &[u8; IDENTIFY_SIZE]) -> Option<Self> {
        let nsze = u64_at(b, 0);
        let nlbaf = b[25];
        let flbas = b[26];
        let format = usize::from(flbas & 0xf) | (usize::from((flbas >> 5) & 0x3) << 4);
        if nsze == 0 || format > usize::from(nlbaf) || format >= 64 {
            return None;
        }
        // LBA format descriptors start at byte 128, four bytes each; LBADS is byte 2.
        let lba_shift = b[128 + 4 * format + 2];
        if !(9..=16).contains(&lba_shift) {
            return None;
        }
        let mut nguid = [0u8; 16];
        nguid.copy_from_slice(&b[104..120]);
        let mut eui64 = [0u8; 8];
        eui64.copy_from_slice(&b[120..128]);
        Some(Self {
            nsze,
            ncap: u64_at(b, 8),
            nlbaf,
            flbas,
            lba_shift,
            metadata: u16_at(b, 128 + 4 * format),
            nguid,
            eui64,
        })
    }

    /// Whether `other` describes the same namespace as far as its identifiers tell (NGUID
    /// and EUI-64, as the C driver compares them): a namespace deleted and created again
    /// under the same NSID has new ones.
    pub fn same_identity(&self, other: &Self) -> bool {
        self.nguid == other.nguid && self.eui64 == other.eui64
    }

    /// Whether the driver can serve the namespace as a disk: logical blocks of at most
    /// `max_block_size` bytes and no metadata (the driver sends no metadata buffers, and
    /// with extended LBAs the data would interleave with metadata).
    pub fn usable(&self, max_block_size: u32) -> bool {
        self.metadata == 0 && self.block_size() <= max_block_size
    }

    /// The logical block size in bytes.
    pub fn block_size(&self) -> u32 {
        1 << self.lba_shift
    }
}

/// The controller IDs of a Controller List (Identify CNS 12h, 13h): a count, then that
/// many IDs (at most 2047).
pub fn controller_list(b: &[u8; IDENTIFY_SIZE]) -> impl Iterator<Item = u16> + '_ {
    let n = usize::from(u16_at(b, 0)).min(IDENTIFY_SIZE / 2 - 1);
    b[2..2 + 2 * n]
        .chunks_exact(2)
        .map(|c| u16::from_le_bytes([c[0], c[1]]))
}

/// The namespace IDs listed by Identify CNS 02h (Active Namespace ID list), in order,
/// stopping at the first zero entry.
pub fn active_namespaces(b: &[u8; IDENTIFY_SIZE]) -> impl Iterator<Item = u32> + '_ {
    b.chunks_exact(4)
        .map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .take_while(|&id| id != 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn qemu_controller() -> [u8; IDENTIFY_SIZE] {
        let mut b = [0u8; IDENTIFY_SIZE];
        b[0..2].copy_from_slice(&0x1b36u16.to_le_bytes());
        b[4..24].copy_from_slice(b"RNVME0001           ");
        b[24..64].copy_from_slice(b"QEMU NVMe Ctrl                          ");
        b[64..72].copy_from_slice(b"10.0.2  ");
        b[77] = 7;
        b[78..80].copy_from_slice(&0u16.to_le_bytes());
        b[80..84].copy_from_slice(&0x0001_0400u32.to_le_bytes());
        b[256..258].copy_from_slice(&0x008au16.to_le_bytes());
        b[259] = 3;
        b[512] = 0x66;
        b[513] = 0x44;
        b[516..520].copy_from_slice(&256u32.to_le_bytes());
        b[520..522].copy_from_slice(&0x015du16.to_le_bytes());
        b[525] = 1;
        b[536..540].copy_from_slice(&0x0010_0001u32.to_le_bytes());
        b
    }

    #[test]
    fn controller_fields() {
        let mut raw = qemu_controller();
        raw[2..4].copy_from_slice(&0x1af4u16.to_le_bytes());
        let id = IdentifyController::parse(&raw);
        assert_eq!(id.vid, 0x1b36);
        assert_eq!(id.ssvid, 0x1af4);
        assert_eq!(std::format!("{}", id.serial), "RNVME0001");
        assert_eq!(std::format!("{}", id.model), "QEMU NVMe Ctrl");
        assert_eq!(std::format!("{}", id.firmware), "10.0.2");
        assert_eq!(id.max_transfer_bytes(4096), Some(512 * 1024));
        assert_eq!(id.ver, 0x0001_0400);
        assert!(id.supports_virtualization_management());
        assert!(id.has_volatile_write_cache());
        assert_eq!(id.nn, 256);
        assert_eq!((id.sqes, id.cqes), (0x66, 0x44));
        assert!(id.supports_sgls());
        raw[536] = 0;
        assert!(!IdentifyController::parse(&raw).supports_sgls());
    }

    #[test]
    fn ascii_fields_never_print_control_bytes() {
        let f = AsciiField(*b"ab\x01\xff  \0\0");
        assert_eq!(std::format!("{f}"), "ab??");
        assert_eq!(std::format!("{}", AsciiField([b' '; 4])), "");
    }

    #[test]
    fn unlimited_mdts() {
        let mut b = qemu_controller();
        b[77] = 0;
        assert_eq!(IdentifyController::parse(&b).max_transfer_bytes(4096), None);
        b[77] = 200;
        assert_eq!(IdentifyController::parse(&b).max_transfer_bytes(4096), None);
    }

    #[test]
    fn subsystem_nqn_is_subnqn_or_built_like_the_c_driver() {
        let mut b = [0u8; IDENTIFY_SIZE];
        b[0..2].copy_from_slice(&0x1b36u16.to_le_bytes());
        b[2..4].copy_from_slice(&0x1af4u16.to_le_bytes());
        b[4..24].copy_from_slice(b"SER1                ");
        b[24..64].copy_from_slice(b"MODEL                                   ");
        let mut out = [0u8; 256];
        let n = IdentifyController::parse(&b).subsystem_nqn(&mut out);
        let built = [
            &b"nqn.2014.08.org.nvmexpress:1b361af4"[..],
            &b[4..24],
            &b[24..64],
        ]
        .concat();
        assert_eq!(&out[..n], &built[..]);
        b[768..768 + 25].copy_from_slice(b"nqn.2019-08.org.qemu:sub0");
        let n = IdentifyController::parse(&b).subsystem_nqn(&mut out);
        assert_eq!(&out[..n], b"nqn.2019-08.org.qemu:sub0");
    }

    #[test]
    fn namespace_uses_the_selected_lba_format() {
        let mut b = [0u8; IDENTIFY_SIZE];
        b[0..8].copy_from_slice(&524_288u64.to_le_bytes());
        b[8..16].copy_from_slice(&524_288u64.to_le_bytes());
        b[25] = 1; // two formats
        b[26] = 1; // format 1 in use
        b[128 + 2] = 9; // format 0: 512 B
        b[132 + 2] = 12; // format 1: 4 KiB
        b[132..134].copy_from_slice(&8u16.to_le_bytes()); // format 1: 8 metadata bytes
        b[104..120].copy_from_slice(&[0xab; 16]);
        b[120..128].copy_from_slice(&[0xcd; 8]);
        let ns = IdentifyNamespace::parse(&b).expect("active namespace");
        assert_eq!(ns.block_size(), 4096);
        assert_eq!(ns.nsze, 524_288);
        assert_eq!(ns.metadata, 8);
        assert_eq!((ns.nguid, ns.eui64), ([0xab; 16], [0xcd; 8]));
        // 8 bytes of metadata per block: not served.
        assert!(!ns.usable(4096));

        // Identifiers: the same namespace until they change.
        let mut other = b;
        other[26] = 0;
        let reformatted = IdentifyNamespace::parse(&other).expect("active namespace");
        assert!(ns.same_identity(&reformatted));
        other[104] = 0x42;
        let replaced = IdentifyNamespace::parse(&other).expect("active namespace");
        assert_eq!(replaced.nguid[0], 0x42);
        assert!(!ns.same_identity(&replaced));
        other[104] = 0xab;
        other[127] = 1;
        assert!(!ns.same_identity(&IdentifyNamespace::parse(&other).expect("active")));

        // Without metadata: served if the blocks fit.
        b[132..134].copy_from_slice(&0u16.to_le_bytes());
        let ns = IdentifyNamespace::parse(&b).expect("active namespace");
        assert!(ns.usable(4096));
        assert!(!ns.usable(512));

        b[26] = 2; // format beyond NLBAF
        assert_eq!(IdentifyNamespace::parse(&b), None);
        assert_eq!(IdentifyNamespace::parse(&[0; IDENTIFY_SIZE]), None);
    }

    #[test]
    fn controller_list_has_a_count_and_is_bounded() {
        let mut b = [0u8; IDENTIFY_SIZE];
        b[0] = 2;
        b[2..6].copy_from_slice(&[1, 0, 7, 0]);
        b[6] = 9; // beyond the count
        assert!(controller_list(&b).eq([1u16, 7]));
        b[0..2].copy_from_slice(&u16::MAX.to_le_bytes());
        assert_eq!(controller_list(&b).count(), IDENTIFY_SIZE / 2 - 1);
    }

    #[test]
    fn active_namespace_list_stops_at_zero() {
        let mut b = [0u8; IDENTIFY_SIZE];
        b[0..4].copy_from_slice(&1u32.to_le_bytes());
        b[4..8].copy_from_slice(&3u32.to_le_bytes());
        b[12..16].copy_from_slice(&9u32.to_le_bytes());
        let v: std::vec::Vec<u32> = active_namespaces(&b).collect();
        assert_eq!(v, [1, 3]);
    }
}
