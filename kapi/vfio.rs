// SPDX-License-Identifier: GPL-2.0

//! PCI drivers whose functions are VFIO devices, built on vfio-pci-core.
//!
//! The C glue (`kapi/glue/vfio.c`) creates a `vfio_pci_core_device` with vfio-pci's own
//! operations, so config space, BARs, interrupts, reset, AER, the group and iommufd paths
//! behave exactly as with vfio-pci. The driver adds its data next to it.
//!
//! Such a driver is registered with `driver_managed_dma`: the driver core does not claim
//! the function's IOMMU group for kernel DMA at probe, so VFIO can give it to userspace.
//! The driver therefore must not do DMA itself.
//!
//! A driver may make its devices migratable (VFIO migration v2): [`Driver::migration_flags`]
//! decides at probe, and the VFIO core then calls [`Driver::set_state`],
//! [`Driver::get_state`] and [`Driver::data_size`]; the data moves through
//! [`MigrationFile`]s, whose reads, writes and `VFIO_MIG_GET_PRECOPY_INFO` go to a
//! [`MigrationFileOps`].
//!
//! A driver may also offer DMA logging (device dirty tracking,
//! `VFIO_DEVICE_FEATURE_DMA_LOGGING_*`): a non-zero [`Driver::log_max_ranges`] at probe
//! registers the VFIO core's `log_ops`, which call [`Driver::log_start`],
//! [`Driver::log_stop`] and [`Driver::log_read_and_clear`]; the last records written pages
//! in an [`IovaBitmap`]. Only a kernel with `CONFIG_IOMMUFD_DRIVER` has those bitmaps
//! ([`dirty_tracking_built`]); on any other the device offers no DMA logging.
//!
//! C headers: [`include/linux/vfio_pci_core.h`](srctree/include/linux/vfio_pci_core.h),
//! [`include/linux/vfio.h`](srctree/include/linux/vfio.h),
//! [`include/linux/iova_bitmap.h`](srctree/include/linux/iova_bitmap.h),
//! [`include/uapi/linux/vfio.h`](srctree/include/uapi/linux/vfio.h)

use core::{marker::PhantomData, pin::Pin, ptr::NonNull};

use kernel::{
    bindings,
    error::{from_err_ptr, from_result},
    ffi,
    prelude::*,
    sync::Arc,
    types::ForeignOwnable,
    uaccess::{UserSlice, UserSliceReader, UserSliceWriter},
};

use super::{
    bindings::sys,
    device::{Core, Normal},
    pci::{self, physfn_data, registration::DriverCallbacks},
};

