// SPDX-License-Identifier: GPL-2.0

//! Well-formed migration streams to start from: a destination VF, and streams a
//! compatible source would send to it (several queue counts, vendor sections, namespace
//! sets), encoded with the driver's own encoders.

use rnvme_spec::{
    spec::lm::{
        formats::{StateFormat, StateFormats},
        state::Limits,
    },
    spec::migration::{
        compat::{self, Fixed, NamespaceInfo, PciIds},
        stream::{section_header, SectionKind, StatePayload},
    },
};

/// The destination every stream is checked against: a QEMU NVMe VF with 4 I/O queue
/// pairs and 5 vectors, namespaces 2 and 7, and one state format with a vendor UUID.
pub struct Destination {
    pub fixed: Fixed,
    pub namespaces: Vec<NamespaceInfo>,
    pub formats: StateFormats,
    pub limits: Limits,
}

const UUID: [u8; 16] = *b"rnvme-fuzz-uuid!";

pub fn destination() -> Destination {
    let mut model = [b' '; 40];
    model[..14].copy_from_slice(b"QEMU NVMe Ctrl");
    let format = StateFormat {
        version: 1,
        uuid: Some(UUID),
    };
    let mut list = [0u8; 4096];
    list[0] = 1;
    list[1] = 1;
    list[2..4].copy_from_slice(&1u16.to_le_bytes());
    list[4..20].copy_from_slice(&UUID);
    Destination {
        fixed: Fixed {
            pci: PciIds {
                vendor: 0x1b36,
                device: 0x0010,
                subsystem_vendor: 0x1af4,
                subsystem: 0x1100,
                revision: 2,
            },
            msix_entries: 5,
            cap: 0x0040_0820_0f01_07ff,
            vs: 0x0001_0400,
            io_queues: 4,
            vectors: 5,
            vid: 0x1b36,
            ssvid: 0x1af4,
            model,
            format,
        },
        namespaces: vec![namespace(2, 9), namespace(7, 12)],
        formats: StateFormats::parse(&list).expect("a valid format list"),
        limits: Limits {
            io_queues: 4,
            max_entries: 2048,
            vectors: 5,
        },
    }
}

fn namespace(nsid: u32, lba_shift: u8) -> NamespaceInfo {
    NamespaceInfo {
        nsid,
        lba_shift,
        metadata: 0,
        nsze: 0x10_0000 >> (lba_shift - 9),
        nguid: [nsid as u8; 16],
        eui64: [0; 8],
    }
}

/// A controller state (TP4159 layout) with `pairs` queue pairs and `vendor` bytes of
/// vendor-specific state.
pub fn controller_state(pairs: u16, vendor: usize, suspended: bool) -> Vec<u8> {
    let mut v = Vec::new();
    v.extend_from_slice(&1u16.to_le_bytes());
    v.push(u8::from(suspended));
    v.extend_from_slice(&[0; 13]);
    let nvmecs = 8 + 24 * 2 * usize::from(pairs);
    v.extend_from_slice(&((nvmecs / 4) as u128).to_le_bytes());
    v.extend_from_slice(&((vendor / 4) as u128).to_le_bytes());
    v.extend_from_slice(&1u16.to_le_bytes());
    v.extend_from_slice(&pairs.to_le_bytes());
    v.extend_from_slice(&pairs.to_le_bytes());
    v.extend_from_slice(&[0; 2]);
    for q in 1..=pairs {
        v.extend_from_slice(&(0x10_0000u64 * u64::from(q)).to_le_bytes());
        for f in [255u16, q, q, 1, 3, 9] {
            v.extend_from_slice(&f.to_le_bytes());
        }
        v.extend_from_slice(&[0; 4]);
    }
    for q in 1..=pairs {
        v.extend_from_slice(&(0x20_0000u64 * u64::from(q)).to_le_bytes());
        for f in [255u16, q, 4, 7] {
            v.extend_from_slice(&f.to_le_bytes());
        }
        v.extend_from_slice(&(0b11u32 | (u32::from(q) << 16)).to_le_bytes());
        v.extend_from_slice(&[0; 4]);
    }
    v.extend((0..vendor).map(|i| i as u8));
    v
}

/// A section of `kind` around `payload`.
pub fn section(kind: SectionKind, payload: &[u8]) -> Vec<u8> {
    let mut v = section_header(kind, payload)
        .expect("seed payloads fit")
        .to_vec();
    v.extend_from_slice(payload);
    v
}

/// A whole stream from `fixed` and `namespaces` around `state`.
pub fn stream(fixed: &Fixed, namespaces: &[NamespaceInfo], state: &[u8]) -> Vec<u8> {
    let mut c = vec![0u8; compat::size(namespaces.len())];
    compat::encode(fixed, namespaces, &mut c).expect("seed compat fits");
    let mut payload = StatePayload::prefix(&fixed.format).to_vec();
    payload.extend_from_slice(state);
    let mut v = section(SectionKind::Compat, &c);
    v.extend(section(SectionKind::ControllerState, &payload));
    v.extend(section(SectionKind::End, &[]));
    v
}

/// The seeds: streams the destination accepts, and a few it refuses for one reason each.
pub fn all(dest: &Destination) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    for pairs in [0u16, 1, 2, 4] {
        for vendor in [0usize, 64, 1024] {
            out.push(stream(
                &dest.fixed,
                &dest.namespaces,
                &controller_state(pairs, vendor, true),
            ));
        }
    }
    // One refusal of each kind the mutations may not reach by themselves.
    out.push(stream(
        &dest.fixed,
        &dest.namespaces,
        &controller_state(5, 0, true),
    ));
    out.push(stream(
        &dest.fixed,
        &dest.namespaces,
        &controller_state(1, 0, false),
    ));
    out.push(stream(
        &dest.fixed,
        &dest.namespaces[..1],
        &controller_state(1, 0, true),
    ));
    let mut other = dest.fixed;
    other.io_queues = 8;
    out.push(stream(
        &other,
        &dest.namespaces,
        &controller_state(1, 0, true),
    ));
    out
}
