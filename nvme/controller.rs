// SPDX-License-Identifier: GPL-2.0

//! An NVMe controller behind a PCI function: register BAR, enable/disable/shutdown, the
//! admin queue, the I/O queues and one disk per namespace.

use kernel::{c_str, fmt, prelude::*, str::CString, sync::Arc, types::ARef};

use crate::{
    kapi::{
        block::mq::TagSet,
        device::{dev_err, dev_info, dev_warn, Core, Device},
        dma::{CoherentAllocation, DmaMask, DmaPool},
        instance::InstanceId,
        irq,
        miscdevice::{MiscAttributes, MiscFile, MiscRegistration},
        nvme_class::{ClassRegistration, CtrlDevice, CtrlInfo},
        params,
        pci::{self, IrqTypes, IrqVectors},
    },
    nvme::{
        admin::AdminQueue,
        block_ops::IoQueues,
        chardev::CtrlFile,
        ctrl_base::{as_identify, CtrlBase, BAR0_NAME},
        ctrl_core::{CtrlCore, IoLink},
        disks::DiskTemplate,
        events::AdminIrq,
        io::dbbuf::DbBuf,
        io::queue::{IoQueue, QueueIrq},
        io::request::{MAX_SEGMENTS, MAX_TRANSFER},
        io::rings::{CompletionQueue, SubmissionQueue},
        pf::PhysFn,
        spec::mode::Mode,
        spec::{
            command::cns,
            ctrl_regs::{Cap, Csts, Vs, REGS_SIZE},
            identify::{IdentifyController, IDENTIFY_SIZE},
            limits::RequestLimits,
            queue::split_queues,
        },
    },
};

/// At most this many I/O queues (one per CPU up to this).
const MAX_IO_QUEUES: u32 = 8;

/// Entries of each I/O queue (limited by CAP.MQES).
const IO_QUEUE_DEPTH: u32 = 256;

// Every tag of a queue must fit in the tag bits of a command identifier.
const _: () = assert!(IO_QUEUE_DEPTH <= crate::nvme::spec::cid::MAX_TAGS);

/// Request timeout of I/O commands.
const IO_TIMEOUT_MS: u32 = 30_000;

/// Bytes per controller memory page (CC.MPS = 0).
const PAGE_SIZE: usize = 4096;

/// The prefix of the controller's device names: `nvme` while the module holds the `nvme`
/// class, else `rnvme` (`nvme_class` parameter).
fn prefix() -> &'static str {
    if ClassRegistration::active() {
        "nvme"
    } else {
        "rnvme"
    }
}

/// An enabled NVMe controller with its queues and disks.
///
/// What probe, the I/O path and recovery share lives in [`CtrlCore`] (disks, the I/O link,
/// the work items; recovery in `recovery.rs`) and its [`CtrlBase`] (registers, admin queue,
/// state); this object owns what only the binding needs. `Drop` removes the disks and stops the
/// controller; the fields are then dropped in declaration order: interrupt handlers first
/// (which releases the tag set and the I/O queue memory), then the shared controller (admin
/// queue memory, BAR), then the vectors.
pub(crate) struct Controller {
    chardev: Option<Pin<KBox<MiscRegistration>>>,
    /// The controller's attributes, with its devices in the `nvme` classes (`nvme_class`
    /// parameter); without the classes the attributes are the misc device's, which holds
    /// a reference (dropped first, with `chardev`).
    controls: Option<Arc<CtrlDevice<CtrlCore>>>,
    irqs: KVec<Pin<KBox<irq::Registration<QueueIrq>>>>,
    admin_irq: Option<Pin<KBox<irq::Registration<AdminIrq>>>>,
    core: Arc<CtrlCore>,
    vectors: Option<Arc<IrqVectors>>,
    instance: InstanceId,
    /// For a VF whose PF is bound to this driver: the PF's services and the VF number.
    physfn: Option<(Arc<PhysFn>, u16)>,
}