/// A PCI driver that turns the functions it binds into VFIO devices.
pub(crate) trait Driver: Send + Sync + 'static {
    /// The driver of physical functions whose data a VF's probe gets.
    type PhysFn: pci::Driver;

    /// The devices this driver binds to.
    const ID_TABLE: pci::IdTable<()>;

    /// Decides whether to bind `dev` (`ENODEV`: leave it to other drivers) and returns the
    /// data kept beside its VFIO device. `physfn` is the data of `dev`'s physical function
    /// when `dev` is a VF whose PF is bound to [`Driver::PhysFn`]. The device must not be
    /// touched by DMA: it is about to belong to userspace.
    fn probe(
        dev: &pci::Device<Core>,
        physfn: Option<Pin<&Self::PhysFn>>,
    ) -> impl PinInit<Self, Error>;

    /// Called after the VFIO device is gone (no user holds it any more), before the data is
    /// dropped.
    fn unbind(dev: &pci::Device<Core>, this: Pin<&Self>) {
        let _ = (dev, this);
    }

    /// The `VFIO_MIGRATION_*` flags the device advertises, asked once after probe; 0 (the
    /// default): the device does not migrate and the migration callbacks are never called.
    /// Non-zero flags must include `VFIO_MIGRATION_STOP_COPY`.
    fn migration_flags(this: Pin<&Self>) -> u64 {
        let _ = this;
        0
    }

    /// `migration_set_state`: moves the device to migration state `state` (a
    /// `vfio_device_mig_state`), stepping through `dev.next_state`; returns the data fd the
    /// last step opened, if any.
    fn set_state(this: Pin<&Self>, dev: &VfioDevice, state: u32) -> Result<Option<MigrationFile>> {
        let _ = (this, dev, state);
        Err(ENOTTY)
    }

    /// `migration_get_state`: the current migration state.
    fn get_state(this: Pin<&Self>) -> Result<u32> {
        let _ = this;
        Err(ENOTTY)
    }

    /// `migration_get_data_size`: an estimate of the bytes STOP_COPY will yield.
    fn data_size(this: Pin<&Self>) -> Result<usize> {
        let _ = this;
        Err(ENOTTY)
    }

    /// A user opened the VFIO device (the function was just reset).
    fn open(this: Pin<&Self>) {
        let _ = this;
    }

    /// The last user closed the VFIO device (the function is reset next).
    fn close(this: Pin<&Self>) {
        let _ = this;
    }

    /// The function was reset (`VFIO_DEVICE_RESET`, a reset on open or close, AER
    /// recovery). Runs under locks the migration callbacks' callers take: it must not wait
    /// for a lock those callbacks hold (see [`crate::kapi::sync::DeferringMutex`]).
    fn reset_done(this: Pin<&Self>) {
        let _ = this;
    }

    /// How many IOVA ranges [`Driver::log_start`] takes at most, asked once after probe (as
    /// [`Driver::migration_flags`]); 0 (the default): the device offers no DMA logging, the
    /// VFIO core answers its features with `ENOTTY` and the logging callbacks are never
    /// called. Without `CONFIG_IOMMUFD_DRIVER` ([`dirty_tracking_built`]) the value is
    /// ignored and the device offers none either.
    fn log_max_ranges(this: Pin<&Self>) -> u32 {
        let _ = this;
        0
    }

    /// `log_start` (`VFIO_DEVICE_FEATURE_DMA_LOGGING_START`): starts logging DMA writes to
    /// `ranges` at the granularity `page_size`, which the driver may raise to one it
    /// supports (the user gets the value back).
    ///
    /// The VFIO core has already checked: 1 to 256 ranges (`EINVAL`, `E2BIG`), each start
    /// and length a multiple of `page_size` (`EINVAL`), no overflow of `ULONG_MAX`
    /// (`EOVERFLOW`), no overlap (`EINVAL`). `ranges` is sorted by start, at least one and
    /// at most [`Driver::log_max_ranges`] long: the glue merges more ranges than that
    /// across their smallest gaps first (`vfio_combine_iova_ranges`), so they may cover
    /// IOVAs that were not asked for.
    ///
    /// The driver must check itself: `page_size` (the core does not at start; 0 makes the
    /// alignment check pass for IOVA 0 only), a power of two of at least 4 KiB; ranges of
    /// length 0, which the core lets through as `last == start - 1` (wrapping at 0); a
    /// second start while logging (`EINVAL`, as mlx5); its own limits. If the user cannot be told
    /// the result, the core calls [`Driver::log_stop`] right after a successful start.
    ///
    /// The core serialises none of the logging callbacks, with each other or with the
    /// migration callbacks, and does not stop logging when the device is closed or reset:
    /// the driver does both.
    fn log_start(this: Pin<&Self>, ranges: &[IovaRange], page_size: &mut u64) -> Result {
        let _ = (this, ranges, page_size);
        Err(ENOTTY)
    }

    /// `log_stop` (`VFIO_DEVICE_FEATURE_DMA_LOGGING_STOP`): stops logging and frees what
    /// the start took. The core does not know whether logging was started.
    fn log_stop(this: Pin<&Self>) -> Result {
        let _ = this;
        Err(ENOTTY)
    }

    /// `log_read_and_clear` (`VFIO_DEVICE_FEATURE_DMA_LOGGING_REPORT`): marks in `dirty`
    /// the pages of `[iova, iova + length)` written since the last report (or the start)
    /// and forgets them.
    ///
    /// The core has checked the report's page size (a power of two of at least 4 KiB, not
    /// necessarily the start's) and that `iova + length` does not overflow; in 6.12 it calls
    /// this once for the report's whole window (`iova_bitmap_for_each`), which maps the
    /// user's bitmap as `set` reaches it. The driver must check that logging is started and
    /// that the range lies within the started ranges.
    fn log_read_and_clear(
        this: Pin<&Self>,
        iova: u64,
        length: u64,
        dirty: &mut IovaBitmap<'_>,
    ) -> Result {
        let _ = (this, iova, length, dirty);
        Err(ENOTTY)
    }
}

