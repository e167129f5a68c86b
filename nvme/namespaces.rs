// SPDX-License-Identifier: GPL-2.0

//! The disks of a controller: one per usable active namespace, found by the scan at probe
//! and kept current by rescans (namespace-change events, `NVME_IOCTL_RESCAN`).

use kernel::{prelude::*, sync::Arc};

use crate::{
    core::CtrlCore,
    io_ops::{IoOps, MAX_SEGMENTS},
    kapi::{
        block::mq::{DiskQueue, GenDisk, GenDiskBuilder, TagSet},
        device::dev_info,
        dma::CoherentAllocation,
    },
    namespace::Namespace,
    spec::{
        command::cns,
        identify::{active_namespaces, IdentifyNamespace, IDENTIFY_SIZE},
    },
};

/// At most this many namespaces are attached as disks.
const MAX_NAMESPACES: usize = 64;

/// Largest discard (one Dataset Management range): 1 GiB in 512-byte sectors.
const MAX_DISCARD_SECTORS: u32 = 1 << 21;

/// Bytes per controller memory page (CC.MPS = 0), and the largest logical block the
/// driver supports.
const PAGE_SIZE: usize = 4096;

/// What every disk of a controller shares.
pub(crate) struct DiskTemplate {
    /// The tag set of the controller's I/O queues.
    pub(crate) tagset: Arc<TagSet<IoOps>>,
    /// The controller's instance number: disks are `rnvme<instance>n<nsid>`.
    pub(crate) instance: u32,
    /// Largest transfer of one request, in bytes.
    pub(crate) max_transfer: u32,
    /// Whether the controller has a volatile write cache.
    pub(crate) write_cache: bool,
    /// The controller's Optional NVM Command Support field.
    pub(crate) oncs: u16,
    /// A buffer for Identify (allocated while bound, freed when the disks are cleared).
    pub(crate) identify_buf: CoherentAllocation<u8>,
}

/// The disks of a controller, in namespace ID order.
pub(crate) struct NsDisks {
    template: Option<DiskTemplate>,
    disks: KVec<(u32, GenDisk<IoOps>)>,
}

/// What a scan changed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct ScanReport {
    /// Disks added.
    pub(crate) added: usize,
    /// Disks removed.
    pub(crate) removed: usize,
}

impl NsDisks {
    /// No disks; scans do nothing until [`Self::set_template`].
    pub(crate) fn new() -> Self {
        Self {
            template: None,
            disks: KVec::new(),
        }
    }

    /// Sets what new disks are made of, once the I/O queues exist.
    pub(crate) fn set_template(&mut self, template: DiskTemplate) {
        self.template = Some(template);
    }

    /// Removes every disk (waiting for their I/O) and forgets the template, which breaks
    /// the reference cycle through the tag set.
    pub(crate) fn clear(&mut self) {
        drop(core::mem::take(&mut self.disks));
        self.template = None;
    }

    /// Whether any disk is open (mounted, or opened by a process).
    pub(crate) fn in_use(&self) -> bool {
        self.disks.iter().any(|(_, disk)| disk.openers() > 0)
    }

    /// The request queue of namespace `nsid`'s disk.
    pub(crate) fn queue_of(&self, nsid: u32) -> Option<&DiskQueue<IoOps>> {
        self.disks
            .iter()
            .find(|(n, _)| *n == nsid)
            .map(|(_, disk)| disk.queue())
    }

    /// Brings the disks in line with the controller's active namespaces: removes the disks
    /// of namespaces that went away and adds disks for new ones.
    pub(crate) fn scan(&mut self, core: &CtrlCore) -> Result<ScanReport> {
        let Some(template) = &self.template else {
            return Ok(ScanReport::default());
        };
        let buf = &template.identify_buf;
        let list = core.identify(buf, cns::ACTIVE_NS_LIST, 0)?;
        let mut active = KVec::new();
        for nsid in active_namespaces(as_identify(&list)?).take(MAX_NAMESPACES) {
            active.push(nsid, GFP_KERNEL)?;
        }

        let mut report = ScanReport::default();
        let mut kept = KVec::with_capacity(self.disks.len(), GFP_KERNEL)?;
        for (nsid, disk) in core::mem::take(&mut self.disks) {
            if active.contains(&nsid) {
                // Cannot fail: the capacity is reserved.
                kept.push((nsid, disk), GFP_KERNEL)?;
            } else {
                dev_info!(
                    core.pdev(),
                    "namespace {} is gone: removing disk rnvme{}n{}\n",
                    nsid,
                    template.instance,
                    nsid
                );
                drop(disk);
                report.removed += 1;
            }
        }
        self.disks = kept;

        for nsid in active {
            if self.disks.iter().any(|(n, _)| *n == nsid) {
                continue;
            }
            let raw = core.identify(buf, cns::NAMESPACE, nsid)?;
            let id = IdentifyNamespace::parse(as_identify(&raw)?);
            let Some(id) = id.filter(|id| id.block_size() as usize <= PAGE_SIZE) else {
                dev_info!(core.pdev(), "namespace {}: not usable, ignored\n", nsid);
                continue;
            };
            let ns = Namespace::new(nsid, id, template.oncs);
            dev_info!(
                core.pdev(),
                "namespace {}: {} blocks of {} bytes ({} MiB)\n",
                nsid,
                id.nsze,
                id.block_size(),
                id.nsze.saturating_mul(u64::from(id.block_size())) >> 20
            );
            let disk = add_disk(template, &ns, core)?;
            dev_info!(
                core.pdev(),
                "namespace {} is disk rnvme{}n{}\n",
                nsid,
                template.instance,
                nsid
            );
            let at = self.disks.iter().position(|(n, _)| *n > nsid);
            self.disks.push((nsid, disk), GFP_KERNEL)?;
            if let Some(at) = at {
                self.disks[at..].rotate_right(1);
            }
            report.added += 1;
        }
        Ok(report)
    }
}

/// Views an Identify buffer as the fixed-size structure the parsers take.
pub(crate) fn as_identify(raw: &[u8]) -> Result<&[u8; IDENTIFY_SIZE]> {
    raw.try_into().map_err(|_| EINVAL)
}

/// Creates and adds the disk of namespace `ns`.
fn add_disk(template: &DiskTemplate, ns: &Namespace, core: &CtrlCore) -> Result<GenDisk<IoOps>> {
    GenDiskBuilder::new()
        .logical_block_size(ns.block_size())?
        .capacity_sectors(ns.capacity_sectors())
        .max_hw_sectors(template.max_transfer >> 9)
        .max_segments(MAX_SEGMENTS as u16)
        .virt_boundary_mask(PAGE_SIZE - 1)
        .write_cache(template.write_cache)
        .max_discard_sectors(if ns.discard() { MAX_DISCARD_SECTORS } else { 0 })
        .max_write_zeroes_sectors(if ns.write_zeroes() {
            (65536u32 << ns.lba_shift()) >> 9
        } else {
            0
        })
        .build(
            format_args!("rnvme{}n{}", template.instance, ns.nsid()),
            template.tagset.clone(),
            Arc::new(*ns, GFP_KERNEL)?,
            core.pdev().as_dev(),
        )
}
