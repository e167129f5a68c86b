// SPDX-License-Identifier: GPL-2.0

//! The compatibility section of the migration stream: what a destination VF must match so
//! that the guest can go on using it as if nothing happened. The source sends it during
//! PRE_COPY; the destination compares it with its own VF as soon as it arrives and refuses
//! the stream (the write fails) before the source has stopped.
//!
//! Everything comes from places the driver may read while a VMM owns the VF: the VF's
//! config space and its read-only CAP and VS registers (read when the VF entered vfio
//! mode), the PF's Identify Controller (the product), the Secondary Controller List (the
//! VF's queue and vector resources), the namespaces attached to the VF's secondary
//! controller (Identify through the PF) and the state format the PF produces.
//!
//! Layout, version 1, little-endian:
//!
//! ```text
//!  0  version              u16  1
//!  2  namespace count      u16  at most MAX_NAMESPACES
//!  4  PCI vendor ID        u16
//!  6  PCI device ID        u16
//!  8  subsystem vendor ID  u16
//! 10  subsystem ID         u16
//! 12  revision ID          u8
//! 13  reserved             u8   0
//! 14  MSI-X table size     u16  entries
//! 16  CAP                  u64  the VF's CAP register
//! 24  VS                   u32  the VF's VS register
//! 28  I/O queues           u16  I/O queue pairs of the secondary controller
//! 30  vectors              u16  interrupt vectors of the secondary controller
//! 32  VID                  u16  Identify Controller (of the PF)
//! 34  SSVID                u16
//! 36  model number         40 bytes
//! 76  state format version u16
//! 78  has UUID             u8   0 or 1
//! 79  reserved             u8   0
//! 80  state format UUID    16 bytes (zero without one)
//! 96  namespaces, 40 bytes each, NSIDs strictly increasing:
//!        0 NSID u32 | 4 LBA data size log2 u8 | 5 reserved u8 | 6 metadata bytes u16
//!        8 NSZE u64 | 16 NGUID 16 bytes | 32 EUI64 8 bytes
//! ```

use super::super::{
    lm::formats::{StateFormat, StateFormats},
    wire::{NoRoom, Reader, Truncated, Writer},
};

/// The compatibility format version this driver writes and reads.
pub const COMPAT_VERSION: u16 = 1;
/// Most namespaces a VF may have for migration.
pub const MAX_NAMESPACES: usize = 256;
/// Bytes before the namespaces.
pub const FIXED_SIZE: usize = 96;
/// Bytes of one namespace entry.
pub const NS_ENTRY_SIZE: usize = 40;
/// Largest compatibility section payload.
pub const MAX_SIZE: usize = FIXED_SIZE + MAX_NAMESPACES * NS_ENTRY_SIZE;

/// CAP bits 31:24 (TO, the enable timeout) may differ: it is a property of the device's
/// firmware, and the guest only waits longer or shorter.
const CAP_IGNORED: u64 = 0xff << 24;

/// The PCI identity of the VF.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PciIds {
    /// Vendor ID.
    pub vendor: u16,
    /// Device ID.
    pub device: u16,
    /// Subsystem vendor ID.
    pub subsystem_vendor: u16,
    /// Subsystem ID.
    pub subsystem: u16,
    /// Revision ID.
    pub revision: u8,
}

/// Everything but the namespaces.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Fixed {
    /// The VF's PCI identity.
    pub pci: PciIds,
    /// MSI-X table entries of the VF.
    pub msix_entries: u16,
    /// The VF's CAP register.
    pub cap: u64,
    /// The VF's VS register.
    pub vs: u32,
    /// I/O queue pairs of the secondary controller.
    pub io_queues: u16,
    /// Interrupt vectors of the secondary controller.
    pub vectors: u16,
    /// Identify Controller VID.
    pub vid: u16,
    /// Identify Controller SSVID.
    pub ssvid: u16,
    /// Identify Controller model number.
    pub model: [u8; 40],
    /// The controller state format the source uses.
    pub format: StateFormat,
}