/// An IOVA range given to [`Driver::log_start`]: `[start, last]`, `last` inclusive (as the
/// kernel's `interval_tree_node`).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct IovaRange {
    /// The first IOVA of the range.
    pub(crate) start: u64,
    /// The last IOVA of the range (inclusive).
    pub(crate) last: u64,
}

// The glue's array of `struct rnvme_iova_range` is read as `[IovaRange]`.
const _: () = {
    use core::mem::{align_of, offset_of, size_of};
    assert!(size_of::<IovaRange>() == size_of::<sys::rnvme_iova_range>());
    assert!(align_of::<IovaRange>() == align_of::<sys::rnvme_iova_range>());
    assert!(offset_of!(IovaRange, start) == offset_of!(sys::rnvme_iova_range, start));
    assert!(offset_of!(IovaRange, last) == offset_of!(sys::rnvme_iova_range, last));
};

/// The dirty bitmap of a DMA logging report (`struct iova_bitmap`), lent to
/// [`Driver::log_read_and_clear`].
///
/// # Invariants
///
/// `bitmap` points to the `iova_bitmap` of the report under way, valid and used by no one
/// else for `'a`.
pub(crate) struct IovaBitmap<'a> {
    bitmap: NonNull<sys::iova_bitmap>,
    _lent: PhantomData<&'a mut ()>,
}

impl IovaBitmap<'_> {
    /// Marks the pages of `[iova, iova + len)` dirty (`iova_bitmap_set`); `len` 0 marks
    /// nothing. A range outside the report's makes the whole report fail with `EPROTO`, so
    /// that the user does not miss it.
    pub(crate) fn set(&mut self, iova: u64, len: u64) {
        if len == 0 {
            return;
        }
        // Identities on 64-bit kernels; elsewhere a value beyond `unsigned long` lies
        // outside every report, and saturating keeps it there (`EPROTO`).
        let iova = ffi::c_ulong::try_from(iova).unwrap_or(ffi::c_ulong::MAX);
        let len = usize::try_from(len).unwrap_or(usize::MAX);
        // SAFETY: `bitmap` is the report's valid bitmap, lent to us alone (type invariant);
        // the helper checks the range against it.
        unsafe { sys::rnvme_iova_bitmap_set(self.bitmap.as_ptr(), iova, len) };
    }
}

/// Whether this kernel has the dirty bitmaps of DMA logging (`CONFIG_IOMMUFD_DRIVER`):
/// without them no device offers DMA logging, whatever [`Driver::log_max_ranges`] says.
pub(crate) fn dirty_tracking_built() -> bool {
    // SAFETY: the helper only returns a constant.
    unsafe { sys::rnvme_vfio_dirty_tracking_built() }
}

/// The VFIO device a migration callback runs for.
///
/// # Invariants
///
/// `0` points to a registered `vfio_device`, valid for the callback's duration.
pub(crate) struct VfioDevice(NonNull<sys::vfio_device>);

impl VfioDevice {
    /// The next arc from `cur` towards `new` that the device must carry out
    /// (`vfio_mig_get_next_state`); `EINVAL` if `new` cannot be reached.
    pub(crate) fn next_state(&self, cur: u32, new: u32) -> Result<u32> {
        let mut next = 0u32;
        // SAFETY: the device is registered (type invariant); `next` is valid for writes.
        kernel::error::to_result(unsafe {
            sys::rnvme_vfio_next_state(self.0.as_ptr(), cur, new, &mut next)
        })?;
        Ok(next)
    }
}

/// What `VFIO_MIG_GET_PRECOPY_INFO` reports.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct PrecopyInfo {
    /// Bytes of initial data not read yet.
    pub(crate) initial_bytes: u64,
    /// Bytes of state that changed since it was read.
    pub(crate) dirty_bytes: u64,
}

/// The operations of a migration data fd. A method a direction does not support keeps
/// its default (`EINVAL`).
pub(crate) trait MigrationFileOps: Send + Sync {
    /// `read`: copies stream bytes to `out`; returns how many (0: the end).
    fn read(&self, out: &mut UserSliceWriter) -> Result<usize> {
        let _ = out;
        Err(EINVAL)
    }

