// SPDX-License-Identifier: GPL-2.0

//! Device dirty tracking of a VF in vfio mode (`VFIO_DEVICE_FEATURE_DMA_LOGGING_*`): the
//! host memory the VF's DMA writes, which the VMM must copy again during a live migration.
//!
//! The guest owns the VF's DMA, so the VF cannot report its own writes: its PF does. On
//! [`VfDirty::start`] the PF creates a memory change queue (a Controller Data Queue, CDQ)
//! for the VF's secondary controller in memory of its own DMA domain, taken from the PF
//! ([`PhysFn::cdq_memory_take`]), and starts tracking the ranges the VMM asked for (Track
//! Send, TP4159). The controller writes an entry per range written; a delayed work item
//! drains the queue every [`DRAIN_MS`] ms into a bitmap per range (so that the queue does
//! not fill between two reports; a command only when it took entries), and
//! [`VfDirty::report`] drains it once more, after a Get Features that makes the controller
//! write whatever it still held, and hands the dirty granules of the asked window to the
//! VFIO core's bitmap.
//!
//! Nothing is lost silently: if the queue was full the controller says so (an overflow
//! entry, or Controller Data Queue Full on the flush) and every tracked range is reported
//! dirty, which is correct but makes the VMM copy everything once; it is counted and logged
//! once per tracking. A reset of the PF deletes the queue: every command about it runs
//! while the PF is live and has not left `Live` since the queue was made
//! ([`PhysFn::lm_while_live`], which also keeps a reset from beginning meanwhile), so no
//! command names a queue ID that may by then be another VF's; once the PF was reset, every
//! report says everything is dirty, until the VMM stops. A reset of the VF does not touch
//! the tracking (the queue is the PF's).
//!
//! Locks: the tracking mutex, then the PF's `vf_bringup`, SR-IOV and admin locks. The VFIO
//! core calls the logging callbacks without a lock; a close stops the tracking under the
//! VFIO device set's lock, which none of these locks' holders waits for.

use kernel::{
    new_mutex,
    prelude::*,
    sync::{Arc, Mutex},
    types::ARef,
    workqueue::WorkItem,
};

use crate::{
    kapi::{
        device::{dev_err, dev_info, dev_warn},
        dma::{dma_rmb, CoherentAllocation},
        error::eoverflow,
        pci,
        vfio::{IovaBitmap, IovaRange},
        workqueue::{impl_has_delayed_work, msecs_to_jiffies, new_delayed_work, DelayedWork},
    },
    nvme::{
        nvme_error::NvmeError,
        pf::{
            lm::{Flushed, LmCommands},
            PhysFn,
        },
        spec::completion::sct,
        spec::lm::track::{
            status, words_for, DirtyBits, Entry, EntryKind, Ring, TrackingCaps, ENTRY_SIZE,
        },
    },
};

/// How often the PF drains a VF's queue between reports, in milliseconds.
pub(crate) const DRAIN_MS: u32 = 50;

/// The most bitmap memory one tracking may take (one bit per granule): 64 MiB tracks 2 TiB
/// at 4 KiB.
const MAX_BITMAP_BYTES: usize = 64 << 20;

/// A tracked range and its dirty bits.
struct Tracked {
    /// First address.
    start: u64,
    /// Length in bytes (a multiple of the granularity).
    len: u64,
    /// One bit per granule.
    words: KVVec<u64>,
}

impl Tracked {
    /// Whether `[iova, iova + len)` lies inside this range.
    fn holds(&self, iova: u64, len: u64) -> bool {
        iova >= self.start
            && iova
                .checked_add(len)
                .is_some_and(|end| end <= self.start + self.len)
    }
}

/// A running tracking.
struct Tracking {
    /// The queue memory (the PF's DMA memory), given back on stop.
    mem: CoherentAllocation<u8>,
    /// The queue's identifier on the PF.
    cdqid: u16,
    /// Where the next entry is.
    ring: Ring,
    /// Granularity, log2 of bytes.
    shift: u8,
    /// The ranges.
    ranges: KVec<Tracked>,
    /// The PF controller's generation the queue was created in ([`PhysFn::lm_while_live`]):
    /// once the PF left `Live` (a reset deletes its queues), no command names the queue
    /// any more (its CDQID may be another VF's by then).
    generation: u32,
    /// Set when the queue lost entries, or the PF could not be asked: every range is then
    /// dirty on the next report.
    everything: bool,
    /// How many times the queue overflowed.
    overflows: u64,
    /// Whether a failure to reach the PF was logged.
    warned: bool,
}