/// One namespace attached to the VF's secondary controller.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct NamespaceInfo {
    /// Namespace ID.
    pub nsid: u32,
    /// log2 of the LBA data size of the format in use.
    pub lba_shift: u8,
    /// Metadata bytes per LBA of the format in use.
    pub metadata: u16,
    /// Size in logical blocks (NSZE).
    pub nsze: u64,
    /// NGUID.
    pub nguid: [u8; 16],
    /// EUI64.
    pub eui64: [u8; 8],
}

/// Why a compatibility payload is malformed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CompatError {
    /// The data ended inside a field.
    Truncated(Truncated),
    /// A version this driver does not read.
    UnsupportedVersion(u16),
    /// More namespaces than [`MAX_NAMESPACES`].
    TooManyNamespaces(u16),
    /// The length is not that of the namespace count.
    Length,
    /// A reserved field or a flag has a value version 1 does not define.
    Reserved,
    /// NSIDs are zero, repeated or not increasing.
    NamespaceOrder,
}

impl From<Truncated> for CompatError {
    fn from(t: Truncated) -> Self {
        Self::Truncated(t)
    }
}

/// A decoded compatibility payload, borrowing the namespace entries.
///
/// # Invariants
///
/// `namespaces` holds exactly `count` well-formed entries with strictly increasing,
/// non-zero NSIDs.
#[derive(Clone, Copy, Debug)]
pub struct CompatView<'a> {
    /// Everything but the namespaces.
    pub fixed: Fixed,
    count: usize,
    namespaces: &'a [u8],
}

fn namespace_at(b: &[u8]) -> Result<(NamespaceInfo, u8), Truncated> {
    let mut r = Reader::new(b);
    let nsid = r.u32()?;
    let lba_shift = r.u8()?;
    let reserved = r.u8()?;
    let metadata = r.u16()?;
    let nsze = r.u64()?;
    let nguid = r.array()?;
    let eui64 = r.array()?;
    Ok((
        NamespaceInfo {
            nsid,
            lba_shift,
            metadata,
            nsze,
            nguid,
            eui64,
        },
        reserved,
    ))
}

impl<'a> CompatView<'a> {
    /// Decodes a payload.
    pub fn parse(b: &'a [u8]) -> Result<Self, CompatError> {
        let mut r = Reader::new(b);
        let version = r.u16()?;
        if version != COMPAT_VERSION {
            return Err(CompatError::UnsupportedVersion(version));
        }
        let count = r.u16()?;
        if usize::from(count) > MAX_NAMESPACES {
            return Err(CompatError::TooManyNamespaces(count));
        }
        let pci = PciIds {
            vendor: r.u16()?,
            device: r.u16()?,
            subsystem_vendor: r.u16()?,
            subsystem: r.u16()?,
            revision: r.u8()?,
        };
        let reserved1 = r.u8()?;
        let msix_entries = r.u16()?;
        let cap = r.u64()?;
        let vs = r.u32()?;
        let io_queues = r.u16()?;
        let vectors = r.u16()?;
        let vid = r.u16()?;
        let ssvid = r.u16()?;
        let model = r.array()?;
        let version_used = r.u16()?;
        let has_uuid = r.u8()?;
        let reserved2 = r.u8()?;
        let uuid = r.array::<16>()?;
        if reserved1 != 0 || reserved2 != 0 || has_uuid > 1 || (has_uuid == 0 && uuid != [0; 16]) {
            return Err(CompatError::Reserved);
        }
        let count = usize::from(count);
        if r.remaining() != count * NS_ENTRY_SIZE {
            return Err(CompatError::Length);
        }
        let namespaces = r.bytes(count * NS_ENTRY_SIZE)?;
        let mut last = 0u32;
        for e in namespaces.chunks_exact(NS_ENTRY_SIZE) {
            let (ns, reserved) = namespace_at(e)?;
            if reserved != 0 {
                return Err(CompatError::Reserved);
            }
            if ns.nsid <= last {
                return Err(CompatError::NamespaceOrder);
            }
            last = ns.nsid;
        }
        // INVARIANT: every entry was decoded and checked above.
        Ok(Self {
            fixed: Fixed {
                pci,
                msix_entries,
                cap,
                vs,
                io_queues,
                vectors,
                vid,
                ssvid,
                model,
                format: StateFormat {
                    version: version_used,
                    uuid: (has_uuid == 1).then_some(uuid),
                },
            },
            count,
            namespaces,
        })
    }