    /// `write`: takes stream bytes from `input`; returns how many.
    fn write(&self, input: &mut UserSliceReader) -> Result<usize> {
        let _ = input;
        Err(EINVAL)
    }

    /// `VFIO_MIG_GET_PRECOPY_INFO`; `EINVAL` outside the PRE_COPY states.
    fn precopy_info(&self) -> Result<PrecopyInfo> {
        Err(EINVAL)
    }
}

/// `VFIO_MIG_GET_PRECOPY_INFO`: `_IO(';', 100 + 21)`.
const VFIO_MIG_GET_PRECOPY_INFO: u32 = ((b';' as u32) << 8) | 121;

/// A migration data fd (an anonymous inode file), before it is handed to the VFIO core.
///
/// # Invariants
///
/// `0` holds one reference to a file created by `rnvme_mig_file_create`, whose
/// `private_data` is a `KBox<Arc<dyn MigrationFileOps>>` that the file's release frees.
pub(crate) struct MigrationFile(NonNull<bindings::file>);

// SAFETY: a file reference may be moved to and dropped on any thread.
unsafe impl Send for MigrationFile {}

impl MigrationFile {
    /// A data fd whose reads and writes go to `ops`; only writable with `writable` (the
    /// resuming side), only readable otherwise.
    pub(crate) fn new(ops: Arc<dyn MigrationFileOps>, writable: bool) -> Result<Self> {
        let boxed = KBox::new(ops, GFP_KERNEL)?;
        let raw = KBox::into_raw(boxed);
        // SAFETY: `raw` is a valid box pointer; the file owns it from here on and frees it
        // in `rnvme_mig_file_release`.
        let filp = from_err_ptr(unsafe { sys::rnvme_mig_file_create(raw.cast(), writable) });
        match filp.map(|f| NonNull::new(f.cast::<bindings::file>())) {
            // INVARIANT: the file was just created and its reference is ours.
            Ok(Some(f)) => Ok(Self(f)),
            _ => {
                // SAFETY: no file was created, so the box is still ours.
                drop(unsafe { KBox::from_raw(raw) });
                Err(ENOMEM)
            }
        }
    }

    /// Gives up the reference for the VFIO core, which installs it as an fd.
    fn into_raw(self) -> *mut bindings::file {
        let f = self.0.as_ptr();
        core::mem::forget(self);
        f
    }
}

impl Drop for MigrationFile {
    fn drop(&mut self) {
        // SAFETY: the reference is ours (type invariant).
        unsafe { bindings::fput(self.0.as_ptr()) };
    }
}

/// The operations of an open migration data fd.
///
/// # Safety
///
/// `filp` is a file created by `rnvme_mig_file_create` and not yet released.
unsafe fn file_ops<'a>(filp: *mut bindings::file) -> &'a Arc<dyn MigrationFileOps> {
    // SAFETY: `private_data` holds the boxed `Arc` until release (caller).
    unsafe { &*(*filp).private_data.cast::<Arc<dyn MigrationFileOps>>() }
}

/// `read` of the migration data fd.
///
/// # Safety
///
/// Called by the VFS on an open migration data fd.
#[no_mangle]
unsafe extern "C" fn rnvme_mig_file_read(
    filp: *mut bindings::file,
    buf: *mut ffi::c_char,
    len: usize,
    pos: *mut bindings::loff_t,
) -> isize {
    // A stream: the VFS passes no position.
    if !pos.is_null() {
        return ESPIPE.to_errno() as isize;
    }
    // SAFETY: the VFS calls with an open migration data fd.
    let ops = unsafe { file_ops(filp) };
    let mut out = UserSlice::new(buf as usize, len).writer();
    match ops.read(&mut out) {
        Ok(n) => n as isize,
        Err(e) => e.to_errno() as isize,
    }
}

/// `write` of the migration data fd.
///
/// # Safety
///
/// Called by the VFS on an open migration data fd.
#[no_mangle]
unsafe extern "C" fn rnvme_mig_file_write(
    filp: *mut bindings::file,
    buf: *const ffi::c_char,
    len: usize,
    pos: *mut bindings::loff_t,
) -> isize {
    if !pos.is_null() {
        return ESPIPE.to_errno() as isize;
    }
    // SAFETY: the VFS calls with an open migration data fd.
    let ops = unsafe { file_ops(filp) };
    let mut input = UserSlice::new(buf as usize, len).reader();
    match ops.write(&mut input) {
        Ok(n) => n as isize,
        Err(e) => e.to_errno() as isize,
    }
}

