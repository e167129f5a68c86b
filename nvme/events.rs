// SPDX-License-Identifier: GPL-2.0

//! Asynchronous events: the admin queue's interrupt, and the work that reads each event's
//! log page (which lets the controller report the next one), acts on it (a namespace change
//! rescans the disks) and gives the controller a new Asynchronous Event Request.

use core::sync::atomic::Ordering;

use kernel::{
    prelude::*,
    sync::Arc,
    workqueue::{self, WorkItem},
};

use crate::{
    kapi::{
        device::{dev_info, dev_warn},
        irq::{Handler, IrqReturn},
    },
    nvme::{
        ctrl_core::{CtrlCore, CtrlState},
        spec::{
            command::{feature, Command},
            event::{log, AsyncEvent, EventAction, AEN_CFG_NOTICES},
        },
    },
};

/// Namespace ID meaning "the whole controller" in Get Log Page.
const NSID_ALL: u32 = 0xffff_ffff;

impl WorkItem<1> for CtrlCore {
    type Pointer = Arc<CtrlCore>;

    fn run(this: Arc<CtrlCore>) {
        this.handle_events();
    }
}

/// The interrupt handler of the admin queue's vector: admin commands are polled, so an
/// interrupt there means an asynchronous event (or a polled completion, which the work
/// finds already taken).
pub(crate) struct AdminIrq {
    /// The controller.
    pub(crate) core: Arc<CtrlCore>,
}

impl Handler for AdminIrq {
    fn handle(&self) -> IrqReturn {
        if self.core.state() == CtrlState::Live {
            // Already queued is fine: one run takes every event.
            let _ = workqueue::system().enqueue::<Arc<CtrlCore>, 1>(self.core.clone());
        }
        IrqReturn::Handled
    }
}

impl CtrlCore {
    /// Enables the notices the controller supports (of those in `oaes` the driver
    /// handles) and gives it an Asynchronous Event Request; also after every reset.
    pub(crate) fn enable_events(&self, oaes: u32) -> Result {
        self.aen_config
            .store(oaes & AEN_CFG_NOTICES, Ordering::Relaxed);
        self.start_events()
    }

    /// Sets the Asynchronous Event Configuration again and arms the request (a disabled
    /// controller forgets both).
    pub(crate) fn start_events(&self) -> Result {
        let config = self.aen_config.load(Ordering::Relaxed);
        if config != 0 {
            self.admin_checked(
                Command::set_features(feature::ASYNC_EVENT_CONFIG, config),
                "Set Features (Asynchronous Event Configuration)",
            )?;
        }
        self.arm_async_event()
    }

    /// Takes an event that arrived, clears it, acts on it and re-arms the request.
    fn handle_events(&self) {
        if self.state() != CtrlState::Live {
            return;
        }
        let event = match self.take_event() {
            Ok(Some(dw0)) => AsyncEvent::from_dw0(dw0),
            Ok(None) => return,
            Err(e) => {
                dev_warn!(self.pdev(), "cannot read asynchronous events: {:?}\n", e);
                return;
            }
        };
        dev_info!(
            self.pdev(),
            "asynchronous event: {:?}, information {:#x}, log page {:#x}\n",
            event.kind,
            event.info,
            event.log_page
        );
        self.clear_event(&event);
        if event.action() == EventAction::RescanNamespaces {
            if let Err(e) = self.rescan() {
                dev_warn!(self.pdev(), "namespace rescan failed: {:?}\n", e);
            }
        }
        if let Err(e) = self.arm_async_event() {
            dev_warn!(self.pdev(), "cannot re-arm asynchronous events: {:?}\n", e);
        }
    }

    /// Reads (and so clears) the Changed Namespace List before the first namespace scan.
    /// A controller reports a namespace change only once until the host reads that log;
    /// a change that happened while no driver read it (the function in vfio mode, or
    /// unbound) would otherwise silence every later attach and detach.
    pub(crate) fn clear_changed_namespaces(&self) {
        // 1024 namespace IDs of 4 bytes.
        self.discard_log(log::CHANGED_NS, 4096);
    }

    /// Reads the event's log page, which tells the controller the host saw the event.
    fn clear_event(&self, event: &AsyncEvent) {
        self.discard_log(event.log_page, event.log_bytes());
    }

    /// Reads `bytes` of log page `page` for all namespaces and drops the contents: what
    /// matters is that the controller sees the host read it. A failure is only logged.
    fn discard_log(&self, page: u8, bytes: u32) {
        let Some(cmd) = Command::get_log_page(page, NSID_ALL, bytes, 0) else {
            return;
        };
        if let Err(e) = self.admin_bounced(cmd, bytes, |_| Ok(()), |_| Ok(())) {
            dev_warn!(
                self.pdev(),
                "reading log page {:#x} failed: {:?}\n",
                page,
                e
            );
        }
    }
}
