// SPDX-License-Identifier: GPL-2.0

//! Identify Supported Controller State Formats (CNS 0x20): the versions of the standard
//! NVMe controller state a primary controller can produce and accept, and the UUIDs of
//! vendor-specific state formats it adds to them.
//!
//! Layout: NV (u8, number of versions) at 0, NUUID (u8) at 1, NV little-endian `u16`
//! versions from 2, then NUUID 16-byte UUIDs.

use super::super::wire::Reader;
use super::command::FormatIndex;

/// Identify CNS value of the structure.
pub const CNS_SUPPORTED_CTRL_STATE_FORMATS: u8 = 0x20;

/// Most versions and UUIDs kept from the list (a controller offers one or two).
pub const MAX_FORMATS: usize = 8;

/// A UUID, in the byte order of the structure.
pub type Uuid = [u8; 16];

/// A controller state format: a version of the standard state and, optionally, the vendor
/// format of its vendor-specific section.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct StateFormat {
    /// Version of the NVMe controller state.
    pub version: u16,
    /// UUID of the vendor-specific format (`None`: the state has no vendor section).
    pub uuid: Option<Uuid>,
}

/// The decoded list.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct StateFormats {
    versions: [u16; MAX_FORMATS],
    nv: usize,
    uuids: [Uuid; MAX_FORMATS],
    nuuid: usize,
}

/// The structure does not fit its own counts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BadFormatList;

impl StateFormats {
    /// Decodes the structure (`b` is the Identify data). Entries beyond
    /// [`MAX_FORMATS`] of each kind are ignored.
    pub fn parse(b: &[u8]) -> Result<Self, BadFormatList> {
        let mut r = Reader::new(b);
        let nv = usize::from(r.u8().map_err(|_| BadFormatList)?);
        let nuuid = usize::from(r.u8().map_err(|_| BadFormatList)?);
        let mut out = Self::default();
        for i in 0..nv {
            let v = r.u16().map_err(|_| BadFormatList)?;
            if i < MAX_FORMATS {
                out.versions[i] = v;
            }
        }
        for i in 0..nuuid {
            let u = r.array::<16>().map_err(|_| BadFormatList)?;
            if i < MAX_FORMATS {
                out.uuids[i] = u;
            }
        }
        out.nv = nv.min(MAX_FORMATS);
        out.nuuid = nuuid.min(MAX_FORMATS);
        Ok(out)
    }

    /// Whether the controller offers any format at all.
    pub fn is_empty(&self) -> bool {
        self.nv == 0
    }

    /// The versions offered.
    pub fn versions(&self) -> &[u16] {
        &self.versions[..self.nv]
    }

    /// The vendor format UUIDs offered.
    pub fn uuids(&self) -> &[Uuid] {
        &self.uuids[..self.nuuid]
    }

    /// The format a source uses: the first version offered, with the first vendor format
    /// if there is one (the standard state alone leaves out the admin queue and the
    /// features a controller needs to continue).
    pub fn preferred(&self) -> Option<StateFormat> {
        Some(StateFormat {
            version: *self.versions().first()?,
            uuid: self.uuids().first().copied(),
        })
    }

    /// The indexes that select `format` on this controller, if it supports it.
    pub fn index_of(&self, format: &StateFormat) -> Option<FormatIndex> {
        let version = self.versions().iter().position(|v| *v == format.version)?;
        let uuid = match &format.uuid {
            None => 0,
            Some(u) => self.uuids().iter().position(|x| x == u)? + 1,
        };
        Some(FormatIndex {
            version: u8::try_from(version).ok()?,
            uuid: u8::try_from(uuid).ok()?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn list(versions: &[u16], uuids: &[Uuid]) -> [u8; 4096] {
        let mut b = [0u8; 4096];
        b[0] = versions.len() as u8;
        b[1] = uuids.len() as u8;
        let mut o = 2;
        for v in versions {
            b[o..o + 2].copy_from_slice(&v.to_le_bytes());
            o += 2;
        }
        for u in uuids {
            b[o..o + 16].copy_from_slice(u);
            o += 16;
        }
        b
    }

    #[test]
    fn decodes_versions_and_uuids_and_prefers_the_first_of_each() {
        let u1 = [0x11; 16];
        let u2 = [0x22; 16];
        let f = StateFormats::parse(&list(&[1, 2], &[u1, u2])).unwrap();
        assert_eq!(f.versions(), &[1, 2]);
        assert_eq!(f.uuids(), &[u1, u2]);
        let p = f.preferred().unwrap();
        assert_eq!(
            p,
            StateFormat {
                version: 1,
                uuid: Some(u1)
            }
        );
        assert_eq!(
            f.index_of(&p),
            Some(FormatIndex {
                version: 0,
                uuid: 1
            })
        );
        let other = StateFormat {
            version: 2,
            uuid: Some(u2),
        };
        assert_eq!(
            f.index_of(&other),
            Some(FormatIndex {
                version: 1,
                uuid: 2
            })
        );
        let plain = StateFormat {
            version: 2,
            uuid: None,
        };
        assert_eq!(
            f.index_of(&plain),
            Some(FormatIndex {
                version: 1,
                uuid: 0
            })
        );
    }

    #[test]
    fn unknown_formats_have_no_index() {
        let f = StateFormats::parse(&list(&[1], &[[1; 16]])).unwrap();
        assert_eq!(
            f.index_of(&StateFormat {
                version: 3,
                uuid: None
            }),
            None
        );
        assert_eq!(
            f.index_of(&StateFormat {
                version: 1,
                uuid: Some([2; 16])
            }),
            None
        );
    }

    #[test]
    fn an_empty_list_offers_nothing() {
        let f = StateFormats::parse(&list(&[], &[])).unwrap();
        assert!(f.is_empty());
        assert_eq!(f.preferred(), None);
    }

    #[test]
    fn counts_beyond_the_data_are_refused() {
        let mut b = [0u8; 40];
        b[0] = 2;
        b[1] = 3; // 2 + 4 + 48 bytes needed
        assert_eq!(StateFormats::parse(&b), Err(BadFormatList));
    }
}
