// SPDX-License-Identifier: GPL-2.0

//! What a VF's migration is about (its PF, its secondary controller, the formats) and the
//! commands and stream sections it is made of.

use kernel::{prelude::*, sync::Arc, types::ARef};

use crate::{
    kapi::{
        device::{dev_err, Core},
        pci,
    },
    nvme::{
        ctrl_base::BAR0_NAME,
        nvme_error::NvmeError,
        pf::{lm::LmSupport, sriov::VfSecondary, PhysFn},
        spec::migration::{
            compat::{self, Fixed, NamespaceInfo, PciIds},
            stream::{self, SectionKind, StatePayload, SECTION_HEADER_SIZE, STATE_PREFIX_SIZE},
        },
        spec::{
            ctrl_regs::{Cap, Vs, REGS_SIZE},
            lm::{
                command::FormatIndex,
                formats::StateFormats,
                state::{ControllerState, Limits},
            },
        },
    },
};

/// What a controller's vendor-specific state is assumed to take when the data size is
/// asked for before the controller is suspended (afterwards its header tells).
pub(super) const VENDOR_STATE_ESTIMATE: usize = 4096;

/// What a VF's migration is about; fixed while the VF is in vfio mode.
pub(super) struct MigTarget {
    /// The VF (for messages).
    pub(super) vf: ARef<pci::Device>,
    /// The services of the VF's physical function, which sends the commands.
    pub(super) pf: Arc<PhysFn>,
    /// VF number.
    pub(super) vfn: u16,
    /// The VF's secondary controller ID.
    pub(super) scid: u16,
    /// This VF's compatibility section, apart from the namespaces.
    pub(super) fixed: Fixed,
    /// The state formats the PF takes.
    pub(super) formats: StateFormats,
    /// The indexes of `fixed.format` on the PF.
    pub(super) index: FormatIndex,
    /// What an incoming controller state must fit.
    pub(super) limits: Limits,
}

impl MigTarget {
    /// Reads what the compatibility section needs from the VF: config space and, from a
    /// short mapping of BAR0, the read-only CAP and VS registers. Runs at probe, before any
    /// user owns the VF.
    pub(super) fn new(
        vf: &pci::Device<Core>,
        pf: Arc<PhysFn>,
        vfn: u16,
        secondary: VfSecondary,
        lm: LmSupport,
    ) -> Result<Self> {
        let (cap, vs) = {
            let bar = vf.iomap_region_sized::<REGS_SIZE>(0, BAR0_NAME)?;
            (Cap::read(&*bar), Vs::read(&*bar))
        };
        let io_queues = secondary.resources.queues.saturating_sub(1);
        let fixed = Fixed {
            pci: PciIds {
                vendor: vf.vendor_id(),
                device: vf.device_id(),
                subsystem_vendor: vf.subsystem_vendor_id(),
                subsystem: vf.subsystem_id(),
                revision: vf.revision_id(),
            },
            msix_entries: vf.msix_vec_count()?,
            cap: cap.0,
            vs: vs.0,
            io_queues,
            vectors: secondary.resources.vectors,
            vid: lm.vid,
            ssvid: lm.ssvid,
            model: lm.model,
            format: lm.format,
        };
        Ok(Self {
            vf: vf.get_ref(),
            pf,
            vfn,
            scid: secondary.scid,
            fixed,
            formats: lm.formats,
            index: lm.index,
            limits: Limits {
                io_queues,
                max_entries: u32::from(cap.mqes()) + 1,
                vectors: secondary.resources.vectors,
            },
        })
    }

    /// The namespaces attached to the VF's secondary controller now.
    pub(super) fn namespaces(&self) -> Result<KVec<NamespaceInfo>> {
        self.pf.lm().namespaces(self.scid).inspect_err(|e| {
            dev_err!(
                self.vf,
                "VF {}: cannot list its namespaces: {:?}\n",
                self.vfn,
                e
            )
        })
    }

    /// The compatibility section of this VF as it is now.
    pub(super) fn compat_section(&self) -> Result<KVec<u8>> {
        let namespaces = self.namespaces()?;
        let mut payload = KVec::from_elem(0u8, compat::size(namespaces.len()), GFP_KERNEL)?;
        compat::encode(&self.fixed, &namespaces, &mut payload).map_err(|_| EINVAL)?;
        section(SectionKind::Compat, &payload)
    }

    /// The controller state section around `state` (read from the suspended controller),
    /// followed by the end section.
    pub(super) fn state_sections(&self, state: &[u8]) -> Result<KVec<u8>> {
        // The stream carries only what a destination can check: never pass on a state the
        // driver itself cannot read.
        if let Err(e) = ControllerState::parse(state) {
            dev_err!(
                self.vf,
                "VF {}: controller state unreadable: {:?}\n",
                self.vfn,
                e
            );
            return Err(EIO);
        }
        let mut payload = KVec::with_capacity(STATE_PREFIX_SIZE + state.len(), GFP_KERNEL)?;
        payload.extend_from_slice(&StatePayload::prefix(&self.fixed.format), GFP_KERNEL)?;
        payload.extend_from_slice(state, GFP_KERNEL)?;
        let mut out = section(SectionKind::ControllerState, &payload)?;
        out.extend_from_slice(&section(SectionKind::End, &[])?, GFP_KERNEL)?;
        Ok(out)
    }

    /// Logs a failed TP4159 command and turns it into the error the VFIO user sees.
    pub(super) fn device_error(&self, what: &str, e: NvmeError) -> Error {
        dev_err!(self.vf, "VF {}: {} failed: {:?}\n", self.vfn, what, e);
        EIO
    }
}

/// A section of `kind` around `payload`.
pub(super) fn section(kind: SectionKind, payload: &[u8]) -> Result<KVec<u8>> {
    let header = stream::section_header(kind, payload).map_err(|_| EINVAL)?;
    let mut out = KVec::with_capacity(SECTION_HEADER_SIZE + payload.len(), GFP_KERNEL)?;
    out.extend_from_slice(&header, GFP_KERNEL)?;
    out.extend_from_slice(payload, GFP_KERNEL)?;
    Ok(out)
}