impl Tracking {
    /// Marks what an entry reports.
    fn mark(&mut self, start: u64, granules: u32) {
        let len = u64::from(granules) << self.shift;
        for r in self.ranges.iter_mut() {
            if let Some(mut bits) = DirtyBits::new(r.start, r.len, self.shift, &mut r.words) {
                bits.mark(start, len);
            }
        }
    }
}

/// The dirty tracking of one VF in vfio mode.
#[pin_data]
pub(crate) struct VfDirty {
    /// The VF (for messages).
    vf: ARef<pci::Device>,
    /// Its PF, which sends the commands and owns the queue.
    pf: Arc<PhysFn>,
    /// VF number.
    vfn: u16,
    /// The VF's secondary controller.
    scid: u16,
    /// What the PF's controller can track.
    caps: TrackingCaps,
    /// The tracking, while one runs.
    #[pin]
    inner: Mutex<Option<Tracking>>,
    /// Drains the queue between reports.
    #[pin]
    drain: DelayedWork<VfDirty>,
}

impl_has_delayed_work! {
    impl HasDelayedWork<Self> for VfDirty { self.drain }
}

impl WorkItem for VfDirty {
    type Pointer = Arc<VfDirty>;

    fn run(this: Arc<VfDirty>) {
        let again = {
            let mut inner = this.inner.lock();
            match inner.as_mut() {
                Some(t) => {
                    this.drain_queue(t, false);
                    true
                }
                None => false,
            }
        };
        if again {
            DelayedWork::queue(this, msecs_to_jiffies(DRAIN_MS));
        }
    }
}

impl VfDirty {
    /// The dirty tracking of VF `vfn` (`vf`, secondary controller `scid`) of `pf`, whose
    /// controller tracks as `caps` says.
    pub(crate) fn new(
        vf: ARef<pci::Device>,
        pf: Arc<PhysFn>,
        vfn: u16,
        scid: u16,
        caps: TrackingCaps,
    ) -> impl PinInit<Self, Error> {
        try_pin_init!(Self {
            vf,
            pf,
            vfn,
            scid,
            caps,
            inner <- new_mutex!(None, "VfDirty::inner"),
            drain <- new_delayed_work!("VfDirty::drain"),
        })
    }

    /// The most ranges one start takes.
    pub(crate) fn max_ranges(&self) -> u32 {
        u32::from(self.caps.max_ranges)
    }

    /// `log_start`: tracks `ranges` at `page_size` (or the nearest granularity the
    /// controller has, written back).
    pub(crate) fn start(self: &Arc<Self>, ranges: &[IovaRange], page_size: &mut u64) -> Result {
        let mut inner = self.inner.lock();
        if inner.is_some() {
            return Err(EINVAL);
        }
        let shift = self.caps.granularity_for(*page_size).ok_or(EINVAL)?;
        let tracked = Self::bitmaps(ranges, shift)?;
        let mut list = KVec::with_capacity(tracked.len(), GFP_KERNEL)?;
        for r in tracked.iter() {
            list.push((r.start, r.len), GFP_KERNEL)?;
        }
        let mem = self.pf.cdq_memory_take(self.vfn).ok_or(ENOSPC)?;
        let Some(ring) = u32::try_from(mem.size() / ENTRY_SIZE)
            .ok()
            .and_then(Ring::new)
        else {
            self.pf.cdq_memory_return(self.vfn, mem, true);
            return Err(EINVAL);
        };
        // Entries of an earlier tracking must not look new.
        if let Err(e) = KVec::from_elem(0u8, mem.size(), GFP_KERNEL)
            .map_err(Error::from)
            .and_then(|z| mem.write_from(0, &z))
        {
            self.pf.cdq_memory_return(self.vfn, mem, true);
            return Err(e);
        }
        // Queue and tracking are made while no reset of the PF can begin.
        let made = self.pf.lm_while_live(None, |lm, generation| {
            let cdqid = lm.cdq_create(self.scid, &mem).map_err(|e| {
                // A controller that did not answer may have made the queue after all.
                let quiet = !matches!(e, NvmeError::Timeout | NvmeError::Dead);
                (self.command_error("Create Controller Data Queue", e), quiet)
            })?;
            let undo = |err: Error| (err, lm.cdq_delete(cdqid).is_ok());
            match lm.track_start(cdqid, shift, &list, self.caps.max_ranges) {
                Ok(g) if g == shift => Ok((cdqid, generation)),
                Ok(g) => {
                    dev_err!(
                        self.vf,
                        "VF {}: tracking at 2^{} bytes, not the 2^{} asked for\n",
                        self.vfn,
                        g,
                        shift
                    );
                    Err(undo(EIO))
                }
                Err(e) => Err(undo(self.command_error("Track Send (start)", e))),
            }
        });
        let (cdqid, generation) = match made {
            Some(Ok(made)) => made,
            Some(Err((e, quiet))) => {
                self.pf.cdq_memory_return(self.vfn, mem, quiet);
                return Err(e);
            }
            None => {
                self.pf.cdq_memory_return(self.vfn, mem, true);
                dev_warn!(
                    self.vf,
                    "VF {}: no dirty tracking: the PF is not live\n",
                    self.vfn
                );
                return Err(EBUSY);
            }
        };
        *inner = Some(Tracking {
            mem,
            cdqid,
            ring,
            shift,
            ranges: tracked,
            generation,
            everything: false,
            overflows: 0,
            warned: false,
        });
        // Queued under the lock: a stop that takes the tracking cancels it.
        DelayedWork::queue(self.clone(), msecs_to_jiffies(DRAIN_MS));
        drop(inner);
        *page_size = 1u64 << shift;
        dev_info!(
            self.vf,
            "VF {}: dirty tracking started: {} range(s), 2^{} bytes\n",
            self.vfn,
            list.len(),
            shift
        );
        Ok(())
    }