    /// The namespaces, in increasing NSID order.
    pub fn namespaces(&self) -> impl Iterator<Item = NamespaceInfo> + '_ {
        self.namespaces
            .chunks_exact(NS_ENTRY_SIZE)
            .filter_map(|e| namespace_at(e).ok().map(|(ns, _)| ns))
    }

    /// How many namespaces there are.
    pub fn namespace_count(&self) -> usize {
        self.count
    }
}

/// Bytes of a payload with `namespaces` namespaces.
pub const fn size(namespaces: usize) -> usize {
    FIXED_SIZE + namespaces * NS_ENTRY_SIZE
}

/// Encodes a payload into `out`; returns its length. `namespaces` must be in increasing
/// NSID order and at most [`MAX_NAMESPACES`].
pub fn encode(
    fixed: &Fixed,
    namespaces: &[NamespaceInfo],
    out: &mut [u8],
) -> Result<usize, NoRoom> {
    if namespaces.len() > MAX_NAMESPACES {
        return Err(NoRoom);
    }
    let mut w = Writer::new(out);
    w.u16(COMPAT_VERSION)?;
    w.u16(namespaces.len() as u16)?;
    w.u16(fixed.pci.vendor)?;
    w.u16(fixed.pci.device)?;
    w.u16(fixed.pci.subsystem_vendor)?;
    w.u16(fixed.pci.subsystem)?;
    w.u8(fixed.pci.revision)?;
    w.u8(0)?;
    w.u16(fixed.msix_entries)?;
    w.u64(fixed.cap)?;
    w.u32(fixed.vs)?;
    w.u16(fixed.io_queues)?;
    w.u16(fixed.vectors)?;
    w.u16(fixed.vid)?;
    w.u16(fixed.ssvid)?;
    w.bytes(&fixed.model)?;
    w.u16(fixed.format.version)?;
    w.u8(u8::from(fixed.format.uuid.is_some()))?;
    w.u8(0)?;
    w.bytes(&fixed.format.uuid.unwrap_or([0; 16]))?;
    for ns in namespaces {
        w.u32(ns.nsid)?;
        w.u8(ns.lba_shift)?;
        w.u8(0)?;
        w.u16(ns.metadata)?;
        w.u64(ns.nsze)?;
        w.bytes(&ns.nguid)?;
        w.bytes(&ns.eui64)?;
    }
    Ok(w.pos())
}

/// What differs between a source and a destination.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mismatch {
    /// The VFs' PCI identities.
    PciIds,
    /// The VFs' MSI-X table sizes.
    Msix,
    /// CAP (apart from the enable timeout).
    Cap {
        /// The source's CAP.
        source: u64,
        /// The destination's CAP.
        destination: u64,
    },
    /// VS.
    Version,
    /// The product (Identify VID, SSVID, model number).
    Product,
    /// The secondary controllers' queue resources.
    IoQueues {
        /// The source's I/O queue pairs.
        source: u16,
        /// The destination's.
        destination: u16,
    },
    /// The secondary controllers' vector resources.
    Vectors {
        /// The source's vectors.
        source: u16,
        /// The destination's.
        destination: u16,
    },
    /// The destination cannot take the source's controller state format.
    StateFormat,
    /// The sets of namespaces differ (the first NSID that is not on both sides).
    NamespaceSet {
        /// The NSID.
        nsid: u32,
    },
    /// A namespace's format, size or identity differs.
    Namespace {
        /// The NSID.
        nsid: u32,
    },
}

