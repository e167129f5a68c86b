// SPDX-License-Identifier: GPL-2.0

//! SR-IOV through NVMe Virtualization Management: the Primary Controller Capabilities and
//! Secondary Controller List structures, the Virtualization Management command, and the
//! policy that splits a primary controller's flexible resources among its VFs.

use super::command::{admin, Command};
use super::identify::IDENTIFY_SIZE;

fn u16_at(b: &[u8], o: usize) -> u16 {
    u16::from_le_bytes([b[o], b[o + 1]])
}

fn u32_at(b: &[u8], o: usize) -> u32 {
    u32::from_le_bytes([b[o], b[o + 1], b[o + 2], b[o + 3]])
}

/// A kind of flexible resource.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum Resource {
    /// Virtual queue resources (each a submission/completion queue pair; the admin queue
    /// counts as one).
    Queue = 0,
    /// Virtual interrupt resources (MSI-X vectors).
    Interrupt = 1,
}

/// One kind of flexible resource of a primary controller.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FlexiblePool {
    /// Total flexible resources (VQFRT/VIFRT).
    pub total: u32,
    /// Flexible resources allocated to the primary controller (VQRFAP/VIRFAP).
    pub primary: u16,
    /// Most flexible resources one secondary controller may have (VQFRSM/VIFRSM).
    pub max_per_secondary: u16,
    /// Granularity of assignments (VQGRAN/VIGRAN); 0 or 1 means any number.
    pub granularity: u16,
}

/// Identify Primary Controller Capabilities (CNS 0x14).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PrimaryCaps {
    /// The primary controller's ID.
    pub cntlid: u16,
    /// Controller Resource Types: bit 0 queues are flexible, bit 1 interrupts are.
    pub crt: u8,
    /// Virtual queue resources.
    pub vq: FlexiblePool,
    /// Virtual interrupt resources.
    pub vi: FlexiblePool,
}

impl PrimaryCaps {
    /// Decodes the structure.
    pub fn parse(b: &[u8; IDENTIFY_SIZE]) -> Self {
        Self {
            cntlid: u16_at(b, 0),
            crt: b[4],
            vq: FlexiblePool {
                total: u32_at(b, 32),
                primary: u16_at(b, 40),
                max_per_secondary: u16_at(b, 44),
                granularity: u16_at(b, 46),
            },
            vi: FlexiblePool {
                total: u32_at(b, 64),
                primary: u16_at(b, 72),
                max_per_secondary: u16_at(b, 76),
                granularity: u16_at(b, 78),
            },
        }
    }

    /// Whether both queues and interrupts are flexible (assigned by Virtualization
    /// Management); otherwise every VF has private resources of its own.
    pub fn flexible(&self) -> bool {
        self.crt & 0b11 == 0b11
    }
}

/// One entry of the Secondary Controller List.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SecondaryCtrl {
    /// Secondary controller ID.
    pub scid: u16,
    /// Its primary controller's ID.
    pub pcid: u16,
    /// Whether it is online.
    pub online: bool,
    /// The VF it belongs to (1-based; 0: none).
    pub vfn: u16,
    /// Virtual queue resources assigned.
    pub nvq: u16,
    /// Virtual interrupt resources assigned.
    pub nvi: u16,
}

/// Most entries a Secondary Controller List holds.
pub const MAX_SECONDARIES: usize = 127;

/// Decodes the Secondary Controller List (CNS 0x15): the number of entries at byte 0,
/// 32-byte entries from byte 32.
pub fn secondary_list(b: &[u8; IDENTIFY_SIZE]) -> impl Iterator<Item = SecondaryCtrl> + '_ {
    let n = usize::from(b[0]).min(MAX_SECONDARIES);
    b[32..].chunks_exact(32).take(n).map(|e| SecondaryCtrl {
        scid: u16_at(e, 0),
        pcid: u16_at(e, 2),
        online: e[4] & 1 != 0,
        vfn: u16_at(e, 8),
        nvq: u16_at(e, 10),
        nvi: u16_at(e, 12),
    })
}

