// SPDX-License-Identifier: GPL-2.0

//! Disks: a request queue of a tag set with its limits, visible as a block device.

use core::fmt::{self, Write};

use kernel::{
    bindings,
    error::from_err_ptr,
    ffi,
    prelude::*,
    sync::Arc,
    types::{ForeignOwnable, ScopeGuard},
};

use super::{DiskQueue, Operations, TagSet};
use crate::kapi::{bindings::sys, device::Device};

/// `BLK_FEAT_WRITE_CACHE`: the device has a volatile write cache.
const BLK_FEAT_WRITE_CACHE: u32 = 1 << 0;
/// `BLK_FEAT_FUA`: the device supports forced unit access writes.
const BLK_FEAT_FUA: u32 = 1 << 1;

/// Limits and geometry of a disk to build.
#[derive(Clone, Copy, Debug)]
pub(crate) struct GenDiskBuilder {
    logical_block_size: u32,
    physical_block_size: u32,
    capacity_sectors: u64,
    max_hw_sectors: u32,
    max_segments: u16,
    virt_boundary_mask: usize,
    write_cache: bool,
    max_discard_sectors: u32,
    max_write_zeroes_sectors: u32,
    nvme_namespace_attributes: bool,
}

impl Default for GenDiskBuilder {
    fn default() -> Self {
        Self::new()
    }
}

impl GenDiskBuilder {
    /// A disk of 512-byte blocks, zero capacity and the block layer's default limits.
    pub(crate) fn new() -> Self {
        Self {
            logical_block_size: 512,
            physical_block_size: 512,
            capacity_sectors: 0,
            max_hw_sectors: 0,
            max_segments: 0,
            virt_boundary_mask: 0,
            write_cache: false,
            max_discard_sectors: 0,
            max_write_zeroes_sectors: 0,
            nvme_namespace_attributes: false,
        }
    }

    /// Gives the disk the namespace attributes of the `nvme` class (`nsid`, see
    /// [`crate::kapi::nvme_class`]); its name must end in `n<nsid>`.
    pub(crate) fn nvme_namespace_attributes(mut self, on: bool) -> Self {
        self.nvme_namespace_attributes = on;
        self
    }

    /// Logical block size: a power of two from 512 to `PAGE_SIZE`.
    pub(crate) fn logical_block_size(mut self, size: u32) -> Result<Self> {
        if !(512..=4096).contains(&size) || !size.is_power_of_two() {
            return Err(EINVAL);
        }
        self.logical_block_size = size;
        self.physical_block_size = self.physical_block_size.max(size);
        Ok(self)
    }

    /// Capacity in 512-byte sectors.
    pub(crate) fn capacity_sectors(mut self, sectors: u64) -> Self {
        self.capacity_sectors = sectors;
        self
    }

    /// Largest request in 512-byte sectors.
    pub(crate) fn max_hw_sectors(mut self, sectors: u32) -> Self {
        self.max_hw_sectors = sectors;
        self
    }

    /// Most data segments of one request.
    pub(crate) fn max_segments(mut self, segments: u16) -> Self {
        self.max_segments = segments;
        self
    }

    /// Segments must not cross boundaries of `mask + 1` bytes except at their ends
    /// (e.g. NVMe PRPs need `PAGE_SIZE - 1`).
    pub(crate) fn virt_boundary_mask(mut self, mask: usize) -> Self {
        self.virt_boundary_mask = mask;
        self
    }

    /// The device has a volatile write cache (flush and FUA are sent).
    pub(crate) fn write_cache(mut self, present: bool) -> Self {
        self.write_cache = present;
        self
    }

    /// Largest discard in sectors (0: no discard).
    pub(crate) fn max_discard_sectors(mut self, sectors: u32) -> Self {
        self.max_discard_sectors = sectors;
        self
    }

    /// Largest write-zeroes in sectors (0: no write zeroes).
    pub(crate) fn max_write_zeroes_sectors(mut self, sectors: u32) -> Self {
        self.max_write_zeroes_sectors = sectors;
        self
    }

    /// Sets the limits this builder describes in `lim`.
    fn apply(&self, lim: &mut bindings::queue_limits) {
        lim.logical_block_size = self.logical_block_size;
        lim.physical_block_size = self.physical_block_size;
        lim.io_min = self.physical_block_size;
        lim.max_hw_sectors = self.max_hw_sectors;
        lim.max_segments = self.max_segments;
        lim.virt_boundary_mask = self.virt_boundary_mask as _;
        lim.max_hw_discard_sectors = self.max_discard_sectors;
        lim.max_write_zeroes_sectors = self.max_write_zeroes_sectors;
        lim.discard_granularity = if self.max_discard_sectors > 0 {
            self.logical_block_size
        } else {
            0
        };
        if self.write_cache {
            lim.features |= BLK_FEAT_WRITE_CACHE | BLK_FEAT_FUA;
        } else {
            lim.features &= !(BLK_FEAT_WRITE_CACHE | BLK_FEAT_FUA);
        }
    }

