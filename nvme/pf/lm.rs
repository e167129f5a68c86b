// SPDX-License-Identifier: GPL-2.0

//! Live migration from the physical function: the TP4159 commands the PF sends on its admin
//! queue for one of its secondary controllers (a VF's), and what the PF can tell about a
//! secondary controller without touching the VF (its namespaces).
//!
//! All data moves through the PF's admin bounce buffer, in the PF's DMA domain: the VF's
//! DMA belongs to the guest that owns it.

use kernel::prelude::*;

use crate::{
    kapi::device::dev_err,
    nvme::{
        ctrl_core::CtrlCore,
        disks::as_identify,
        nvme_error::NvmeError,
        spec::migration::compat::{NamespaceInfo, MAX_NAMESPACES},
        spec::{
            command::{cns, Command},
            identify::{active_namespaces, controller_list, IdentifyNamespace, IDENTIFY_SIZE},
            lm::{
                command::{csup, FormatIndex, Sequence, SuspendType},
                formats::{StateFormats, CNS_SUPPORTED_CTRL_STATE_FORMATS},
                state::{StateHeader, HEADER_SIZE, MAX_STATE_SIZE},
            },
        },
    },
};

/// Largest piece of controller state one command moves (the admin bounce buffer).
const CHUNK: usize = crate::nvme::admin::MAX_PASSTHRU_DATA as usize;

impl CtrlCore {
    /// Suspends secondary controller `scid`: it fetches no more commands and raises no
    /// interrupts; commands it already fetched complete before this returns.
    pub(crate) fn lm_suspend(&self, scid: u16) -> Result<(), NvmeError> {
        self.admin_sync(Command::lm_suspend(scid, SuspendType::Suspend))
            .map(|_| ())
    }

    /// Resumes secondary controller `scid`.
    pub(crate) fn lm_resume(&self, scid: u16) -> Result<(), NvmeError> {
        self.admin_sync(Command::lm_resume(scid)).map(|_| ())
    }

    /// Reads the whole controller state of suspended secondary controller `scid` in format
    /// `format`: the header first, then whatever it says follows.
    pub(crate) fn lm_get_state(
        &self,
        scid: u16,
        format: FormatIndex,
    ) -> Result<KVec<u8>, NvmeError> {
        let total = self.lm_state_size(scid, format)?;
        let mut out = KVec::with_capacity(total, GFP_KERNEL)?;
        let mut chunk = KVec::from_elem(0u8, total.min(CHUNK), GFP_KERNEL)?;
        while out.len() < total {
            let len = (total - out.len()).min(CHUNK);
            let cmd = Command::lm_get_state(scid, format, out.len() as u64, len as u32)
                .ok_or(NvmeError::Kernel(EINVAL))?;
            let piece = &mut chunk[..len];
            let cqe =
                self.admin_bounced(cmd, len as u32, |_| Ok(()), |buf| buf.read_into(0, piece))?;
            if !csup(cqe.result) {
                dev_err!(
                    self.pdev(),
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
    pub(crate) fn lm_state_size(&self, scid: u16, format: FormatIndex) -> Result<usize, NvmeError> {
        let cmd = Command::lm_get_state(scid, format, 0, HEADER_SIZE as u32)
            .ok_or(NvmeError::Kernel(EINVAL))?;
        let mut header = [0u8; HEADER_SIZE];
        self.admin_bounced(
            cmd,
            HEADER_SIZE as u32,
            |_| Ok(()),
            |buf| buf.read_into(0, &mut header),
        )?;
        let header = StateHeader::parse(&header).map_err(|e| {
            dev_err!(
                self.pdev(),
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
    /// `scid`, in as many pieces as the bounce buffer needs.
    pub(crate) fn lm_set_state(
        &self,
        scid: u16,
        format: FormatIndex,
        state: &[u8],
    ) -> Result<(), NvmeError> {
        let parts = state.len().div_ceil(CHUNK).max(1);
        for (i, piece) in state.chunks(CHUNK).enumerate() {
            let offset = (i * CHUNK) as u64;
            let cmd = Command::lm_set_state(
                scid,
                format,
                Sequence::of(i, parts),
                offset,
                piece.len() as u32,
            )
            .ok_or(NvmeError::Kernel(EINVAL))?;
            self.admin_bounced(
                cmd,
                piece.len() as u32,
                |buf| buf.write_from(0, piece),
                |_| Ok(()),
            )?;
        }
        Ok(())
    }

    /// Identify with `cns`, `nsid` and controller IDs from `cntid`, through the admin
    /// bounce buffer (so it needs no buffer of its own, from any context that may wait).
    fn identify_bounced(&self, cns: u8, nsid: u32, cntid: u16) -> Result<KVec<u8>> {
        let mut out = KVec::from_elem(0u8, IDENTIFY_SIZE, GFP_KERNEL)?;
        let cmd = Command::identify_from(cns, nsid, cntid, 0);
        self.admin_bounced(
            cmd,
            IDENTIFY_SIZE as u32,
            |_| Ok(()),
            |buf| buf.read_into(0, &mut out),
        )
        .map_err(|e| {
            dev_err!(self.pdev(), "Identify (CNS {:#x}) failed: {:?}\n", cns, e);
            Error::from(e)
        })?;
        Ok(out)
    }

    /// The controller state formats the controller offers (Identify CNS 0x20).
    pub(crate) fn lm_formats(&self) -> Result<StateFormats> {
        let raw = self.identify_bounced(CNS_SUPPORTED_CTRL_STATE_FORMATS, 0, 0)?;
        StateFormats::parse(&raw).map_err(|_| EIO)
    }

    /// The namespaces attached to secondary controller `scid`, in NSID order, as the
    /// compatibility section describes them.
    pub(crate) fn lm_namespaces(&self, scid: u16) -> Result<KVec<NamespaceInfo>> {
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
                        self.pdev(),
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