/// Virtualization Management actions.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum VirtAction {
    /// Take a secondary controller offline (it loses its flexible resources).
    Offline,
    /// Assign `count` resources of a kind to an offline secondary controller.
    Assign(Resource, u16),
    /// Bring a secondary controller online.
    Online,
}

impl Command {
    /// Virtualization Management `action` on controller `cntlid`.
    pub fn virt_mgmt(cntlid: u16, action: VirtAction) -> Self {
        let (act, rt, nr) = match action {
            VirtAction::Offline => (0x7, 0, 0),
            VirtAction::Assign(rt, nr) => (0x8, rt as u32, nr),
            VirtAction::Online => (0x9, 0, 0),
        };
        Command::new(admin::VIRT_MGMT)
            .with_cdw(10, act | (rt << 8) | (u32::from(cntlid) << 16))
            .with_cdw(11, u32::from(nr))
    }
}

/// What each VF's secondary controller gets.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct VfResources {
    /// Virtual queue resources (at least 2: the admin queue and one I/O queue).
    pub queues: u16,
    /// Virtual interrupt resources (at least 1).
    pub vectors: u16,
}

/// The Virtualization Management actions that give a secondary controller the resources
/// `want`, in order, skipping what the controller already reports in `current` (its entry
/// of a Secondary Controller List just read): Offline only if it is online, each Assign
/// only if its count differs. With `None` (the state is unknown, as after a reset that
/// dropped the resources) every action is sent.
pub fn resource_actions(
    current: Option<&SecondaryCtrl>,
    want: VfResources,
) -> impl Iterator<Item = VirtAction> {
    let (offline, queues, vectors) = match current {
        None => (true, true, true),
        Some(c) => (
            c.online,
            c.online || c.nvq != want.queues,
            c.online || c.nvi != want.vectors,
        ),
    };
    [
        offline.then_some(VirtAction::Offline),
        queues.then_some(VirtAction::Assign(Resource::Queue, want.queues)),
        vectors.then_some(VirtAction::Assign(Resource::Interrupt, want.vectors)),
    ]
    .into_iter()
    .flatten()
}

/// Why flexible resources cannot be split as asked.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PlanError {
    /// Fewer than the minimum per VF would be left (2 queues, 1 vector).
    NotEnough(Resource),
    /// An explicit request exceeds the per-secondary maximum or is not a multiple of the
    /// granularity.
    Invalid(Resource),
}

/// Least queue resources a secondary controller can run with: admin and one I/O queue.
pub const MIN_VF_QUEUES: u16 = 2;
/// Least interrupt resources: one vector shared by the admin and the I/O queue.
pub const MIN_VF_VECTORS: u16 = 1;

fn plan_one(
    pool: &FlexiblePool,
    available: u32,
    vfs: u16,
    wanted: u16,
    min: u16,
    kind: Resource,
) -> Result<u16, PlanError> {
    let gran = pool.granularity.max(1);
    let count = if wanted == 0 {
        // An even split of what is available, capped and rounded down to the granularity.
        let share = (available / u32::from(vfs.max(1))).min(u32::from(pool.max_per_secondary));
        let share = u16::try_from(share).unwrap_or(u16::MAX);
        share / gran * gran
    } else {
        // (`is_multiple_of` is newer than the kernel's minimum Rust version.)
        if wanted > pool.max_per_secondary || wanted / gran * gran != wanted {
            return Err(PlanError::Invalid(kind));
        }
        wanted
    };
    if count < min || u32::from(count) * u32::from(vfs) > available {
        return Err(PlanError::NotEnough(kind));
    }
    Ok(count)
}

/// Splits the flexible resources among `vfs` VFs. `available_vq`/`available_vi` are the
/// flexible resources neither the primary nor other secondary controllers hold;
/// `wanted` overrides the even split per kind where non-zero.
pub fn plan(
    caps: &PrimaryCaps,
    vfs: u16,
    available_vq: u32,
    available_vi: u32,
    wanted: VfResources,
) -> Result<VfResources, PlanError> {
    Ok(VfResources {
        queues: plan_one(
            &caps.vq,
            available_vq,
            vfs,
            wanted.queues,
            MIN_VF_QUEUES,
            Resource::Queue,
        )?,
        vectors: plan_one(
            &caps.vi,
            available_vi,
            vfs,
            wanted.vectors,
            MIN_VF_VECTORS,
            Resource::Interrupt,
        )?,
    })
}