impl Controller {
    /// Enables the function, maps BAR0, enables the controller with an admin queue,
    /// identifies it, creates I/O queues and adds a disk per namespace. `physfn` is the
    /// PF's services when this is a VF whose PF this driver runs.
    pub(crate) fn new(pdev: &pci::Device<Core>, physfn: Option<Arc<PhysFn>>) -> Result<Self> {
        // A VF's secondary controller must be online before anything else: going online
        // resets the VF's controller and sets its vector count.
        // A reset of the PF waits until the VF is attached (`PhysFn::vf_bringup`).
        let pf_core = physfn.clone();
        let _bringup = pf_core.as_ref().map(|pf| pf.vf_bringup.lock());
        let physfn = match physfn {
            Some(pf) => {
                let vfn = pdev.vf_number()?;
                // A VF in vfio mode is not probed at all: the vfio-mode driver takes it.
                if pf.vf_mode(vfn) == Mode::Vfio {
                    return Err(ENODEV);
                }
                pf.sriov_vf_online(pdev, vfn)?;
                Some((pf, vfn))
            }
            None => None,
        };
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
        // PRPs describe segments of any length (page by page); the C driver sets the same.
        dev.dma_set_max_seg_size(u32::MAX);
        pdev.set_master();
        // For the restores after a reset of the function (`CtrlCore::finish_function_reset`,
        // the PCI error handlers) and, on a VF, of its PF.
        pdev.save_state();

        let bar = Arc::new(bar, GFP_KERNEL)?;
        let admin = AdminQueue::new(dev, &bar, cap.doorbell_stride())?;
        let base = Arc::pin_init(CtrlBase::new(pdev.get_ref(), bar, cap, admin), GFP_KERNEL)?;
        // Only a physical function has services for VFs.
        let phys_fn = if pdev.is_physfn() {
            Some(Arc::pin_init(PhysFn::new(base.clone()), GFP_KERNEL)?)
        } else {
            None
        };
        let core = Arc::pin_init(CtrlCore::new(base, phys_fn), GFP_KERNEL)?;
        let mut ctrl = Self {
            chardev: None,
            controls: None,
            irqs: KVec::new(),
            admin_irq: None,
            core,
            vectors: None,
            instance: InstanceId::new()?,
            physfn: None,
        };
        ctrl.core.disable()?;
        // One vector before the admin queue is set up, as the C driver does: a controller
        // may tie its admin completion queue to MSI-X vector 0 only if MSI-X is on when
        // it is enabled (QEMU's does). The full set replaces it once the queue count is
        // known.
        ctrl.vectors = Some(pdev.alloc_irq_vectors(1, 1, IrqTypes::ALL, None)?);
        ctrl.core.enable()?;
        // One Identify buffer for the controller now and the namespace scans later.
        let identify_buf = CoherentAllocation::<u8>::alloc_coherent(dev, IDENTIFY_SIZE)?;
        let id = ctrl.identify(&identify_buf)?;
        ctrl.setup_io(pdev, &id, identify_buf)?;
        let name = CString::try_from_fmt(fmt!("{}{}", prefix(), ctrl.instance.get()))?;
        let file: Arc<dyn MiscFile> = Arc::new(CtrlFile::new(ctrl.core.clone()), GFP_KERNEL)?;
        // Without the classes the controller's attributes go on this device.
        let attrs: Option<Arc<dyn MiscAttributes>> = if ClassRegistration::active() {
            None
        } else {
            ctrl.controls
                .clone()
                .map(|c| -> Arc<dyn MiscAttributes> { c })
        };
        ctrl.chardev = Some(KBox::pin_init(
            MiscRegistration::register(name, file, attrs),
            GFP_KERNEL,
        )?);
        if let Some((pf, vfn)) = &physfn {
            pf.sriov_attach(*vfn, ctrl.core.clone());
        }
        ctrl.physfn = physfn;
        Ok(ctrl)
    }

    /// The controller, as probe, the I/O path and recovery share it.
    pub(crate) fn core(&self) -> &Arc<CtrlCore> {
        &self.core
    }

    /// Identifies the controller and logs what it found.
    fn identify(&self, buf: &CoherentAllocation<u8>) -> Result<IdentifyController> {
        let raw = self.core.identify(buf, cns::CONTROLLER, 0)?;
        let id = IdentifyController::parse(as_identify(&raw)?);
        dev_info!(
            self.core.pdev(),
            "serial {}, model {}, firmware {}, controller ID {}, MDTS {} KiB, {} namespace IDs\n",
            id.serial,
            id.model,
            id.firmware,
            id.cntlid,
            id.max_transfer_bytes(self.core.cap().min_page_size())
                .map_or(0, |b| b / 1024),
            id.nn,
        );
        Ok(id)
    }