/// Checks that a destination VF (`fixed`, `namespaces`, able to take the state formats in
/// `formats`) can continue what the source described in `source`.
pub fn check(
    source: &CompatView<'_>,
    fixed: &Fixed,
    namespaces: &[NamespaceInfo],
    formats: &StateFormats,
) -> Result<(), Mismatch> {
    let s = &source.fixed;
    if s.pci != fixed.pci {
        return Err(Mismatch::PciIds);
    }
    if s.msix_entries != fixed.msix_entries {
        return Err(Mismatch::Msix);
    }
    if s.cap & !CAP_IGNORED != fixed.cap & !CAP_IGNORED {
        return Err(Mismatch::Cap {
            source: s.cap,
            destination: fixed.cap,
        });
    }
    if s.vs != fixed.vs {
        return Err(Mismatch::Version);
    }
    if (s.vid, s.ssvid, s.model) != (fixed.vid, fixed.ssvid, fixed.model) {
        return Err(Mismatch::Product);
    }
    if s.io_queues != fixed.io_queues {
        return Err(Mismatch::IoQueues {
            source: s.io_queues,
            destination: fixed.io_queues,
        });
    }
    if s.vectors != fixed.vectors {
        return Err(Mismatch::Vectors {
            source: s.vectors,
            destination: fixed.vectors,
        });
    }
    if formats.index_of(&s.format).is_none() {
        return Err(Mismatch::StateFormat);
    }
    let mut theirs = source.namespaces();
    let mut ours = namespaces.iter();
    loop {
        match (theirs.next(), ours.next()) {
            (None, None) => return Ok(()),
            (Some(t), Some(o)) if t.nsid == o.nsid => {
                if t != *o {
                    return Err(Mismatch::Namespace { nsid: t.nsid });
                }
            }
            (Some(t), Some(o)) => {
                return Err(Mismatch::NamespaceSet {
                    nsid: t.nsid.min(o.nsid),
                })
            }
            (Some(t), None) => return Err(Mismatch::NamespaceSet { nsid: t.nsid }),
            (None, Some(o)) => return Err(Mismatch::NamespaceSet { nsid: o.nsid }),
        }
    }
}

/// Test helpers that build compatibility payloads.
#[cfg(test)]
pub(crate) mod build {
    extern crate std;
    use std::vec::Vec;

    /// The fixed part of a QEMU VF with 2 I/O queues and 2 vectors.
    pub(crate) fn fixed() -> super::Fixed {
        let mut model = [b' '; 40];
        model[..14].copy_from_slice(b"QEMU NVMe Ctrl");
        super::Fixed {
            pci: super::PciIds {
                vendor: 0x1b36,
                device: 0x0010,
                subsystem_vendor: 0x1af4,
                subsystem: 0x1100,
                revision: 2,
            },
            msix_entries: 2,
            cap: 0x0040_0820_0f01_07ff,
            vs: 0x0001_0400,
            io_queues: 2,
            vectors: 2,
            vid: 0x1b36,
            ssvid: 0x1af4,
            model,
            format: super::super::super::lm::formats::StateFormat {
                version: 1,
                uuid: Some([0x5a; 16]),
            },
        }
    }

    /// Namespace `nsid` of 512-byte blocks.
    pub(crate) fn ns(nsid: u32) -> super::NamespaceInfo {
        super::NamespaceInfo {
            nsid,
            lba_shift: 9,
            metadata: 0,
            nsze: 0x8_0000,
            nguid: [nsid as u8; 16],
            eui64: [0; 8],
        }
    }

    /// An encoded payload.
    pub(crate) fn payload(fixed: &super::Fixed, namespaces: &[super::NamespaceInfo]) -> Vec<u8> {
        let mut v = std::vec![0u8; super::size(namespaces.len())];
        let n = super::encode(fixed, namespaces, &mut v).unwrap();
        assert_eq!(n, v.len());
        v
    }
}

#[cfg(test)]
mod tests {
    use super::build::{fixed, ns, payload};
    use super::*;

    fn formats(uuid: [u8; 16]) -> StateFormats {
        let mut b = [0u8; 4096];
        b[0] = 1;
        b[1] = 1;
        b[2] = 1;
        b[4..20].copy_from_slice(&uuid);
        StateFormats::parse(&b).unwrap()
    }

    #[test]
    fn round_trips_and_matches_itself() {
        let f = fixed();
        let nss = [ns(2), ns(5)];
        let p = payload(&f, &nss);
        let v = CompatView::parse(&p).unwrap();
        assert_eq!(v.fixed, f);
        assert_eq!(v.namespace_count(), 2);
        assert!(v.namespaces().eq(nss.iter().copied()));
        assert_eq!(check(&v, &f, &nss, &formats([0x5a; 16])), Ok(()));
    }

