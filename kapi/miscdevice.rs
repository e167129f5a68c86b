// SPDX-License-Identifier: GPL-2.0

//! Miscellaneous character devices, in the shape of upstream `kernel::miscdevice` (6.13).
//!
//! C header: [`include/linux/miscdevice.h`](srctree/include/linux/miscdevice.h)
//!
//! The `file_operations` are a static of the C glue (`rnvme_misc_fops`, with `.owner =
//! THIS_MODULE` so that an open file pins the module) whose callbacks are the `extern "C"`
//! functions below. Each open file holds a reference to the device's [`MiscFile`], so a file
//! that stays open after the device is unregistered stays valid; the implementation decides
//! what its operations do then (e.g. fail with `ENODEV`).

use core::{marker::PhantomPinned, ptr};

use kernel::{
    bindings, error::from_result, error::to_result, ffi, init::pin_init_from_closure, prelude::*,
    str::CString, sync::Arc, types::Opaque,
};

use super::bindings::sys;

/// The operations of an open file of a misc device.
pub(crate) trait MiscFile: Send + Sync {
    /// Handles `ioctl(cmd, arg)`; a non-negative value is returned to the caller.
    fn ioctl(&self, cmd: u32, arg: usize) -> Result<isize>;
}

/// A registered misc device `/dev/<name>`; deregistered on drop.
///
/// # Invariants
///
/// `misc` is registered with `misc_register`, names `name` and has `rnvme_misc_fops`, while
/// the object exists.
#[pin_data(PinnedDrop)]
pub(crate) struct MiscRegistration {
    #[pin]
    misc: Opaque<sys::miscdevice>,
    name: CString,
    file: Arc<dyn MiscFile>,
    #[pin]
    _pin: PhantomPinned,
}

// SAFETY: the registration is only touched at creation, drop and open (under the misc core's
// lock); `file` is `Send + Sync`.
unsafe impl Send for MiscRegistration {}
// SAFETY: see `Send`.
unsafe impl Sync for MiscRegistration {}

impl MiscRegistration {
    /// Registers `/dev/<name>` whose open files use `file`.
    pub(crate) fn register(name: CString, file: Arc<dyn MiscFile>) -> impl PinInit<Self, Error> {
        let name_ptr = name.as_char_ptr();
        let init = move |slot: *mut Opaque<sys::miscdevice>| {
            let misc = Opaque::raw_get(slot);
            // SAFETY: `misc` is valid for writes; all-zero is a valid `miscdevice`; the name
            // lives in `Self` (moved there before this closure runs, and `CString`'s buffer
            // does not move with it).
            unsafe {
                ptr::write_bytes(misc, 0, 1);
                (*misc).minor = sys::MISC_DYNAMIC_MINOR as ffi::c_int;
                (*misc).name = name_ptr;
                (*misc).fops = &raw const sys::rnvme_misc_fops;
            }
            // SAFETY: `misc` is initialised and pinned inside `Self`.
            to_result(unsafe { sys::misc_register(misc) })
        };
        try_pin_init!(Self {
            name,
            file,
            // SAFETY: the closure initialises and registers the device, or fails having
            // registered nothing.
            misc <- unsafe { pin_init_from_closure(init) },
            _pin: PhantomPinned,
        })
    }
}

#[pinned_drop]
impl PinnedDrop for MiscRegistration {
    fn drop(self: Pin<&mut Self>) {
        // SAFETY: registered (type invariant). After this no `open` can find it; open files
        // hold their own reference to `file`.
        unsafe { sys::misc_deregister(self.misc.get()) };
    }
}

/// The `Arc<dyn MiscFile>` of an open file, boxed so that it fits `private_data`.
type OpenFile = KBox<Arc<dyn MiscFile>>;

/// `open` of `rnvme_misc_fops`.
///
/// # Safety
///
/// Called by `misc_open` (holding the misc core's lock) with `file->private_data` pointing
/// to the `miscdevice` of a live [`MiscRegistration`].
#[no_mangle]
unsafe extern "C" fn rnvme_misc_open(
    _inode: *mut bindings::inode,
    file: *mut bindings::file,
) -> ffi::c_int {
    from_result(|| {
        // SAFETY: `misc_open` set `private_data` to our `miscdevice`, which is the `misc`
        // field of a `MiscRegistration` that cannot be deregistered during this call.
        let reg = unsafe {
            let misc = (*file).private_data.cast::<sys::miscdevice>();
            &*misc
                .cast::<u8>()
                .sub(core::mem::offset_of!(MiscRegistration, misc))
                .cast::<MiscRegistration>()
        };
        let open: OpenFile = KBox::new(reg.file.clone(), GFP_KERNEL)?;
        // SAFETY: `file` is valid; `release` takes the box back.
        unsafe { (*file).private_data = KBox::into_raw(open).cast() };
        Ok(0)
    })
}

/// `release` of `rnvme_misc_fops`.
///
/// # Safety
///
/// Called once per file opened by [`rnvme_misc_open`].
#[no_mangle]
unsafe extern "C" fn rnvme_misc_release(
    _inode: *mut bindings::inode,
    file: *mut bindings::file,
) -> ffi::c_int {
    // SAFETY: `open` stored a boxed `Arc` here; nothing uses it after release.
    drop(unsafe { KBox::from_raw((*file).private_data.cast::<Arc<dyn MiscFile>>()) });
    0
}

/// `unlocked_ioctl` (and, through `compat_ptr_ioctl`, `compat_ioctl`) of `rnvme_misc_fops`.
///
/// # Safety
///
/// Called on a file opened by [`rnvme_misc_open`] and not yet released.
#[no_mangle]
unsafe extern "C" fn rnvme_misc_ioctl(
    file: *mut bindings::file,
    cmd: ffi::c_uint,
    arg: ffi::c_ulong,
) -> ffi::c_long {
    // SAFETY: `private_data` holds the boxed `Arc` of an open file.
    let ops = unsafe { &*(*file).private_data.cast::<Arc<dyn MiscFile>>() };
    match ops.ioctl(cmd, arg) {
        Ok(v) => v as ffi::c_long,
        Err(e) => e.to_errno() as ffi::c_long,
    }
}

/// Whether the calling task has `CAP_SYS_ADMIN` (`capable`).
pub(crate) fn capable_sys_admin() -> bool {
    // SAFETY: `capable` checks the current task's credentials; no preconditions.
    unsafe { bindings::capable(bindings::CAP_SYS_ADMIN as ffi::c_int) }
}
