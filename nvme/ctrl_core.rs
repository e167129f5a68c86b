// SPDX-License-Identifier: GPL-2.0

//! The controller of a function in block mode, as probe, the I/O path and recovery share
//! it: the controller's basics, its disks, the I/O side once it exists, and the work items
//! of recovery and asynchronous events. Recovery itself is in [`crate::nvme::recovery`].

use core::{
    ops::Deref,
    sync::atomic::{AtomicBool, AtomicU32, AtomicU8},
};

use kernel::{
    new_mutex, new_work,
    prelude::*,
    sync::{Arc, Mutex},
    workqueue::{impl_has_work, Work},
};

use crate::{
    kapi::{
        block::{
            self,
            mq::{DiskQueue, TagSet},
        },
        device::{dev_err, dev_info},
    },
    nvme::{
        ctrl_base::CtrlBase,
        disks::{DiskTemplate, NsDisks},
        io::{dbbuf::DbBuf, queue::IoQueue, request::IoOps},
        pf::PhysFn,
        spec::passthru::AdminEffects,
    },
};

/// The I/O side the recovery paths act on, set once the queues exist.
pub(crate) struct IoLink {
    /// The tag set of every disk.
    pub(crate) tagset: Arc<TagSet<IoOps>>,
    /// The I/O queues, in queue ID order.
    pub(crate) queues: KVec<Arc<IoQueue>>,
    /// Entries of each I/O queue.
    pub(crate) depth: u16,
    /// The shadow doorbells, when the controller supports them.
    pub(crate) dbbuf: Option<Arc<DbBuf>>,
}

/// The controller of a function in block mode.
///
/// It dereferences to its [`CtrlBase`] (registers, state, admin queue), which a physical
/// function shares with its [`PhysFn`].
#[pin_data]
pub(crate) struct CtrlCore {
    /// Registers, state and admin queue; shared with the function's [`PhysFn`].
    base: Arc<CtrlBase>,
    /// The services of a physical function for its VFs; `None` for a VF.
    phys_fn: Option<Arc<PhysFn>>,
    /// The I/O side once the queues exist; the state enters and leaves `Resetting` with
    /// it held (`recovery.rs`).
    #[pin]
    pub(crate) io: Mutex<Option<IoLink>>,
    /// Serialises the resets of a function that is not a physical function (a PF's are
    /// serialised by its [`PhysFn`]'s `vf_bringup`, see `recovery.rs`).
    #[pin]
    pub(crate) reset_lock: Mutex<()>,
    /// Runs the reset (`recovery.rs`).
    #[pin]
    reset_work: Work<CtrlCore>,
    /// What the resets keep between their steps.
    pub(crate) resets: ResetBook,
    /// Handles asynchronous events (see `events.rs`).
    #[pin]
    pub(crate) event_work: Work<CtrlCore, 1>,
    /// Marks the disks dead once the controller was given up (`recovery.rs`).
    #[pin]
    dead_work: Work<CtrlCore, 2>,
    /// The disks; never locked by the reset, which may run while a disk is being added.
    #[pin]
    pub(crate) namespaces: Mutex<NsDisks>,
}

impl_has_work! {
    impl HasWork<CtrlCore> for CtrlCore { self.reset_work }
    impl HasWork<CtrlCore, 1> for CtrlCore { self.event_work }
    impl HasWork<CtrlCore, 2> for CtrlCore { self.dead_work }
}

/// Why a reset is scheduled ([`CtrlCore::schedule_reset`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub(crate) enum ResetCause {
    /// A request timed out.
    Timeout = 0,
    /// The PF's controller was reset, which took this VF's secondary controller offline.
    PfReset = 1,
}

/// What a controller's resets keep between their steps.
pub(crate) struct ResetBook {
    /// Resets completed.
    pub(crate) done: AtomicU32,
    /// Why the queued reset runs (a [`ResetCause`]), for its log line.
    pub(crate) cause: AtomicU8,
    /// Whether the reset under way is held across two calls ([`CtrlCore::begin_reset`],
    /// [`CtrlCore::finish_reset`]: a PCI function reset or error recovery) rather than run
    /// by one task from start to end. Changed only with `io` held.
    pub(crate) held: AtomicBool,
}