/// `unlocked_ioctl` of the migration data fd: `VFIO_MIG_GET_PRECOPY_INFO`.
///
/// # Safety
///
/// Called by the VFS on an open migration data fd.
#[no_mangle]
unsafe extern "C" fn rnvme_mig_file_ioctl(
    filp: *mut bindings::file,
    cmd: ffi::c_uint,
    arg: ffi::c_ulong,
) -> ffi::c_long {
    if cmd != VFIO_MIG_GET_PRECOPY_INFO {
        return ENOTTY.to_errno() as ffi::c_long;
    }
    // SAFETY: the VFS calls with an open migration data fd.
    let ops = unsafe { file_ops(filp) };
    let result = (|| -> Result {
        // struct vfio_precopy_info { u32 argsz; u32 flags; u64 initial_bytes; u64 dirty_bytes; }
        const MINSZ: usize = 24;
        let (mut reader, mut writer) = UserSlice::new(arg, MINSZ).reader_writer();
        let argsz: u32 = reader.read()?;
        if (argsz as usize) < MINSZ {
            return Err(EINVAL);
        }
        let info = ops.precopy_info()?;
        writer.write(&argsz)?;
        writer.write(&0u32)?;
        writer.write(&info.initial_bytes)?;
        writer.write(&info.dirty_bytes)?;
        Ok(())
    })();
    match result {
        Ok(()) => 0,
        Err(e) => e.to_errno() as ffi::c_long,
    }
}

/// `release` of the migration data fd.
///
/// # Safety
///
/// Called once by the VFS when the last reference to a migration data fd goes.
#[no_mangle]
unsafe extern "C" fn rnvme_mig_file_release(
    _inode: *mut bindings::inode,
    filp: *mut bindings::file,
) -> ffi::c_int {
    // SAFETY: `MigrationFile::new` stored a boxed `Arc` here; nothing uses it after release.
    drop(unsafe { KBox::from_raw((*filp).private_data.cast::<Arc<dyn MigrationFileOps>>()) });
    0
}

/// The C callbacks of a VFIO [`Driver`]: what a [`Registration`] of `T` fills in, and what
/// the glue calls on a device's data.
pub(crate) struct Adapter<T: Driver>(PhantomData<T>);

impl<T: Driver> Adapter<T> {
    /// What the C glue calls on a device's data.
    const CALLBACKS: sys::rnvme_vfio_callbacks = sys::rnvme_vfio_callbacks {
        set_state: Some(Self::set_state_callback),
        get_state: Some(Self::get_state_callback),
        data_size: Some(Self::data_size_callback),
        open: Some(Self::open_callback),
        close: Some(Self::close_callback),
        reset_done: Some(Self::reset_done_callback),
        log_start: Some(Self::log_start_callback),
        log_stop: Some(Self::log_stop_callback),
        log_read_and_clear: Some(Self::log_read_and_clear_callback),
    };

    /// The driver data behind a callback's `data`.
    ///
    /// # Safety
    ///
    /// `data` is the pointer `probe_callback` registered, and the device is still
    /// registered (the VFIO core calls no callback after unregistration).
    unsafe fn data<'a>(data: *mut ffi::c_void) -> Pin<&'a T> {
        // SAFETY: `data` came from `into_foreign` of a `Pin<KBox<T>>` that lives until
        // `remove_callback` (caller).
        unsafe { <Pin<KBox<T>> as ForeignOwnable>::borrow(data) }
    }

    /// # Safety
    ///
    /// Called by the glue with registered data and device; `filp` is valid for writes.
    unsafe extern "C" fn set_state_callback(
        data: *mut ffi::c_void,
        vdev: *mut sys::vfio_device,
        state: u32,
        filp: *mut *mut bindings::file,
    ) -> ffi::c_int {
        from_result(|| {
            let vdev = NonNull::new(vdev).ok_or(EINVAL)?;
            // INVARIANT: the glue passes the registered device the call is for.
            let dev = VfioDevice(vdev);
            // SAFETY: called by the glue for a registered device (caller).
            let this = unsafe { Self::data(data) };
            if let Some(file) = T::set_state(this, &dev, state)? {
                // SAFETY: `filp` is valid for writes (caller); the core takes the reference.
                unsafe { *filp = file.into_raw() };
            }
            Ok(0)
        })
    }