/// Flexible resources of `pool` that neither the primary controller nor the secondaries
/// outside `vfs` (1-based VF numbers up to `vfs`) hold: what `vfs` VFs can share.
pub fn available(
    pool: &FlexiblePool,
    secondaries: impl Iterator<Item = SecondaryCtrl>,
    kind: Resource,
    vfs: u16,
) -> u32 {
    let held_elsewhere: u32 = secondaries
        .filter(|s| s.vfn == 0 || s.vfn > vfs)
        .map(|s| {
            u32::from(if kind == Resource::Queue {
                s.nvq
            } else {
                s.nvi
            })
        })
        .sum();
    pool.total
        .saturating_sub(u32::from(pool.primary))
        .saturating_sub(held_elsewhere)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// QEMU's emulated controller with 8 VFs, 24 flexible queues and 16 flexible vectors.
    fn qemu_caps() -> [u8; IDENTIFY_SIZE] {
        let mut b = [0u8; IDENTIFY_SIZE];
        b[4] = 0b11;
        b[32..36].copy_from_slice(&24u32.to_le_bytes());
        b[44..46].copy_from_slice(&3u16.to_le_bytes());
        b[46..48].copy_from_slice(&1u16.to_le_bytes());
        b[64..68].copy_from_slice(&16u32.to_le_bytes());
        b[76..78].copy_from_slice(&2u16.to_le_bytes());
        b[78..80].copy_from_slice(&1u16.to_le_bytes());
        b
    }

    #[test]
    fn resource_actions_skip_what_is_already_so() {
        let want = VfResources {
            queues: 3,
            vectors: 2,
        };
        let all = [
            VirtAction::Offline,
            VirtAction::Assign(Resource::Queue, 3),
            VirtAction::Assign(Resource::Interrupt, 2),
        ];
        let acts =
            |c: Option<&SecondaryCtrl>| resource_actions(c, want).collect::<std::vec::Vec<_>>();
        assert_eq!(acts(None), all);
        let mut c = SecondaryCtrl {
            scid: 1,
            pcid: 0,
            online: true,
            vfn: 1,
            nvq: 3,
            nvi: 2,
        };
        // Online: its resources cannot change until it is offline, so everything again.
        assert_eq!(acts(Some(&c)), all);
        c.online = false;
        assert_eq!(acts(Some(&c)), []);
        c.nvq = 0;
        assert_eq!(acts(Some(&c)), [VirtAction::Assign(Resource::Queue, 3)]);
        c.nvi = 1;
        assert_eq!(acts(Some(&c)), &all[1..]);
        c.nvq = 3;
        assert_eq!(acts(Some(&c)), [VirtAction::Assign(Resource::Interrupt, 2)]);
    }

    #[test]
    fn primary_caps_decode() {
        let c = PrimaryCaps::parse(&qemu_caps());
        assert!(c.flexible());
        assert_eq!((c.vq.total, c.vq.max_per_secondary), (24, 3));
        assert_eq!((c.vi.total, c.vi.max_per_secondary), (16, 2));
    }

    #[test]
    fn secondary_list_decodes_and_bounds_the_count() {
        let mut b = [0u8; IDENTIFY_SIZE];
        b[0] = 2;
        b[32..34].copy_from_slice(&0x41u16.to_le_bytes());
        b[36] = 1;
        b[40..42].copy_from_slice(&1u16.to_le_bytes());
        b[42..44].copy_from_slice(&3u16.to_le_bytes());
        b[44..46].copy_from_slice(&2u16.to_le_bytes());
        b[64 + 8..64 + 10].copy_from_slice(&2u16.to_le_bytes());
        let v: std::vec::Vec<_> = secondary_list(&b).collect();
        assert_eq!(v.len(), 2);
        assert_eq!(
            v[0],
            SecondaryCtrl {
                scid: 0x41,
                pcid: 0,
                online: true,
                vfn: 1,
                nvq: 3,
                nvi: 2
            }
        );
        assert_eq!(v[1].vfn, 2);
        // A hostile count never reads past the structure.
        b[0] = 255;
        assert_eq!(secondary_list(&b).count(), MAX_SECONDARIES);
    }

    #[test]
    fn virt_mgmt_encodes_action_resource_and_controller() {
        let c = Command::virt_mgmt(0x42, VirtAction::Assign(Resource::Interrupt, 2));
        assert_eq!(c.opcode(), 0x1c);
        assert_eq!(c.dw[10], 0x8 | (1 << 8) | (0x42 << 16));
        assert_eq!(c.dw[11], 2);
        assert_eq!(
            Command::virt_mgmt(1, VirtAction::Offline).dw[10],
            0x7 | (1 << 16)
        );
        assert_eq!(
            Command::virt_mgmt(1, VirtAction::Online).dw[10],
            0x9 | (1 << 16)
        );
    }

    #[test]
    fn even_split_is_capped_by_the_per_secondary_maximum() {
        let c = PrimaryCaps::parse(&qemu_caps());
        let auto = VfResources {
            queues: 0,
            vectors: 0,
        };
        for (vfs, want) in [(1, (3, 2)), (4, (3, 2)), (8, (3, 2))] {
            let r = plan(&c, vfs, 24, 16, auto).expect("fits");
            assert_eq!((r.queues, r.vectors), want, "{vfs} VFs");
        }
        // Only 10 queues left: 5 VFs get 2 each, 6 VFs cannot run.
        assert_eq!(plan(&c, 5, 10, 16, auto).map(|r| r.queues), Ok(2));
        assert_eq!(
            plan(&c, 6, 10, 16, auto),
            Err(PlanError::NotEnough(Resource::Queue))
        );
    }

    #[test]
    fn explicit_requests_are_validated() {
        let c = PrimaryCaps::parse(&qemu_caps());
        let want = |queues, vectors| VfResources { queues, vectors };
        assert_eq!(
            plan(&c, 8, 24, 16, want(2, 1)),
            Ok(VfResources {
                queues: 2,
                vectors: 1
            })
        );
        assert_eq!(
            plan(&c, 1, 24, 16, want(4, 0)),
            Err(PlanError::Invalid(Resource::Queue))
        );
        assert_eq!(
            plan(&c, 1, 24, 16, want(1, 0)),
            Err(PlanError::NotEnough(Resource::Queue))
        );
        assert_eq!(
            plan(&c, 8, 24, 10, want(0, 2)),
            Err(PlanError::NotEnough(Resource::Interrupt))
        );
    }

    #[test]
    fn granularity_rounds_the_split_down_and_rejects_other_requests() {
        let mut c = PrimaryCaps::parse(&qemu_caps());
        c.vq.granularity = 2;
        let want = |queues| VfResources { queues, vectors: 0 };
        assert_eq!(plan(&c, 8, 24, 16, want(0)).map(|r| r.queues), Ok(2));
        assert_eq!(
            plan(&c, 8, 24, 16, want(3)),
            Err(PlanError::Invalid(Resource::Queue))
        );
    }

    #[test]
    fn availability_excludes_primary_and_foreign_secondaries() {
        let c = PrimaryCaps::parse(&qemu_caps());
        let s = |vfn, nvq| SecondaryCtrl {
            vfn,
            nvq,
            ..Default::default()
        };
        let list = [s(1, 3), s(2, 3), s(3, 3)];
        // VFs 1 and 2 are being configured: only VF 3's queues are held elsewhere.
        assert_eq!(available(&c.vq, list.into_iter(), Resource::Queue, 2), 21);
        assert_eq!(available(&c.vq, list.into_iter(), Resource::Queue, 3), 24);
    }
}