    /// The ranges, widened to the granularity, each with an empty bitmap.
    fn bitmaps(ranges: &[IovaRange], shift: u8) -> Result<KVec<Tracked>> {
        let mask = (1u64 << shift) - 1;
        let mut out = KVec::with_capacity(ranges.len(), GFP_KERNEL)?;
        let mut bytes = 0usize;
        for r in ranges {
            // The VFIO core lets an empty range through (`last` one below `start`).
            if r.last.wrapping_add(1) == r.start {
                return Err(EINVAL);
            }
            let start = r.start & !mask;
            let end = r.last.checked_add(1).ok_or_else(eoverflow)?;
            let end = end.checked_add(mask).ok_or_else(eoverflow)? & !mask;
            let len = end - start;
            let words = words_for(len, shift).ok_or(E2BIG)?;
            bytes = bytes.saturating_add(words.saturating_mul(8));
            if bytes > MAX_BITMAP_BYTES {
                return Err(E2BIG);
            }
            out.push(
                Tracked {
                    start,
                    len,
                    words: KVVec::from_elem(0u64, words, GFP_KERNEL)?,
                },
                GFP_KERNEL,
            )?;
        }
        Ok(out)
    }

    /// `log_stop`, and what a close of the VFIO device does: ends the tracking, if any.
    pub(crate) fn stop(self: &Arc<Self>) {
        let taken = self.inner.lock().take();
        // Whether or not a tracking ran: a work item queued by a start racing with this
        // stop must not outlive it (nor the module).
        DelayedWork::cancel_sync(self);
        let Some(t) = taken else {
            return;
        };
        let stopped = self.pf.lm_while_live(Some(t.generation), |lm, _| {
            if let Err(e) = lm.track_stop(t.cdqid) {
                dev_warn!(self.vf, "VF {}: Track Send (stop): {:?}\n", self.vfn, e);
            }
            lm.cdq_delete(t.cdqid).inspect_err(|e| {
                dev_err!(
                    self.vf,
                    "VF {}: Delete Controller Data Queue: {:?}; its memory is kept\n",
                    self.vfn,
                    e
                )
            })
        });
        let quiet = match stopped {
            Some(r) => r.is_ok(),
            // The PF left `Live` since the start: if that was a reset, it deleted the queue.
            // A PF that is merely not live (being removed, given up) may still write it.
            None => self.pf.base().generation() != t.generation,
        };
        dev_info!(
            self.vf,
            "VF {}: dirty tracking stopped ({} overflow(s))\n",
            self.vfn,
            t.overflows
        );
        self.pf.cdq_memory_return(self.vfn, t.mem, quiet);
    }