    /// # Safety
    ///
    /// Called by the glue with registered data; `state` is valid for writes.
    unsafe extern "C" fn get_state_callback(data: *mut ffi::c_void, state: *mut u32) -> ffi::c_int {
        from_result(|| {
            // SAFETY: called by the glue for a registered device (caller).
            let s = T::get_state(unsafe { Self::data(data) })?;
            // SAFETY: `state` is valid for writes (caller).
            unsafe { *state = s };
            Ok(0)
        })
    }

    /// # Safety
    ///
    /// Called by the glue with registered data; `len` is valid for writes.
    unsafe extern "C" fn data_size_callback(
        data: *mut ffi::c_void,
        len: *mut ffi::c_ulong,
    ) -> ffi::c_int {
        from_result(|| {
            // SAFETY: called by the glue for a registered device (caller).
            let n = T::data_size(unsafe { Self::data(data) })?;
            // SAFETY: `len` is valid for writes (caller).
            unsafe { *len = n as ffi::c_ulong };
            Ok(0)
        })
    }

    /// # Safety
    ///
    /// Called by the glue with registered data.
    unsafe extern "C" fn open_callback(data: *mut ffi::c_void) {
        // SAFETY: called by the glue for a registered device (caller).
        T::open(unsafe { Self::data(data) });
    }

    /// # Safety
    ///
    /// Called by the glue with registered data.
    unsafe extern "C" fn close_callback(data: *mut ffi::c_void) {
        // SAFETY: called by the glue for a registered device (caller).
        T::close(unsafe { Self::data(data) });
    }

    /// # Safety
    ///
    /// Called by the glue with registered data (the PCI core holds the device lock, so
    /// the device cannot be unregistered meanwhile).
    unsafe extern "C" fn reset_done_callback(data: *mut ffi::c_void) {
        // SAFETY: called by the glue for a registered device (caller).
        T::reset_done(unsafe { Self::data(data) });
    }

    /// # Safety
    ///
    /// Called by the glue with registered data; `ranges` points to `n` valid ranges and
    /// `page_size` is valid for reads and writes, both for the call.
    unsafe extern "C" fn log_start_callback(
        data: *mut ffi::c_void,
        ranges: *const sys::rnvme_iova_range,
        n: u32,
        page_size: *mut u64,
    ) -> ffi::c_int {
        from_result(|| {
            let ranges: &[IovaRange] = if ranges.is_null() || n == 0 {
                &[]
            } else {
                // SAFETY: `ranges` points to `n` valid ranges for the call (caller), and
                // `IovaRange` has the layout of `struct rnvme_iova_range` (checked above).
                unsafe { core::slice::from_raw_parts(ranges.cast::<IovaRange>(), n as usize) }
            };
            // SAFETY: `page_size` is valid for reads and writes for the call (caller).
            let page_size = unsafe { &mut *page_size };
            // SAFETY: called by the glue for a registered device (caller).
            T::log_start(unsafe { Self::data(data) }, ranges, page_size)?;
            Ok(0)
        })
    }

    /// # Safety
    ///
    /// Called by the glue with registered data.
    unsafe extern "C" fn log_stop_callback(data: *mut ffi::c_void) -> ffi::c_int {
        from_result(|| {
            // SAFETY: called by the glue for a registered device (caller).
            T::log_stop(unsafe { Self::data(data) })?;
            Ok(0)
        })
    }

    /// # Safety
    ///
    /// Called by the glue with registered data; `dirty` is the report's bitmap, valid and
    /// used by no one else for the call.
    unsafe extern "C" fn log_read_and_clear_callback(
        data: *mut ffi::c_void,
        iova: ffi::c_ulong,
        length: ffi::c_ulong,
        dirty: *mut sys::iova_bitmap,
    ) -> ffi::c_int {
        from_result(|| {
            let bitmap = NonNull::new(dirty).ok_or(EINVAL)?;
            // INVARIANT: the glue passes the report's bitmap, ours alone for the call, which
            // the borrow below does not outlive.
            let mut dirty = IovaBitmap {
                bitmap,
                _lent: PhantomData,
            };
            // SAFETY: called by the glue for a registered device (caller).
            let this = unsafe { Self::data(data) };
            T::log_read_and_clear(this, iova as u64, length as u64, &mut dirty)?;
            Ok(0)
        })
    }

