// SPDX-License-Identifier: GPL-2.0

//! Live migration from the physical function: the TP4159 commands the PF sends on its admin
//! queue for one of its secondary controllers (a VF's), and what the PF can tell about a
//! secondary controller without touching the VF (its namespaces).
//!
//! All data moves through the PF's admin bounce buffer, in the PF's DMA domain: the VF's
//! DMA belongs to the guest that owns it.

use kernel::prelude::*;

use crate::{
    kapi::{
        device::{dev_err, dev_info, dev_warn},
        dma::CoherentAllocation,
    },
    nvme::{
        ctrl_base::{as_identify, CtrlBase},
        nvme_error::NvmeError,
        spec::{
            command::{cns, Command},
            completion::{sct, Status},
            identify::{
                active_namespaces, controller_list, IdentifyController, IdentifyNamespace,
                IDENTIFY_SIZE,
            },
            lm::{
                command::{csup, set_parts, FormatIndex, SuspendType},
                formats::{StateFormat, StateFormats, CNS_SUPPORTED_CTRL_STATE_FORMATS},
                state::{StateHeader, HEADER_SIZE, MAX_STATE_SIZE},
                track::{self, TrackAction, TrackingCaps},
                OACS_HMLMS,
            },
            migration::compat::{NamespaceInfo, MAX_NAMESPACES},
        },
    },
};

/// Whether `s` is Controller Data Queue Full.
fn is_cdq_full(s: Status) -> bool {
    s.code_type() == sct::COMMAND_SPECIFIC && s.code() == track::status::CDQ_FULL
}

/// Largest piece of controller state one command moves (the admin bounce buffer).
const CHUNK: usize = crate::nvme::admin::MAX_PASSTHRU_DATA as usize;

/// What a physical function offers for the live migration of its VFs (TP4159), found
/// when VFs are enabled.
#[derive(Clone, Copy, Debug)]
pub(crate) struct LmSupport {
    /// The controller state formats the PF can produce and accept.
    pub(crate) formats: StateFormats,
    /// The format a migration from one of its VFs uses.
    pub(crate) format: StateFormat,
    /// The indexes that select `format`.
    pub(crate) index: FormatIndex,
    /// The product, from Identify Controller: VID, SSVID, model number.
    pub(crate) vid: u16,
    /// See `vid`.
    pub(crate) ssvid: u16,
    /// See `vid`.
    pub(crate) model: [u8; 40],
    /// How the PF tracks the host memory its VFs write, if it does (TP4159 Track Memory
    /// Changes through a Controller Data Queue).
    pub(crate) tracking: Option<TrackingCaps>,
}

/// How a Controller Data Queue flush ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Flushed {
    /// Every change made before is in the queue.
    Complete,
    /// Changes were lost since the last flush: the queue was full.
    Lost,
}

/// The live migration commands (TP4159) a physical function sends on its admin queue for
/// its secondary controllers.
pub(crate) struct LmCommands<'a> {
    /// The PF's controller basics.
    base: &'a CtrlBase,
}

impl<'a> LmCommands<'a> {
    /// The commands on the admin queue of `base`, a physical function's.
    pub(crate) fn new(base: &'a CtrlBase) -> Self {
        Self { base }
    }

    /// What the controller offers for live migration: Host Managed Live Migration (OACS
    /// bit 11) and a controller state format; `None` without either (a failure to find
    /// out is logged and means no migration, not a failed enable).
    pub(crate) fn support(&self, buf: &CoherentAllocation<u8>) -> Option<LmSupport> {
        let raw = self.base.identify(buf, cns::CONTROLLER, 0).ok()?;
        let raw = as_identify(&raw).ok()?;
        let id = IdentifyController::parse(raw);
        if id.oacs & OACS_HMLMS == 0 {
            return None;
        }
        let formats = match self.formats() {
            Ok(f) => f,
            Err(e) => {
                dev_warn!(
                    self.base.pdev(),
                    "no live migration: controller state formats: {:?}\n",
                    e
                );
                return None;
            }
        };
        let format = formats.preferred()?;
        let index = formats.index_of(&format)?;
        dev_info!(
            self.base.pdev(),
            "VF live migration: controller state version {}{}\n",
            format.version,
            if format.uuid.is_some() {
                " with a vendor-specific section"
            } else {
                ""
            }
        );
        let tracking = TrackingCaps::parse(raw);
        if let Some(t) = &tracking {
            dev_info!(
                self.base.pdev(),
                "VF dirty page tracking: up to {} ranges, granularity 2^{}..2^{}\n",
                t.max_ranges,
                t.min_shift,
                t.max_shift
            );
        }
        Some(LmSupport {
            formats,
            format,
            index,
            vid: id.vid,
            ssvid: id.ssvid,
            model: id.model.0,
            tracking,
        })
    }