    /// Creates the disk `name` on `tagset`, with `queue_data` for its requests and `parent`
    /// as its parent device, and adds it to the system.
    pub(crate) fn build<T: Operations>(
        self,
        name: fmt::Arguments<'_>,
        tagset: Arc<TagSet<T>>,
        queue_data: T::QueueData,
        parent: &Device,
    ) -> Result<GenDisk<T>> {
        // SAFETY: all-zero `queue_limits` means "block layer defaults" for every field.
        let mut lim: bindings::queue_limits = unsafe { core::mem::zeroed() };
        self.apply(&mut lim);

        let queuedata = queue_data.into_foreign();
        // SAFETY: the tag set is allocated; `lim` is valid for the call.
        let gendisk = unsafe {
            sys::rnvme_blk_mq_alloc_disk(tagset.as_raw(), &mut lim, queuedata.cast_mut())
        };
        let gendisk = match from_err_ptr(gendisk) {
            Ok(g) => g,
            Err(e) => {
                // SAFETY: no queue was created, so nothing refers to the data.
                drop(unsafe { T::QueueData::from_foreign(queuedata) });
                return Err(e);
            }
        };
        let cleanup = ScopeGuard::new_with_data(gendisk, |gendisk| {
            // SAFETY: allocated above and not added to the system on this path; after
            // `put_disk` no request can use the queue data.
            unsafe {
                bindings::put_disk(gendisk);
                drop(T::QueueData::from_foreign(queuedata));
            }
        });

        // SAFETY: `gendisk` is valid and not yet visible to anyone else.
        let disk = unsafe { &mut *gendisk };
        // `rnvme_bdev_fops` (C glue) has `.owner = THIS_MODULE`: an open disk pins the module.
        disk.fops = &raw const sys::rnvme_bdev_fops;
        // The C `ioctl` of those operations calls the function `private_data` points to.
        // Its type is the C `rnvme_disk_ioctl_t`.
        let ioctl: DiskIoctlFn = ioctl_callback::<T>;
        disk.private_data = ioctl as *mut ffi::c_void;
        let mut writer = NameWriter {
            buf: &mut disk.disk_name,
            len: 0,
        };
        writer.write_fmt(name).map_err(|_| EINVAL)?;

        // SAFETY: `gendisk` is valid; `set_capacity` takes its own lock.
        unsafe { bindings::set_capacity(gendisk, self.capacity_sectors) };

        let groups = if self.nvme_namespace_attributes {
            crate::kapi::nvme_class::namespace_groups()
        } else {
            core::ptr::null()
        };
        // SAFETY: `gendisk` is valid and complete; `parent` is a valid device; `groups` is
        // null or a static NULL-terminated array.
        kernel::error::to_result(unsafe {
            bindings::device_add_disk(parent.as_raw(), gendisk, groups.cast_mut())
        })?;
        cleanup.dismiss();

        // INVARIANT: added to the system above with `queuedata` from `into_foreign`.
        Ok(GenDisk {
            _tagset: tagset,
            gendisk,
            queuedata,
        })
    }
}

/// `rnvme_disk_ioctl_t` (C glue): the function a disk's `private_data` points to.
type DiskIoctlFn =
    unsafe extern "C" fn(*mut bindings::gendisk, ffi::c_uint, ffi::c_ulong) -> ffi::c_int;

/// A disk's driver ioctls, called from `rnvme_bdev_ioctl` (C glue).
///
/// # Safety
///
/// `disk` must be a live disk created by [`GenDiskBuilder::build`] for `T` (the block layer
/// holds it open for the call).
unsafe extern "C" fn ioctl_callback<T: Operations>(
    disk: *mut bindings::gendisk,
    cmd: ffi::c_uint,
    arg: ffi::c_ulong,
) -> ffi::c_int {
    // SAFETY: the disk is open, so its queue, the queue's tag set and `queuedata` (from
    // `T::QueueData::into_foreign`, released only after `del_gendisk`) are alive for the
    // call; `tag_set_data` and `DiskQueue::from_raw` get what they require.
    let (data, queue_data, queue) = unsafe {
        let q = (*disk).queue;
        (
            super::tag_set::tag_set_data::<T>((*q).tag_set),
            T::QueueData::borrow((*q).queuedata),
            DiskQueue::<T>::from_raw(q),
        )
    };
    match T::ioctl(data, queue_data, queue, cmd, arg) {
        Ok(v) => ffi::c_int::try_from(v).unwrap_or(ffi::c_int::MAX),
        Err(e) => e.to_errno(),
    }
}

/// Writes a NUL-terminated name into a fixed C array, failing if it does not fit.
struct NameWriter<'a> {
    buf: &'a mut [ffi::c_char; 32],
    len: usize,
}

impl Write for NameWriter<'_> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        for &b in s.as_bytes() {
            // Keep one byte for the terminating NUL (the array is zeroed).
            if self.len + 1 >= self.buf.len() || b == 0 {
                return Err(fmt::Error);
            }
            self.buf[self.len] = b as ffi::c_char;
            self.len += 1;
        }
        Ok(())
    }
}