    /// # Safety
    ///
    /// Called by the PCI core with a valid device (lock held) and a valid matched ID.
    unsafe extern "C" fn probe_callback(
        pdev: *mut sys::pci_dev,
        id: *const bindings::pci_device_id,
    ) -> ffi::c_int {
        // SAFETY: the PCI core calls probe with a valid device, locked and being bound.
        let dev = unsafe { pci::Device::<Core>::from_raw(pdev) };
        // SAFETY: the PCI core passes the matched entry, valid for the call.
        let id = unsafe { &*id };
        from_result(|| {
            T::ID_TABLE.info(id).ok_or(ENODEV)?;
            // SAFETY: the device is valid and its lock is held.
            let physfn = unsafe { physfn_data::<T::PhysFn>(pdev) };
            let data = KBox::pin_init(T::probe(dev, physfn), GFP_KERNEL)?;
            let flags = T::migration_flags(data.as_ref());
            let log_max_ranges = T::log_max_ranges(data.as_ref());
            let ptr = data.into_foreign() as *mut ffi::c_void;
            // SAFETY: the device is valid and locked; the glue stores `ptr` beside the VFIO
            // device and returns it from `rnvme_vfio_unregister`; the callbacks are a
            // promoted constant, valid for the module's life.
            let ret = unsafe {
                sys::rnvme_vfio_register(pdev, ptr, &Self::CALLBACKS, flags, log_max_ranges)
            };
            if ret != 0 {
                // SAFETY: registration failed, so the glue kept nothing: `ptr` is ours again.
                drop(unsafe { <Pin<KBox<T>> as ForeignOwnable>::from_foreign(ptr as _) });
                return Err(Error::from_errno(ret));
            }
            Ok(0)
        })
    }

    /// # Safety
    ///
    /// Called by the PCI core with a valid device that `probe_callback` bound.
    unsafe extern "C" fn remove_callback(pdev: *mut sys::pci_dev) {
        // SAFETY: the PCI core calls remove with a valid, locked, still bound device.
        let dev = unsafe { pci::Device::<Core>::from_raw(pdev) };
        // SAFETY: probe registered the VFIO device; this waits until no user holds it.
        let ptr = unsafe { sys::rnvme_vfio_unregister(pdev) };
        // SAFETY: `ptr` is what `probe_callback` got from `into_foreign`, returned once.
        let data = unsafe { <Pin<KBox<T>> as ForeignOwnable>::from_foreign(ptr as _) };
        T::unbind(dev, data.as_ref());
    }

    /// Whether `pdev` is bound to `T` and its VFIO device is open.
    fn in_use(pdev: &pci::Device<Normal>) -> bool {
        // SAFETY: the device is valid; the helper locks it and checks the binding.
        unsafe { sys::rnvme_vfio_in_use(pdev.as_raw(), Some(Self::probe_callback)) }
    }
}

// SAFETY: `T::ID_TABLE` is a static, terminated table (`IdTable` invariant); the adapter's
// callbacks are valid for any device the PCI core binds.
unsafe impl<T: Driver> DriverCallbacks for Adapter<T> {
    fn id_table() -> *const bindings::pci_device_id {
        T::ID_TABLE.as_ptr()
    }

    unsafe fn fill(drv: *mut sys::pci_driver) {
        // SAFETY: `drv` points to the `pci_driver` being initialised, not yet registered
        // (caller); the glue only sets fields.
        unsafe {
            (*drv).probe = Some(Self::probe_callback);
            (*drv).remove = Some(Self::remove_callback);
            sys::rnvme_vfio_driver_init(drv);
        }
    }
}

/// Whether `pdev` is bound to the VFIO driver `T` and a user (a VMM) has its VFIO device
/// open. Must not be called with the device's lock held.
pub(crate) fn in_use<T: Driver>(pdev: &pci::Device<Normal>) -> bool {
    Adapter::<T>::in_use(pdev)
}

/// The registration of a VFIO [`Driver`] `T` with the PCI core; unregisters on drop. The
/// same type as a PCI driver's ([`pci::Registration`]), with this adapter's callbacks.
pub(crate) type Registration<T> = pci::registration::Registration<Adapter<T>>;