    /// Creates a memory change queue for secondary controller `scid` in `mem` (the PF's
    /// DMA memory, `mem.size()` bytes, page aligned); returns its CDQID.
    pub(crate) fn cdq_create(
        &self,
        scid: u16,
        mem: &CoherentAllocation<u8>,
    ) -> Result<u16, NvmeError> {
        let dwords = u32::try_from(mem.size() / 4).map_err(|_| NvmeError::Kernel(EINVAL))?;
        let cmd =
            Command::cdq_create(scid, mem.dma_handle(), dwords).ok_or(NvmeError::Kernel(EINVAL))?;
        self.base.admin_sync(cmd).map(track::created_cdqid)
    }

    /// Deletes queue `cdqid`, which ends the tracking that reports to it.
    pub(crate) fn cdq_delete(&self, cdqid: u16) -> Result<(), NvmeError> {
        self.base.admin_sync(Command::cdq_delete(cdqid)).map(|_| ())
    }

    /// Starts tracking the writes of the queue's secondary controller to `ranges`
    /// (start, length; aligned to 2^`shift` bytes); returns the granularity the controller
    /// uses.
    pub(crate) fn track_start(
        &self,
        cdqid: u16,
        shift: u8,
        ranges: &[(u64, u64)],
        max_ranges: u16,
    ) -> Result<u8, NvmeError> {
        let mut data = KVec::from_elem(
            0u8,
            track::RANGES_HEADER + track::RANGE_DESCRIPTOR * ranges.len(),
            GFP_KERNEL,
        )?;
        let len = track::encode_ranges(shift, ranges, max_ranges, &mut data)
            .map_err(|_| NvmeError::Kernel(EINVAL))?;
        let cmd = Command::track_memory(cdqid, TrackAction::Start);
        let cqe = self.base.admin_bounced(
            cmd,
            len as u32,
            |buf| buf.write_from(0, &data[..len]),
            |_| Ok(()),
        )?;
        Ok(track::granularity_used(cqe.result))
    }

    /// Stops the tracking that reports to queue `cdqid`.
    pub(crate) fn track_stop(&self, cdqid: u16) -> Result<(), NvmeError> {
        self.base
            .admin_sync(Command::track_memory(cdqid, TrackAction::Stop))
            .map(|_| ())
    }

    /// Tells the controller the host consumed queue `cdqid` up to slot `head`.
    pub(crate) fn cdq_set_head(&self, cdqid: u16, head: u32) -> Result<(), NvmeError> {
        self.base
            .admin_sync(Command::cdq_set_head(cdqid, head))
            .map(|_| ())
    }

    /// Makes the controller put every change made so far into queue `cdqid` (Get
    /// Features, Controller Data Queue); tells whether changes were lost since the last
    /// time because the queue was full.
    pub(crate) fn cdq_flush(&self, cdqid: u16) -> Result<Flushed, NvmeError> {
        let r = self
            .base
            .admin_bounced(Command::cdq_get(cdqid, 0), 8, |_| Ok(()), |_| Ok(()));
        match r {
            Ok(_) => Ok(Flushed::Complete),
            Err(NvmeError::Status(s)) if is_cdq_full(s) => Ok(Flushed::Lost),
            Err(e) => Err(e),
        }
    }

    /// Suspends secondary controller `scid`: it fetches no more commands and raises no
    /// interrupts; commands it already fetched complete before this returns.
    pub(crate) fn suspend(&self, scid: u16) -> Result<(), NvmeError> {
        self.base
            .admin_sync(Command::lm_suspend(scid, SuspendType::Suspend))
            .map(|_| ())
    }

    /// Resumes secondary controller `scid`.
    pub(crate) fn resume(&self, scid: u16) -> Result<(), NvmeError> {
        self.base.admin_sync(Command::lm_resume(scid)).map(|_| ())
    }

    /// Reads the whole controller state of suspended secondary controller `scid` in format
    /// `format`: the header first, then whatever it says follows.
    pub(crate) fn get_state(&self, scid: u16, format: FormatIndex) -> Result<KVec<u8>, NvmeError> {
        let total = self.state_size(scid, format)?;
        let mut out = KVec::with_capacity(total, GFP_KERNEL)?;
        let mut chunk = KVec::from_elem(0u8, total.min(CHUNK), GFP_KERNEL)?;
        while out.len() < total {
            let len = (total - out.len()).min(CHUNK);
            let cmd = Command::lm_get_state(scid, format, out.len() as u64, len as u32)
                .ok_or(NvmeError::Kernel(EINVAL))?;
            let piece = &mut chunk[..len];
            let cqe = self.base.admin_bounced(
                cmd,
                len as u32,
                |_| Ok(()),
                |buf| buf.read_into(0, piece),
            )?;
            if !csup(cqe.result) {
                dev_err!(
                    self.base.pdev(),
                    "secondary controller {}: state read while running\n",
                    scid
                );
                return Err(NvmeError::Kernel(EIO));
            }
            out.extend_from_slice(piece, GFP_KERNEL)?;
        }
        Ok(out)
    }

