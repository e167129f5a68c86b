// SPDX-License-Identifier: GPL-2.0

//! An NVMe controller behind a PCI function: register BAR, enable/disable/shutdown, the
//! admin queue, the I/O queues and one disk per namespace.

use kernel::{c_str, prelude::*, sync::Arc, types::ARef};

use crate::{
    admin::{AdminQueue, ADMIN_DEPTH},
    driver::BAR0_NAME,
    io_ops::{IoOps, MAX_SEGMENTS, MAX_TRANSFER},
    io_queue::{IoQueue, IoQueues, QueueIrq},
    kapi::{
        block::mq::{GenDisk, GenDiskBuilder, TagSet},
        delay::read_poll_timeout,
        device::{dev_err, dev_info, Bound, Core, Device},
        dma::{CoherentAllocation, DmaMask, DmaPool},
        instance::InstanceId,
        irq,
        pci::{self, IrqTypes, IrqVectors},
    },
    namespace::Namespace,
    nvme_error::NvmeError,
    queue::{CompletionQueue, SubmissionQueue},
    spec::{
        command::{cns, num_queues_allocated, Command, SQE_SIZE_LOG2},
        completion::CQE_SIZE_LOG2,
        identify::{active_namespaces, IdentifyController, IdentifyNamespace, IDENTIFY_SIZE},
        regs::{Acq, Aqa, Asq, Cap, Cc, Csts, Vs, CC_SHN_NORMAL, CSTS_SHST_COMPLETE, REGS_SIZE},
    },
};

/// How long a normal shutdown (CC.SHN) may take before the driver disables the controller
/// anyway.
const SHUTDOWN_TIMEOUT_MS: u32 = 5_000;

/// At most this many namespaces are attached as disks.
const MAX_NAMESPACES: usize = 64;

/// At most this many I/O queues (one per CPU up to this).
const MAX_IO_QUEUES: u32 = 8;

/// Entries of each I/O queue (limited by CAP.MQES).
const IO_QUEUE_DEPTH: u32 = 256;

/// Request timeout of I/O commands.
const IO_TIMEOUT_MS: u32 = 30_000;

/// Bytes per controller memory page (CC.MPS = 0).
const PAGE_SIZE: usize = 4096;

/// An enabled NVMe controller with its queues and disks.
///
/// Fields are dropped in declaration order after [`Drop::drop`] removed the disks and
/// disabled the controller: interrupt handlers first, then the tag set, the I/O queue
/// memory, the vectors, the admin queue memory, the BAR.
///
/// # Invariants
///
/// While the `Controller` exists the function's memory space and bus mastering are
/// enabled; `Drop` stops the controller before any queue memory is freed.
pub(crate) struct Controller {
    disks: KVec<GenDisk<IoOps>>,
    irqs: KVec<Pin<KBox<irq::Registration<QueueIrq>>>>,
    tagset: Option<Arc<TagSet<IoOps>>>,
    vectors: Option<Arc<IrqVectors>>,
    admin: AdminQueue,
    bar: Arc<pci::Bar<REGS_SIZE>>,
    pdev: ARef<pci::Device>,
    cap: Cap,
    instance: InstanceId,
}

