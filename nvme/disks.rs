// SPDX-License-Identifier: GPL-2.0

//! The disks of a controller: one per usable active namespace, found by the scan at probe
//! and kept current by rescans (namespace-change events, `NVME_IOCTL_RESCAN`).

use core::cell::Cell;

use kernel::{prelude::*, sync::Arc, types::ARef};

use crate::{
    kapi::{
        block::mq::{DiskQueue, FrozenQueue, GenDisk, GenDiskBuilder, TagSet},
        device::{dev_err, dev_info, dev_warn, Device},
        dma::CoherentAllocation,
    },
    nvme::{
        ctrl_base::{as_identify, CtrlBase},
        io::request::IoOps,
        namespace::Namespace,
        spec::{
            command::cns,
            identify::{active_namespaces, IdentifyNamespace},
            limits::RequestLimits,
        },
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
    /// The controller's instance number: disks are `<prefix><instance>n<nsid>`.
    pub(crate) instance: u32,
    /// `rnvme`, or `nvme` when the module holds the `nvme` class.
    pub(crate) prefix: &'static str,
    /// Whether the disks are named as in the `nvme` class, with its namespace attributes.
    pub(crate) nvme_names: bool,
    /// The disks' parent device: the PCI function, or the controller's class device.
    pub(crate) parent: ARef<Device>,
    /// How large one request may be.
    pub(crate) limits: RequestLimits,
    /// Whether the controller has a volatile write cache.
    pub(crate) write_cache: bool,
    /// The controller's Optional NVM Command Support field.
    pub(crate) oncs: u16,
    /// A buffer for Identify (allocated while bound, freed when the disks are cleared).
    pub(crate) identify_buf: CoherentAllocation<u8>,
}

/// One disk: its namespace as the I/O path sees it, and the Identify Namespace data it was
/// last set up from (to notice a new size or format).
struct NsDisk {
    nsid: u32,
    disk: GenDisk<IoOps>,
    ns: Arc<Namespace>,
    id: Cell<IdentifyNamespace>,
}

/// The disks of a controller, in namespace ID order.
pub(crate) struct NsDisks {
    template: Option<DiskTemplate>,
    disks: KVec<NsDisk>,
}

/// What a scan changed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct ScanReport {
    /// Disks added.
    pub(crate) added: usize,
    /// Disks removed.
    pub(crate) removed: usize,
    /// Disks whose size or format changed.
    pub(crate) revalidated: usize,
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

    /// Marks every disk dead: its I/O fails at once (the controller was given up).
    pub(crate) fn mark_dead(&self) {
        for d in self.disks.iter() {
            d.disk.mark_dead();
        }
    }

    /// Whether any disk is open (mounted, or opened by a process).
    pub(crate) fn in_use(&self) -> bool {
        self.disks.iter().any(|d| d.disk.openers() > 0)
    }

    /// The request queue of namespace `nsid`'s disk.
    pub(crate) fn queue_of(&self, nsid: u32) -> Option<&DiskQueue<IoOps>> {
        self.disks
            .iter()
            .find(|d| d.nsid == nsid)
            .map(|d| d.disk.queue())
    }

    /// Freezes every disk's queue (no request in flight, none dispatched) until the guards
    /// are dropped.
    pub(crate) fn freeze_all(&self) -> Result<KVec<FrozenQueue<'_>>> {
        let mut frozen = KVec::with_capacity(self.disks.len(), GFP_KERNEL)?;
        for d in self.disks.iter() {
            // Cannot fail: the capacity is reserved.
            frozen.push(d.disk.freeze(), GFP_KERNEL)?;
        }
        Ok(frozen)
    }

    /// Brings the disks in line with the controller's active namespaces: removes the disks
    /// of namespaces that went away, revalidates the others (a new size or format) and adds
    /// disks for new ones.
    pub(crate) fn scan(&mut self, core: &CtrlBase) -> Result<ScanReport> {
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
        for d in core::mem::take(&mut self.disks) {
            let why = if !active.contains(&d.nsid) {
                Some("is gone")
            } else if replaced(core, buf, &d) {
                // Another namespace under the same NSID: its disk is added below.
                Some("was replaced (new identifiers)")
            } else {
                None
            };
            match why {
                // Cannot fail: the capacity is reserved.
                None => kept.push(d, GFP_KERNEL)?,
                Some(why) => {
                    dev_info!(
                        core.pdev(),
                        "namespace {} {}: removing disk {}{}n{}\n",
                        d.nsid,
                        why,
                        template.prefix,
                        template.instance,
                        d.nsid
                    );
                    drop(d);
                    report.removed += 1;
                }
            }
        }
        self.disks = kept;
        report.revalidated = self.revalidate(core)?;

        let Some(template) = &self.template else {
            return Ok(report);
        };
        let buf = &template.identify_buf;
        for nsid in active {
            if self.disks.iter().any(|d| d.nsid == nsid) {
                continue;
            }
            let raw = core.identify(buf, cns::NAMESPACE, nsid)?;
            let id = IdentifyNamespace::parse(as_identify(&raw)?);
            let Some(id) = id.filter(|id| id.usable(PAGE_SIZE as u32)) else {
                dev_info!(
                    core.pdev(),
                    "namespace {}: not usable (inactive, blocks over 4 KiB or metadata), ignored\n",
                    nsid
                );
                continue;
            };
            let ns = Arc::new(Namespace::new(nsid, &id, template.oncs), GFP_KERNEL)?;
            log_format(core, nsid, &id);
            let disk = limits(template, &id)?.build(
                format_args!("{}{}n{}", template.prefix, template.instance, nsid),
                template.tagset.clone(),
                ns.clone(),
                &template.parent,
            )?;
            dev_info!(
                core.pdev(),
                "namespace {} is disk {}{}n{}\n",
                nsid,
                template.prefix,
                template.instance,
                nsid
            );
            let at = self.disks.iter().position(|d| d.nsid > nsid);
            self.disks.push(
                NsDisk {
                    nsid,
                    disk,
                    ns,
                    id: Cell::new(id),
                },
                GFP_KERNEL,
            )?;
            if let Some(at) = at {
                self.disks[at..].rotate_right(1);
            }
            report.added += 1;
        }
        Ok(report)
    }

    /// Reads Identify Namespace again for every disk and applies a new size or format:
    /// capacity, logical and physical block size and the limits that follow from them,
    /// changed with the disk's queue frozen. A format the driver cannot serve (metadata,
    /// blocks over 4 KiB) leaves the disk with capacity 0, as the C driver does, until
    /// the namespace is formatted back. Returns how many disks changed.
    pub(crate) fn revalidate(&self, core: &CtrlBase) -> Result<usize> {
        let Some(template) = &self.template else {
            return Ok(0);
        };
        let mut changed = 0;
        for d in self.disks.iter() {
            let raw = core.identify(&template.identify_buf, cns::NAMESPACE, d.nsid)?;
            // An inactive namespace: the scan removes its disk.
            let Some(id) = IdentifyNamespace::parse(as_identify(&raw)?) else {
                continue;
            };
            let old = d.id.get();
            if (id.nsze, id.lba_shift, id.metadata) == (old.nsze, old.lba_shift, old.metadata) {
                continue;
            }
            if id.usable(PAGE_SIZE as u32) {
                d.disk
                    .update(&limits(template, &id)?, || d.ns.set_lba_shift(id.lba_shift))
                    .inspect_err(|e| {
                        dev_err!(
                            core.pdev(),
                            "namespace {}: cannot apply its new format: {:?}\n",
                            d.nsid,
                            e
                        )
                    })?;
                dev_info!(core.pdev(), "namespace {} changed:\n", d.nsid);
                log_format(core, d.nsid, &id);
            } else {
                d.disk.set_capacity(0);
                dev_warn!(
                    core.pdev(),
                    "namespace {}: format of {} byte blocks with {} metadata bytes not supported: capacity 0\n",
                    d.nsid,
                    id.block_size(),
                    id.metadata
                );
            }
            d.id.set(id);
            changed += 1;
        }
        Ok(changed)
    }
}

