// SPDX-License-Identifier: GPL-2.0

//! An NVMe controller behind a PCI function: register BAR, enable/disable/shutdown, the
//! admin queue and the controller's identity.

use kernel::{prelude::*, types::ARef};

use crate::{
    admin::{AdminQueue, ADMIN_DEPTH},
    driver::BAR0_NAME,
    kapi::{
        delay::read_poll_timeout,
        device::{dev_err, dev_info, Bound, Core, Device},
        dma::{CoherentAllocation, DmaMask},
        pci,
    },
    nvme_error::NvmeError,
    spec::{
        command::{cns, Command, SQE_SIZE_LOG2},
        completion::CQE_SIZE_LOG2,
        identify::{active_namespaces, IdentifyController, IdentifyNamespace, IDENTIFY_SIZE},
        regs::{Acq, Aqa, Asq, Cap, Cc, Csts, Vs, CC_SHN_NORMAL, CSTS_SHST_COMPLETE, REGS_SIZE},
    },
};

/// How long a normal shutdown (CC.SHN) may take before the driver disables the controller
/// anyway.
const SHUTDOWN_TIMEOUT_MS: u32 = 5_000;

/// At most this many namespaces are identified at probe.
const MAX_NAMESPACES: usize = 64;

/// An enabled NVMe controller with its admin queue.
///
/// # Invariants
///
/// While the `Controller` exists the function's memory space and bus mastering are enabled
/// (the driver disables them after dropping it), and the admin queue memory stays allocated
/// until the controller is disabled: `Drop` clears CC.EN before the fields (the queue
/// memory) are freed.
pub(crate) struct Controller {
    pdev: ARef<pci::Device>,
    bar: pci::Bar<REGS_SIZE>,
    cap: Cap,
    admin: AdminQueue,
}

impl Controller {
    /// Enables the function, maps BAR0, enables the controller with an admin queue and
    /// identifies it and its namespaces. On error the caller disables the function.
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
        if cap.min_page_size() > 4096 || !cap.supports_nvm() {
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
        // controller before the admin queue memory is freed.
        let mut ctrl = Self {
            pdev: pdev.get_ref(),
            admin: AdminQueue::new(dev, cap.doorbell_stride())?,
            bar,
            cap,
        };
        ctrl.disable()?;
        ctrl.enable()?;
        ctrl.identify(dev)?;
        Ok(ctrl)
    }

    /// Current controller status.
    pub(crate) fn status(&self) -> Csts {
        Csts::read(&*self.bar)
    }

    /// Clears CC.EN and waits for CSTS.RDY to follow (within CAP.TO).
    fn disable(&self) -> Result {
        let cc = Cc::read(&*self.bar);
        if !cc.en() && !Csts::read(&*self.bar).rdy() {
            return Ok(());
        }
        cc.set_en(false).write(&*self.bar);
        self.wait_ready(false)
    }

    /// Waits for CSTS.RDY to become `ready`; fails on a fatal or vanished controller.
    fn wait_ready(&self, ready: bool) -> Result {
        let bar = &*self.bar;
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
        let bar = &*self.bar;
        let q = self.admin.queue();
        let size = ADMIN_DEPTH - 1;
        Aqa::default().set_asqs(size).set_acqs(size).write(bar);
        Asq::default().set_asqb(q.sq_dma()).write(bar);
        Acq::default().set_acqb(q.cq_dma()).write(bar);
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

    /// Sends an admin command and waits for it.
    fn admin_sync(&mut self, cmd: Command) -> Result<u32, NvmeError> {
        self.admin.submit_sync(&self.bar, cmd).map(|c| c.result)
    }

    /// Runs Identify with `cns`/`nsid` and returns the 4 KiB structure.
    fn identify_raw(
        &mut self,
        buf: &CoherentAllocation<u8>,
        cns: u8,
        nsid: u32,
    ) -> Result<KVec<u8>> {
        self.admin_sync(Command::identify(cns, nsid, buf.dma_handle()))
            .map_err(|e| {
                dev_err!(
                    self.pdev,
                    "Identify CNS {:#x} NSID {} failed: {:?}\n",
                    cns,
                    nsid,
                    e
                );
                Error::from(e)
            })?;
        let mut out = KVec::from_elem(0u8, IDENTIFY_SIZE, GFP_KERNEL)?;
        buf.read_into(0, &mut out)?;
        Ok(out)
    }

    /// Identifies the controller and its active namespaces, and logs what it found.
    fn identify(&mut self, dev: &Device<Bound>) -> Result {
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
        for nsid in nsids {
            let raw = self.identify_raw(&buf, cns::NAMESPACE, nsid)?;
            match IdentifyNamespace::parse(as_identify(&raw)?) {
                Some(ns) => {
                    dev_info!(
                        self.pdev,
                        "namespace {}: {} blocks of {} bytes ({} MiB)\n",
                        nsid,
                        ns.nsze,
                        ns.block_size(),
                        ns.nsze.saturating_mul(u64::from(ns.block_size())) >> 20
                    );
                }
                None => dev_info!(self.pdev, "namespace {}: not usable, ignored\n", nsid),
            }
        }
        Ok(())
    }

    /// Shuts the controller down in an orderly way (CC.SHN normal) at unbind.
    pub(crate) fn shutdown(&self) {
        let bar = &*self.bar;
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
        // The admin queue memory is freed right after this: make sure the controller no
        // longer owns it. A vanished controller cannot DMA any more.
        if !Csts::read(&*self.bar).is_all_ones() && self.disable().is_err() {
            dev_err!(
                self.pdev,
                "controller did not disable; leaking nothing, but it may still be running\n"
            );
        }
    }
}