/// A disk added to the system; removed (and its queue frozen and drained) on drop.
///
/// # Invariants
///
/// `gendisk` was allocated with `__blk_mq_alloc_disk` and added with `device_add_disk`;
/// its queue's `queuedata` is `queuedata`, from `T::QueueData::into_foreign`.
pub(crate) struct GenDisk<T: Operations> {
    _tagset: Arc<TagSet<T>>,
    gendisk: *mut bindings::gendisk,
    queuedata: *const ffi::c_void,
}

// SAFETY: the disk is an owned pointer; the block layer synchronises access to it.
unsafe impl<T: Operations> Send for GenDisk<T> {}
// SAFETY: no `&self` method touches the disk.
unsafe impl<T: Operations> Sync for GenDisk<T> {}

impl<T: Operations> GenDisk<T> {
    /// How many times the disk is open: mounted, opened by a process or held by another
    /// driver.
    pub(crate) fn openers(&self) -> u32 {
        // SAFETY: the disk was added (type invariant) and is valid until `Drop`.
        unsafe { sys::rnvme_disk_openers(self.gendisk.cast()) }
    }

    /// The disk's request queue.
    pub(crate) fn queue(&self) -> &DiskQueue<T> {
        // SAFETY: the disk was added (type invariant) and its queue lives until `Drop`.
        unsafe { DiskQueue::from_raw((*self.gendisk).queue) }
    }

    /// Freezes the disk's queue: waits until no request of it is in flight, and holds new
    /// ones back until the returned guard is dropped. Freezes nest.
    pub(crate) fn freeze(&self) -> FrozenQueue<'_> {
        // SAFETY: the disk was added (type invariant), so its queue is valid until `Drop`.
        let q = unsafe { (*self.gendisk).queue };
        // SAFETY: `q` is valid; the guard unfreezes it exactly once.
        unsafe { bindings::blk_mq_freeze_queue(q) };
        // INVARIANT: frozen above; the borrow keeps the disk, hence the queue, alive.
        FrozenQueue {
            q,
            _disk: core::marker::PhantomData,
        }
    }

    /// Gives the disk the geometry and limits of `b` (logical and physical block size,
    /// transfer, discard and write-zeroes limits, capacity) with its queue frozen, so that
    /// no request runs across the change; `while_frozen` runs after the limits are set and
    /// before requests flow again (e.g. to switch the driver's own block size). Userspace
    /// is told of the new capacity (a change uevent). Fails, changing nothing, if the block
    /// layer refuses the limits.
    pub(crate) fn update(&self, b: &GenDiskBuilder, while_frozen: impl FnOnce()) -> Result {
        let frozen = self.freeze();
        // SAFETY: the queue is valid (frozen above); `start_update` takes its limits lock,
        // which `queue_limits_commit_update` releases whatever it returns.
        let mut lim = unsafe { sys::rnvme_queue_limits_start_update(frozen.q) };
        b.apply(&mut lim);
        // SAFETY: as above, with `lim` from `start_update`.
        kernel::error::to_result(unsafe {
            bindings::queue_limits_commit_update(frozen.q, &mut lim)
        })?;
        while_frozen();
        // SAFETY: the disk was added (type invariant); the call takes its own locks.
        unsafe { bindings::set_capacity_and_notify(self.gendisk, b.capacity_sectors) };
        drop(frozen);
        Ok(())
    }

    /// Marks the disk dead (`blk_mark_disk_dead`): its controller is gone for good. New
    /// I/O fails at once with `EIO`, I/O waiting to enter the queue is released with the
    /// same error, and filesystems on it are told. The disk stays until it is removed.
    pub(crate) fn mark_dead(&self) {
        // SAFETY: the disk was added (type invariant) and is valid until `Drop`; the call
        // takes its own locks and may be called once or more before `del_gendisk`.
        unsafe { bindings::blk_mark_disk_dead(self.gendisk) };
    }

    /// Sets the disk's capacity in 512-byte sectors (0: no I/O is possible) and tells
    /// userspace (a change uevent).
    pub(crate) fn set_capacity(&self, sectors: u64) {
        // SAFETY: the disk was added (type invariant); the call takes its own locks.
        unsafe { bindings::set_capacity_and_notify(self.gendisk, sectors) };
    }
}

/// A frozen request queue of a disk (see [`GenDisk::freeze`]); unfrozen on drop.
///
/// # Invariants
///
/// `q` is the queue of a disk borrowed for `'a`, frozen once by this guard.
pub(crate) struct FrozenQueue<'a> {
    q: *mut bindings::request_queue,
    _disk: core::marker::PhantomData<&'a ()>,
}

impl Drop for FrozenQueue<'_> {
    fn drop(&mut self) {
        // SAFETY: frozen by this guard and still valid (type invariant).
        unsafe { bindings::blk_mq_unfreeze_queue(self.q) };
    }
}

impl<T: Operations> Drop for GenDisk<T> {
    fn drop(&mut self) {
        // SAFETY: by the type invariant the disk was added; `del_gendisk` waits for its I/O
        // to finish and no new request can enter, so after `put_disk` nothing uses the
        // queue data any more.
        unsafe {
            bindings::del_gendisk(self.gendisk);
            bindings::put_disk(self.gendisk);
            drop(T::QueueData::from_foreign(self.queuedata));
        }
    }
}