    /// Creates the I/O queues, their interrupt handlers and tag set, and a disk per
    /// namespace (scanned with `identify_buf`).
    fn setup_io(
        &mut self,
        pdev: &pci::Device<Core>,
        id: &IdentifyController,
        identify_buf: CoherentAllocation<u8>,
    ) -> Result {
        let core = self.core.clone();
        let cpus = crate::kapi::cpu::nr_cpu_ids();
        let poll_wanted = params::poll_queues();
        let wanted = cpus.clamp(1, MAX_IO_QUEUES) + poll_wanted;
        let granted = core.set_num_queues(wanted as u16)?;
        // Polled queues come on top of the interrupt-driven ones, but at least one
        // interrupt-driven queue stays.
        let split = split_queues(granted, poll_wanted);
        // No handler uses the probe vector: it can go.
        drop(self.vectors.take());

        // Vector 0 serves the admin queue; the interrupt-driven I/O queues get one each,
        // spread over the CPUs. A function with a single vector shares it between the
        // admin queue and one I/O queue. Polled queues need no vector.
        let vectors = pdev.alloc_irq_vectors(1, split.interrupt + 1, IrqTypes::ALL, Some(1))?;
        let (nr_interrupt, first_vector) = match vectors.count() {
            1 => (1, None),
            n => (split.interrupt.min(n - 1), Some(1)),
        };
        let nr_queues = nr_interrupt + split.poll;
        self.vectors = Some(vectors.clone());

        let depth = IO_QUEUE_DEPTH.min(core.cap().max_queue_entries()) as u16;
        let stride = core.cap().doorbell_stride();
        let dev = pdev.as_dev().as_bound();
        let mut queues = KVec::new();
        let mut link_queues = KVec::new();
        for qid in 1..=nr_queues as u16 {
            let sq = SubmissionQueue::new(dev, core.bar(), qid, depth, stride)?;
            let cq = CompletionQueue::new(dev, core.bar(), qid, depth, stride)?;
            let vector = (u32::from(qid) <= nr_interrupt)
                .then(|| first_vector.map_or(0, |first| first + u32::from(qid) - 1) as u16);
            let queue = Arc::pin_init(IoQueue::new(qid, vector, sq, cq), GFP_KERNEL)?;
            core.create_io_queue(queue.qid(), depth, queue.dma(), queue.vector())?;
            link_queues.push(queue.clone(), GFP_KERNEL)?;
            queues.push(queue, GFP_KERNEL)?;
        }

        let io = Arc::new(
            IoQueues {
                core: core.clone(),
                base: core.base().clone(),
                queues,
                dev: dev.as_normal().into(),
                prp_pool: DmaPool::new(dev, c_str!("rnvme-prp"), PAGE_SIZE, PAGE_SIZE)?,
                sgl: id.supports_sgls(),
                first_vector,
                nr_interrupt,
            },
            GFP_KERNEL,
        )?;
        // With polled queues the tag set has the default, read (empty) and poll maps.
        let maps = if split.poll > 0 { 3 } else { 1 };
        let tagset = Arc::pin_init(
            TagSet::new(nr_queues, depth - 1, maps, IO_TIMEOUT_MS, io.clone()),
            GFP_KERNEL,
        )?;

        // Vector 0 (the admin queue's) signals asynchronous events.
        let reg = KBox::pin_init(
            irq::Registration::new(
                vectors.request(0)?,
                c_str!("rnvme-admin"),
                AdminIrq { core: core.clone() },
            ),
            GFP_KERNEL,
        )?;
        self.admin_irq = Some(reg);
        for queue in io.queues.iter() {
            let Some(vector) = queue.vector() else {
                continue;
            };
            let request = vectors.request(u32::from(vector))?;
            let handler = QueueIrq {
                queue: queue.clone(),
                tagset: tagset.clone(),
            };
            let reg = KBox::pin_init(
                irq::Registration::new(request, c_str!("rnvme"), handler),
                GFP_KERNEL,
            )?;
            queue.set_irq(reg.irq());
            self.irqs.push(reg, GFP_KERNEL)?;
        }
        // Shadow doorbells save most doorbell MMIO writes where the controller supports
        // them; without them (or if the command fails) every doorbell is an MMIO write.
        let dbbuf = if id.supports_dbbuf() {
            let buf = DbBuf::new(dev)?;
            match core.config_dbbuf(buf.dma()) {
                Ok(()) => {
                    let dstride = core.cap().doorbell_stride() / 4;
                    for q in io.queues.iter() {
                        q.use_shadow(&buf, dstride);
                    }
                    Some(buf)
                }
                Err(_) => None,
            }
        } else {
            None
        };
        dev_info!(
            core.pdev(),
            "shadow doorbells {}\n",
            if dbbuf.is_some() { "on" } else { "off" }
        );
        core.link_io(IoLink {
            tagset: tagset.clone(),
            queues: link_queues,
            depth,
            dbbuf,
        });
        dev_info!(
            core.pdev(),
            "{} I/O queue(s) of {} entries ({} polled), {} interrupt vector(s)\n",
            nr_queues,
            depth,
            split.poll,
            vectors.count()
        );

        // As the C driver: no larger than the DMA layer maps at its cheapest, so that
        // with an IOMMU every request's I/O virtual addresses come from its caches.
        let limits = RequestLimits::new(
            id.max_transfer_bytes(core.cap().min_page_size()),
            pdev.as_dev().as_bound().dma_opt_mapping_size(),
            MAX_TRANSFER,
            MAX_SEGMENTS as u16,
            PAGE_SIZE as u32,
        );
        // The controller's attributes; in the `nvme` class also its class device, below
        // which the disks hang (libnvme looks for them there).
        let nvme_names = ClassRegistration::active();
        let mut nqn = [0u8; 256];
        let nqn_len = id.subsystem_nqn(&mut nqn);
        let info = CtrlInfo {
            instance: self.instance.get(),
            model: id.model.trimmed(),
            serial: id.serial.trimmed(),
            firmware: id.firmware.trimmed(),
            subsysnqn: &nqn[..nqn_len],
            cntlid: id.cntlid,
            queue_count: nr_queues as u16 + 1,
            sqsize: depth - 1,
        };
        let controls = Arc::new(
            CtrlDevice::new(pdev.as_dev().as_normal(), &info, core.clone())?,
            GFP_KERNEL,
        )?;
        let parent: ARef<Device> = match controls.class_device() {
            Some(c) => c.into(),
            None => pdev.as_dev().as_normal().into(),
        };
        self.controls = Some(controls);
        core.set_disk_template(DiskTemplate {
            tagset,
            instance: self.instance.get(),
            prefix: prefix(),
            nvme_names,
            parent,
            limits,
            write_cache: id.has_volatile_write_cache(),
            oncs: id.oncs,
            identify_buf,
        });
        core.clear_changed_namespaces();
        core.rescan()?;
        // Without events the driver still works; namespace changes then need a rescan.
        if let Err(e) = core.enable_events(id.oaes) {
            dev_warn!(core.pdev(), "asynchronous events unavailable: {:?}\n", e);
        }
        Ok(())
    }

    /// Stops the controller for a system shutdown or reboot (the disks stay).
    pub(crate) fn shutdown(&self) {
        self.core.system_shutdown();
    }
}

impl Drop for Controller {
    fn drop(&mut self) {
        if let Some((pf, vfn)) = self.physfn.take() {
            pf.sriov_detach(vfn);
        }
        // The misc device first: once it is gone no attribute action of it runs (see
        // `ctrl_attrs.rs` for why waiting for one cannot deadlock). Then remove the disks:
        // this drains their I/O while the queues still work (a timeout now fails
        // everything instead of resetting).
        drop(self.chardev.take());
        self.core.begin_removal();
        self.core.remove_disks();
        self.core.finish_removal();
        dev_info!(
            self.core.pdev(),
            "unbound (CSTS {:#x})\n",
            self.core.status().0
        );
    }
}