impl Controller {
    /// Enables the function, maps BAR0, enables the controller with an admin queue,
    /// identifies it, creates I/O queues and adds a disk per namespace.
    pub(crate) fn new(pdev: &pci::Device<Core>) -> Result<Self> {
        pdev.enable_device_mem()?;
        let bar = pdev
            .iomap_region_sized::<REGS_SIZE>(0, BAR0_NAME)
            .inspect_err(|e| dev_err!(pdev, "cannot map BAR0: {:?}\n", e))?;

        let cap = Cap::read(&*bar);
        let vs = Vs::read(&*bar);
        let csts = Csts::read(&*bar);
        if csts.is_all_ones() {
            dev_err!(
                pdev,
                "controller registers read all ones: function not responding\n"
            );
            return Err(ENODEV);
        }
        dev_info!(
            pdev,
            "NVMe {} controller {:04x}:{:04x} rev {:02x}, VS {}, CAP {:#018x}: MQES {}, DSTRD {} bytes, TO {} ms, MPSMIN {} bytes, CSS {:#x}, CSTS {:#x}\n",
            if pdev.is_virtfn() { "VF" } else { "PF" },
            pdev.vendor_id(),
            pdev.device_id(),
            pdev.revision_id(),
            vs,
            cap.0,
            cap.max_queue_entries(),
            cap.doorbell_stride(),
            cap.timeout_ms(),
            cap.min_page_size(),
            cap.css(),
            csts.0,
        );
        if cap.min_page_size() > PAGE_SIZE || !cap.supports_nvm() {
            dev_err!(
                pdev,
                "controller supports neither 4 KiB pages nor the NVM command set\n"
            );
            return Err(ENODEV);
        }

        let dev = pdev.as_dev().as_bound();
        dev.dma_set_mask_and_coherent(DmaMask::new::<64>())?;
        pdev.set_master();

        // INVARIANT: memory space and bus mastering are enabled above; `Drop` disables the
        // controller before any queue memory is freed.
        let mut ctrl = Self {
            disks: KVec::new(),
            irqs: KVec::new(),
            tagset: None,
            vectors: None,
            admin: AdminQueue::new(dev, cap.doorbell_stride())?,
            bar: Arc::new(bar, GFP_KERNEL)?,
            pdev: pdev.get_ref(),
            cap,
            instance: InstanceId::new()?,
        };
        ctrl.disable()?;
        ctrl.enable()?;
        let (id, namespaces) = ctrl.identify(dev)?;
        ctrl.setup_io(pdev, &id, &namespaces)?;
        Ok(ctrl)
    }

    /// Current controller status.
    pub(crate) fn status(&self) -> Csts {
        Csts::read(&**self.bar)
    }

    /// Clears CC.EN and waits for CSTS.RDY to follow (within CAP.TO).
    fn disable(&self) -> Result {
        let cc = Cc::read(&**self.bar);
        if !cc.en() && !Csts::read(&**self.bar).rdy() {
            return Ok(());
        }
        cc.set_en(false).write(&**self.bar);
        self.wait_ready(false)
    }

    /// Waits for CSTS.RDY to become `ready`; fails on a fatal or vanished controller.
    fn wait_ready(&self, ready: bool) -> Result {
        let bar = &**self.bar;
        read_poll_timeout(
            || {
                let csts = Csts::read(bar);
                if csts.is_all_ones() {
                    return Err(ENODEV);
                }
                if ready && csts.cfs() {
                    return Err(EIO);
                }
                Ok(csts)
            },
            |csts| csts.rdy() == ready,
            self.cap.timeout_ms(),
        )
        .map(|_| ())
        .inspect_err(|e| {
            dev_err!(
                self.pdev,
                "controller did not become {} within {} ms: {:?}\n",
                if ready { "ready" } else { "disabled" },
                self.cap.timeout_ms(),
                e
            )
        })
    }

    /// Programs the admin queue and sets CC.EN.
    fn enable(&self) -> Result {
        let bar = &**self.bar;
        let (sq_dma, cq_dma) = self.admin.dma();
        let size = ADMIN_DEPTH - 1;
        Aqa::default().set_asqs(size).set_acqs(size).write(bar);
        Asq::default().set_asqb(sq_dma).write(bar);
        Acq::default().set_acqb(cq_dma).write(bar);
        Cc::default()
            .set_css(0)
            .set_mps(0)
            .set_ams(0)
            .set_iosqes(SQE_SIZE_LOG2)
            .set_iocqes(CQE_SIZE_LOG2)
            .set_en(true)
            .write(bar);
        self.wait_ready(true)
    }

    /// Sends an admin command and waits for it; returns the completion's DW0.
    fn admin_sync(&mut self, cmd: Command) -> Result<u32, NvmeError> {
        self.admin.submit_sync(&self.bar, cmd).map(|c| c.result)
    }

    /// Sends an admin command; failures are logged with `what` and become kernel errors.
    fn admin_checked(&mut self, cmd: Command, what: &str) -> Result<u32> {
        self.admin_sync(cmd).map_err(|e| {
            dev_err!(self.pdev, "{} failed: {:?}\n", what, e);
            Error::from(e)
        })
    }