    /// The size of the controller state of suspended secondary controller `scid`, from its
    /// header.
    pub(crate) fn state_size(&self, scid: u16, format: FormatIndex) -> Result<usize, NvmeError> {
        let cmd = Command::lm_get_state(scid, format, 0, HEADER_SIZE as u32)
            .ok_or(NvmeError::Kernel(EINVAL))?;
        let mut header = [0u8; HEADER_SIZE];
        self.base.admin_bounced(
            cmd,
            HEADER_SIZE as u32,
            |_| Ok(()),
            |buf| buf.read_into(0, &mut header),
        )?;
        let header = StateHeader::parse(&header).map_err(|e| {
            dev_err!(
                self.base.pdev(),
                "secondary controller {}: bad state header: {:?}\n",
                scid,
                e
            );
            NvmeError::Kernel(EIO)
        })?;
        if header.total_len() > MAX_STATE_SIZE {
            return Err(NvmeError::Kernel(EFBIG));
        }
        Ok(header.total_len())
    }

    /// Writes `state` (whole, in format `format`) into suspended secondary controller
    /// `scid`, in as many pieces as the bounce buffer needs: consecutive parts, each
    /// starting where the previous one ended ([`set_parts`]).
    pub(crate) fn set_state(
        &self,
        scid: u16,
        format: FormatIndex,
        state: &[u8],
    ) -> Result<(), NvmeError> {
        let parts = set_parts(state.len(), CHUNK).ok_or(NvmeError::Kernel(EINVAL))?;
        for part in parts {
            let from = part.offset as usize;
            let piece = state
                .get(from..from + part.bytes as usize)
                .ok_or(NvmeError::Kernel(EINVAL))?;
            let cmd =
                Command::lm_set_state_part(scid, format, part).ok_or(NvmeError::Kernel(EINVAL))?;
            self.base
                .admin_bounced(cmd, part.bytes, |buf| buf.write_from(0, piece), |_| Ok(()))?;
        }
        Ok(())
    }

    /// Identify with `cns`, `nsid` and controller IDs from `cntid`, through the admin
    /// bounce buffer (so it needs no buffer of its own, from any context that may wait).
    fn identify_bounced(&self, cns: u8, nsid: u32, cntid: u16) -> Result<KVec<u8>> {
        let mut out = KVec::from_elem(0u8, IDENTIFY_SIZE, GFP_KERNEL)?;
        let cmd = Command::identify_from(cns, nsid, cntid, 0);
        self.base
            .admin_bounced(
                cmd,
                IDENTIFY_SIZE as u32,
                |_| Ok(()),
                |buf| buf.read_into(0, &mut out),
            )
            .map_err(|e| {
                dev_err!(
                    self.base.pdev(),
                    "Identify (CNS {:#x}) failed: {:?}\n",
                    cns,
                    e
                );
                Error::from(e)
            })?;
        Ok(out)
    }

    /// The controller state formats the controller offers (Identify CNS 0x20).
    pub(crate) fn formats(&self) -> Result<StateFormats> {
        let raw = self.identify_bounced(CNS_SUPPORTED_CTRL_STATE_FORMATS, 0, 0)?;
        StateFormats::parse(&raw).map_err(|_| EIO)
    }

    /// The namespaces attached to secondary controller `scid`, in NSID order, as the
    /// compatibility section describes them.
    pub(crate) fn namespaces(&self, scid: u16) -> Result<KVec<NamespaceInfo>> {
        let mut out = KVec::new();
        let mut from = 0u32;
        loop {
            let list = self.identify_bounced(cns::ALLOCATED_NS_LIST, from, 0)?;
            let mut ids = KVec::new();
            for id in active_namespaces(as_identify(&list)?) {
                // The list is in increasing order of IDs greater than `from`; anything else
                // would make the walk loop.
                if id <= from || ids.last().is_some_and(|l| id <= *l) {
                    return Err(EIO);
                }
                ids.push(id, GFP_KERNEL)?;
            }
            let Some(&last) = ids.last() else {
                return Ok(out);
            };
            for nsid in ids {
                let attached = self.identify_bounced(cns::NS_ATTACHED_CTRL_LIST, nsid, scid)?;
                // The list starts at `scid`: attached exactly if it comes first.
                if controller_list(as_identify(&attached)?).next() != Some(scid) {
                    continue;
                }
                if out.len() == MAX_NAMESPACES {
                    dev_err!(
                        self.base.pdev(),
                        "secondary controller {}: more than {} namespaces\n",
                        scid,
                        MAX_NAMESPACES
                    );
                    return Err(E2BIG);
                }
                let raw = self.identify_bounced(cns::ALLOCATED_NAMESPACE, nsid, 0)?;
                let ns = IdentifyNamespace::parse(as_identify(&raw)?).ok_or(EIO)?;
                out.push(
                    NamespaceInfo {
                        nsid,
                        lba_shift: ns.lba_shift,
                        metadata: ns.metadata,
                        nsze: ns.nsze,
                        nguid: ns.nguid,
                        eui64: ns.eui64,
                    },
                    GFP_KERNEL,
                )?;
            }
            from = last;
        }
    }
}