    /// `log_read_and_clear`: sets in `dirty` the granules of `[iova, iova + len)` written
    /// since the last report, and forgets them.
    pub(crate) fn report(&self, iova: u64, len: u64, dirty: &mut IovaBitmap<'_>) -> Result {
        let mut inner = self.inner.lock();
        let t = inner.as_mut().ok_or(EINVAL)?;
        let index = t
            .ranges
            .iter()
            .position(|r| r.holds(iova, len))
            .ok_or(EINVAL)?;
        let live = self.drain_queue(t, true);
        if t.everything {
            for r in t.ranges.iter_mut() {
                if let Some(mut bits) = DirtyBits::new(r.start, r.len, t.shift, &mut r.words) {
                    bits.mark_all();
                }
            }
            // A PF that was reset tracks nothing any more: everything, every time.
            t.everything = !live;
        }
        let r = &mut t.ranges[index];
        let mut bits = DirtyBits::new(r.start, r.len, t.shift, &mut r.words).ok_or(EINVAL)?;
        bits.take(iova, len, |start, n| dirty.set(start, n));
        Ok(())
    }

    /// Reads the new entries into the bitmaps and hands their slots back to the controller
    /// (a command only if there were any). With `flush` (a report), first makes the
    /// controller write every change it made so far, and learns whether it lost any.
    /// Returns whether the PF still tracks (false once it left `Live` since the start, or
    /// cannot be asked: everything is dirty then).
    fn drain_queue(&self, t: &mut Tracking, flush: bool) -> bool {
        let drained = self
            .pf
            .lm_while_live(Some(t.generation), |lm, _| self.drain_live(lm, t, flush));
        match drained {
            Some(Ok(())) => true,
            Some(Err(e)) => {
                self.unreachable(t, e);
                true
            }
            None => {
                self.unreachable(t, NvmeError::Kernel(ENODEV));
                false
            }
        }
    }

    /// [`Self::drain_queue`] on a live PF.
    fn drain_live(
        &self,
        lm: &LmCommands<'_>,
        t: &mut Tracking,
        flush: bool,
    ) -> Result<(), NvmeError> {
        if flush && lm.cdq_flush(t.cdqid)? == Flushed::Lost {
            self.overflowed(t);
        }
        let mut taken = 0u32;
        let slots = (t.mem.size() / ENTRY_SIZE) as u32;
        while taken < slots {
            let at = t.ring.head_offset();
            let mut raw = [0u8; ENTRY_SIZE];
            // DW3 (with the phase tag) is written last: read it first, the rest after it.
            t.mem.read_into(at + 12, &mut raw[12..])?;
            if !t.ring.is_new(&Entry::parse(&raw)) {
                break;
            }
            dma_rmb();
            t.mem.read_into(at, &mut raw[..12])?;
            let entry = Entry::parse(&raw);
            match entry.kind {
                EntryKind::Changed { start, granules } if entry.cntlid == self.scid => {
                    t.mark(start, granules)
                }
                _ => self.overflowed(t),
            }
            t.ring.advance();
            taken += 1;
        }
        if taken > 0 {
            lm.cdq_set_head(t.cdqid, t.ring.head())?;
        }
        Ok(())
    }

    /// The PF could not be asked (`e`), or was reset: everything tracked is dirty; logged
    /// once per tracking.
    fn unreachable(&self, t: &mut Tracking, e: NvmeError) {
        if !t.warned {
            dev_warn!(
                self.vf,
                "VF {}: the PF's tracking queue cannot be read ({:?}): reporting all tracked \
                 memory dirty\n",
                self.vfn,
                e
            );
            t.warned = true;
        }
        t.everything = true;
    }

    /// Entries were lost: everything tracked is dirty; logged the first time.
    fn overflowed(&self, t: &mut Tracking) {
        if t.overflows == 0 {
            dev_warn!(
                self.vf,
                "VF {}: dirty tracking queue overflowed: reporting all tracked memory dirty\n",
                self.vfn
            );
        }
        t.overflows += 1;
        t.everything = true;
    }

    /// Logs a failed tracking command and turns it into the error the VFIO user sees.
    fn command_error(&self, what: &str, e: NvmeError) -> Error {
        dev_err!(self.vf, "VF {}: {} failed: {:?}\n", self.vfn, what, e);
        match e {
            NvmeError::Status(s)
                if s.code_type() == sct::COMMAND_SPECIFIC
                    && s.code() == status::NOT_ENOUGH_RESOURCES =>
            {
                ENOSPC
            }
            NvmeError::Kernel(k) => k,
            _ => EIO,
        }
    }
}