    /// Runs Identify with `cns`/`nsid` and returns the 4 KiB structure.
    fn identify_raw(
        &mut self,
        buf: &CoherentAllocation<u8>,
        cns: u8,
        nsid: u32,
    ) -> Result<KVec<u8>> {
        self.admin_checked(Command::identify(cns, nsid, buf.dma_handle()), "Identify")?;
        let mut out = KVec::from_elem(0u8, IDENTIFY_SIZE, GFP_KERNEL)?;
        buf.read_into(0, &mut out)?;
        Ok(out)
    }

    /// Identifies the controller and its active namespaces, and logs what it found.
    fn identify(&mut self, dev: &Device<Bound>) -> Result<(IdentifyController, KVec<Namespace>)> {
        let buf = CoherentAllocation::<u8>::alloc_coherent(dev, IDENTIFY_SIZE)?;
        let raw = self.identify_raw(&buf, cns::CONTROLLER, 0)?;
        let id = IdentifyController::parse(as_identify(&raw)?);
        dev_info!(
            self.pdev,
            "serial {}, model {}, firmware {}, controller ID {}, MDTS {} KiB, {} namespace IDs\n",
            id.serial,
            id.model,
            id.firmware,
            id.cntlid,
            id.max_transfer_bytes(self.cap.min_page_size())
                .map_or(0, |b| b / 1024),
            id.nn,
        );

        let list = self.identify_raw(&buf, cns::ACTIVE_NS_LIST, 0)?;
        let mut nsids = KVec::new();
        for nsid in active_namespaces(as_identify(&list)?).take(MAX_NAMESPACES) {
            nsids.push(nsid, GFP_KERNEL)?;
        }
        let write_zeroes = id.oncs & (1 << 3) != 0;
        let mut namespaces = KVec::new();
        for nsid in nsids {
            let raw = self.identify_raw(&buf, cns::NAMESPACE, nsid)?;
            match IdentifyNamespace::parse(as_identify(&raw)?) {
                Some(ns) if ns.block_size() as usize <= PAGE_SIZE => {
                    dev_info!(
                        self.pdev,
                        "namespace {}: {} blocks of {} bytes ({} MiB)\n",
                        nsid,
                        ns.nsze,
                        ns.block_size(),
                        ns.nsze.saturating_mul(u64::from(ns.block_size())) >> 20
                    );
                    namespaces.push(Namespace::new(nsid, ns, write_zeroes), GFP_KERNEL)?;
                }
                _ => dev_info!(self.pdev, "namespace {}: not usable, ignored\n", nsid),
            }
        }
        Ok((id, namespaces))
    }