impl Deref for CtrlCore {
    type Target = CtrlBase;

    fn deref(&self) -> &CtrlBase {
        &self.base
    }
}

impl CtrlCore {
    /// The controller over `base`; `phys_fn` is the function's own services for its VFs
    /// when it is a physical function.
    pub(crate) fn new(
        base: Arc<CtrlBase>,
        phys_fn: Option<Arc<PhysFn>>,
    ) -> impl PinInit<Self, Error> {
        try_pin_init!(Self {
            base,
            phys_fn,
            io <- new_mutex!(None, "CtrlCore::io"),
            reset_lock <- new_mutex!((), "CtrlCore::reset_lock"),
            reset_work <- new_work!("CtrlCore::reset_work"),
            resets: ResetBook {
                done: AtomicU32::new(0),
                cause: AtomicU8::new(ResetCause::Timeout as u8),
                held: AtomicBool::new(false),
            },
            event_work <- new_work!("CtrlCore::event_work"),
            dead_work <- new_work!("CtrlCore::dead_work"),
            namespaces <- new_mutex!(NsDisks::new(), "CtrlCore::namespaces"),
        })
    }

    /// The controller's basics, shared with its physical function's services.
    pub(crate) fn base(&self) -> &Arc<CtrlBase> {
        &self.base
    }

    /// The services of this physical function for its VFs; `None` for a VF.
    pub(crate) fn phys_fn(&self) -> Option<&Arc<PhysFn>> {
        self.phys_fn.as_ref()
    }

    /// Sets what new disks are made of, once the I/O queues exist.
    pub(crate) fn set_disk_template(&self, template: DiskTemplate) {
        self.namespaces.lock().set_template(template);
    }

    /// Adds disks for new active namespaces and removes those of namespaces that went away.
    pub(crate) fn rescan(&self) -> Result {
        let report = self.namespaces.lock().scan(self)?;
        if report.added + report.removed + report.revalidated > 0 {
            dev_info!(
                self.pdev(),
                "namespace scan: {} disk(s) added, {} removed, {} changed\n",
                report.added,
                report.removed,
                report.revalidated
            );
        }
        Ok(())
    }

    /// Runs admin passthrough `f` with what its `effects` ask for: with every disk's queue
    /// frozen for a command that changes namespace data or format (and the disks
    /// revalidated before I/O flows again, so nothing is issued with the old format), and
    /// followed by a rescan for one that may change namespaces (as the C driver's
    /// `nvme_passthru_end`).
    pub(crate) fn passthru_with_effects<R>(
        &self,
        effects: AdminEffects,
        f: impl FnOnce() -> Result<R>,
    ) -> Result<R> {
        let out = if effects.freeze_io {
            let disks = self.namespaces.lock();
            let frozen = disks.freeze_all()?;
            let out = f();
            if let Err(e) = disks.revalidate(self) {
                dev_err!(self.pdev(), "revalidating the namespaces failed: {:?}\n", e);
            }
            drop(frozen);
            out
        } else {
            f()
        };
        if effects.rescan {
            if let Err(e) = self.rescan() {
                dev_err!(self.pdev(), "namespace scan failed: {:?}\n", e);
            }
        }
        out
    }

    /// Runs `f` with the request queue of namespace `nsid`'s disk (`EINVAL` if there is
    /// none); the disk stays while `f` runs.
    pub(crate) fn with_disk_queue<R>(
        &self,
        nsid: u32,
        f: impl FnOnce(&DiskQueue<IoOps>) -> Result<R>,
    ) -> Result<R> {
        let disks = self.namespaces.lock();
        f(disks.queue_of(nsid).ok_or(EINVAL)?)
    }

    /// Whether a disk of this controller is open or mounted.
    pub(crate) fn disks_in_use(&self) -> bool {
        // A close deferred by a kernel thread (the partition scan of a new disk) is not a
        // user holding the disk.
        block::flush_deferred_closes();
        self.namespaces.lock().in_use()
    }

    /// Removes every disk, draining its I/O.
    pub(crate) fn remove_disks(&self) {
        self.namespaces.lock().clear();
    }

    /// Records the I/O side once it exists.
    pub(crate) fn link_io(&self, link: IoLink) {
        *self.io.lock() = Some(link);
    }
}
