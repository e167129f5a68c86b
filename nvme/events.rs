// SPDX-License-Identifier: GPL-2.0

//! Asynchronous events: the admin queue's interrupt, and the work that reads each event's
//! log page (which lets the controller report the next one), acts on it (a namespace change
//! rescans the disks) and gives the controller a new Asynchronous Event Request.

use kernel::{
    sync::Arc,
    workqueue::{self, WorkItem},
};

use crate::{
    kapi::{
        device::{dev_info, dev_warn},
        irq::{Handler, IrqReturn},
    },
    nvme::{
        ctrl_base::CtrlState,
        ctrl_core::CtrlCore,
        spec::event::{AsyncEvent, EventAction},
    },
};

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

    /// Reads the event's log page, which tells the controller the host saw the event.
    fn clear_event(&self, event: &AsyncEvent) {
        self.discard_log(event.log_page, event.log_bytes());
    }
}