/// Whether the active namespace of disk `d` now has other identifiers than the one the
/// disk was made for. A failed Identify keeps the disk (the next scan looks again).
fn replaced(core: &CtrlBase, buf: &CoherentAllocation<u8>, d: &NsDisk) -> bool {
    let Ok(raw) = core.identify(buf, cns::NAMESPACE, d.nsid) else {
        return false;
    };
    let Ok(raw) = as_identify(&raw) else {
        return false;
    };
    IdentifyNamespace::parse(raw).is_some_and(|id| !id.same_identity(&d.id.get()))
}

/// Logs a namespace's size and block size.
fn log_format(core: &CtrlBase, nsid: u32, id: &IdentifyNamespace) {
    dev_info!(
        core.pdev(),
        "namespace {}: {} blocks of {} bytes ({} MiB)\n",
        nsid,
        id.nsze,
        id.block_size(),
        id.nsze.saturating_mul(u64::from(id.block_size())) >> 20
    );
}

/// The geometry and limits of the disk of a namespace that Identify Namespace describes
/// as `id` (usable by the driver).
fn limits(template: &DiskTemplate, id: &IdentifyNamespace) -> Result<GenDiskBuilder> {
    let shift = u32::from(id.lba_shift);
    let ns = Namespace::new(0, id, template.oncs);
    Ok(GenDiskBuilder::new()
        .logical_block_size(id.block_size())?
        .capacity_sectors(id.nsze << (shift - 9))
        .max_hw_sectors(template.limits.max_transfer >> 9)
        .max_segments(template.limits.max_segments)
        .virt_boundary_mask(PAGE_SIZE - 1)
        .write_cache(template.write_cache)
        .max_discard_sectors(if ns.discard() { MAX_DISCARD_SECTORS } else { 0 })
        .max_write_zeroes_sectors(if ns.write_zeroes() {
            (65536u32 << shift) >> 9
        } else {
            0
        })
        .nvme_namespace_attributes(template.nvme_names))
}