    #[test]
    fn every_truncation_and_extension_is_refused() {
        let p = payload(&fixed(), &[ns(1), ns(2)]);
        for len in 0..p.len() {
            assert!(CompatView::parse(&p[..len]).is_err(), "length {len}");
        }
        let mut longer = p.clone();
        longer.push(0);
        assert_eq!(CompatView::parse(&longer).err(), Some(CompatError::Length));
    }

    #[test]
    fn malformed_fields_are_refused() {
        let p = payload(&fixed(), &[ns(1), ns(2)]);
        let bad = |at: usize, v: u8| {
            let mut b = p.clone();
            b[at] = v;
            CompatView::parse(&b).err()
        };
        assert_eq!(bad(0, 2), Some(CompatError::UnsupportedVersion(2)));
        assert_eq!(bad(13, 1), Some(CompatError::Reserved));
        assert_eq!(bad(78, 2), Some(CompatError::Reserved));
        assert_eq!(bad(79, 1), Some(CompatError::Reserved));
        assert_eq!(bad(FIXED_SIZE + 5, 1), Some(CompatError::Reserved));
        // The second NSID equal to the first, and zero.
        assert_eq!(
            bad(FIXED_SIZE + NS_ENTRY_SIZE, 1),
            Some(CompatError::NamespaceOrder)
        );
        assert_eq!(bad(FIXED_SIZE, 0), Some(CompatError::NamespaceOrder));
        let mut many = p.clone();
        many[2..4].copy_from_slice(&(MAX_NAMESPACES as u16 + 1).to_le_bytes());
        assert!(matches!(
            CompatView::parse(&many),
            Err(CompatError::TooManyNamespaces(_))
        ));
        let no_uuid = Fixed {
            format: StateFormat {
                version: 1,
                uuid: None,
            },
            ..fixed()
        };
        let mut b = payload(&no_uuid, &[]);
        b[85] = 1;
        assert_eq!(CompatView::parse(&b).err(), Some(CompatError::Reserved));
    }

    #[test]
    fn every_difference_is_named() {
        let f = fixed();
        let nss = [ns(1), ns(2)];
        let p = payload(&f, &nss);
        let src = CompatView::parse(&p).unwrap();
        let fm = formats([0x5a; 16]);
        let with = |g: fn(&mut Fixed)| {
            let mut d = f;
            g(&mut d);
            check(&src, &d, &nss, &fm)
        };
        assert_eq!(with(|d| d.pci.device = 1), Err(Mismatch::PciIds));
        assert_eq!(with(|d| d.msix_entries = 3), Err(Mismatch::Msix));
        assert!(matches!(with(|d| d.cap ^= 1), Err(Mismatch::Cap { .. })));
        assert_eq!(with(|d| d.cap ^= 0xff << 24), Ok(()));
        assert_eq!(with(|d| d.vs = 0x0002_0000), Err(Mismatch::Version));
        assert_eq!(with(|d| d.model[0] = b'X'), Err(Mismatch::Product));
        assert!(matches!(
            with(|d| d.io_queues = 4),
            Err(Mismatch::IoQueues { .. })
        ));
        assert!(matches!(
            with(|d| d.vectors = 1),
            Err(Mismatch::Vectors { .. })
        ));
        assert_eq!(
            check(&src, &f, &nss, &formats([1; 16])),
            Err(Mismatch::StateFormat)
        );
        assert_eq!(
            check(&src, &f, &[ns(1)], &fm),
            Err(Mismatch::NamespaceSet { nsid: 2 })
        );
        assert_eq!(
            check(&src, &f, &[ns(1), ns(2), ns(3)], &fm),
            Err(Mismatch::NamespaceSet { nsid: 3 })
        );
        assert_eq!(
            check(&src, &f, &[ns(1), ns(3)], &fm),
            Err(Mismatch::NamespaceSet { nsid: 2 })
        );
        let mut bigger = ns(2);
        bigger.nsze += 1;
        assert_eq!(
            check(&src, &f, &[ns(1), bigger], &fm),
            Err(Mismatch::Namespace { nsid: 2 })
        );
        let mut other = ns(2);
        other.lba_shift = 12;
        assert_eq!(
            check(&src, &f, &[ns(1), other], &fm),
            Err(Mismatch::Namespace { nsid: 2 })
        );
    }
}