    /// Creates the I/O queues, their interrupt handlers and tag set, and a disk per
    /// namespace.
    fn setup_io(
        &mut self,
        pdev: &pci::Device<Core>,
        id: &IdentifyController,
        namespaces: &[Namespace],
    ) -> Result {
        let cpus = crate::kapi::cpu::nr_cpu_ids();
        let wanted = cpus.clamp(1, MAX_IO_QUEUES);
        let dw0 = self.admin_checked(
            Command::set_num_queues(wanted as u16, wanted as u16),
            "Set Features (Number of Queues)",
        )?;
        let (nsq, ncq) = num_queues_allocated(dw0);
        let granted = wanted.min(nsq).min(ncq);

        let vectors = pdev.alloc_irq_vectors(1, granted, IrqTypes::ALL)?;
        let nr_queues = granted.min(vectors.count());
        self.vectors = Some(vectors.clone());

        let depth = IO_QUEUE_DEPTH.min(self.cap.max_queue_entries()) as u16;
        let stride = self.cap.doorbell_stride();
        let dev = pdev.as_dev().as_bound();
        let mut queues = KVec::new();
        for qid in 1..=nr_queues as u16 {
            let sq = SubmissionQueue::new(dev, qid, depth, stride)?;
            let cq = CompletionQueue::new(dev, qid, depth, stride)?;
            self.admin_checked(
                Command::create_cq(qid, depth, cq.dma(), qid - 1),
                "Create I/O Completion Queue",
            )?;
            self.admin_checked(
                Command::create_sq(qid, depth, sq.dma(), qid),
                "Create I/O Submission Queue",
            )?;
            let queue = Arc::pin_init(IoQueue::new(qid, self.bar.clone(), sq, cq), GFP_KERNEL)?;
            queues.push(queue, GFP_KERNEL)?;
        }

        let io = Arc::new(
            IoQueues {
                queues,
                dev: dev.as_normal().into(),
                prp_pool: DmaPool::new(dev, c_str!("rnvme-prp"), PAGE_SIZE, PAGE_SIZE)?,
            },
            GFP_KERNEL,
        )?;
        let tagset = Arc::pin_init(
            TagSet::new(nr_queues, depth - 1, IO_TIMEOUT_MS, io.clone()),
            GFP_KERNEL,
        )?;
        self.tagset = Some(tagset.clone());

        for (i, queue) in io.queues.iter().enumerate() {
            let request = vectors.request(u32::from(queue.qid()) - 1)?;
            let handler = QueueIrq {
                queue: queue.clone(),
                hctx: i as u32,
                tagset: tagset.clone(),
            };
            let reg = KBox::pin_init(
                irq::Registration::new(request, c_str!("rnvme"), handler),
                GFP_KERNEL,
            )?;
            self.irqs.push(reg, GFP_KERNEL)?;
        }
        dev_info!(
            self.pdev,
            "{} I/O queue(s) of {} entries, {} interrupt vector(s)\n",
            nr_queues,
            depth,
            vectors.count()
        );

        let max_transfer = id
            .max_transfer_bytes(self.cap.min_page_size())
            .map_or(MAX_TRANSFER, |b| b.min(MAX_TRANSFER as usize) as u32);
        for ns in namespaces {
            let disk = GenDiskBuilder::new()
                .logical_block_size(ns.block_size())?
                .capacity_sectors(ns.capacity_sectors())
                .max_hw_sectors(max_transfer >> 9)
                .max_segments(MAX_SEGMENTS as u16)
                .virt_boundary_mask(PAGE_SIZE - 1)
                .write_cache(id.has_volatile_write_cache())
                .max_write_zeroes_sectors(if ns.write_zeroes() {
                    (65536u32 << ns.lba_shift()) >> 9
                } else {
                    0
                })
                .build(
                    format_args!("rnvme{}n{}", self.instance.get(), ns.nsid()),
                    tagset.clone(),
                    Arc::new(*ns, GFP_KERNEL)?,
                    self.pdev.as_dev(),
                )?;
            dev_info!(
                self.pdev,
                "namespace {} is disk rnvme{}n{}\n",
                ns.nsid(),
                self.instance.get(),
                ns.nsid()
            );
            self.disks.push(disk, GFP_KERNEL)?;
        }
        Ok(())
    }

    /// Shuts the controller down in an orderly way (CC.SHN normal).
    fn shutdown(&self) {
        let bar = &**self.bar;
        if Csts::read(bar).is_all_ones() {
            return;
        }
        Cc::alter(bar, |cc| cc.set_shn(CC_SHN_NORMAL));
        let done = read_poll_timeout(
            || Ok(Csts::read(bar)),
            |csts| csts.is_all_ones() || csts.shst() == CSTS_SHST_COMPLETE,
            SHUTDOWN_TIMEOUT_MS,
        );
        if done.is_err() {
            dev_err!(
                self.pdev,
                "shutdown did not complete within {} ms\n",
                SHUTDOWN_TIMEOUT_MS
            );
        }
    }
}

/// Views an Identify buffer as the fixed-size structure the parsers take.
fn as_identify(raw: &[u8]) -> Result<&[u8; IDENTIFY_SIZE]> {
    raw.try_into().map_err(|_| EINVAL)
}

impl Drop for Controller {
    fn drop(&mut self) {
        // Remove the disks first: this drains their I/O while the queues still work.
        drop(core::mem::take(&mut self.disks));
        let csts = Csts::read(&**self.bar);
        if !csts.is_all_ones() {
            if csts.rdy() {
                self.shutdown();
            }
            // The queue memory is freed right after this: the controller must no longer
            // own it. A vanished controller cannot DMA any more.
            if self.disable().is_err() {
                dev_err!(self.pdev, "controller did not disable\n");
            }
        }
        dev_info!(self.pdev, "unbound (CSTS {:#x})\n", self.status().0);
    }
}
