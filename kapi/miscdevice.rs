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
//!
//! A registration may carry attribute groups ([`MiscAttributes`]) for its device in
//! `/sys/class/misc/<name>/`; the C callbacks of those groups find their data through
//! `rnvme_misc_attr_data` (the `miscdevice` is embedded in the glue's
//! `struct rnvme_miscdevice`, next to the data pointer).

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

/// Attribute groups for a misc device, and the data their callbacks use.
///
/// # Safety
///
/// [`MiscAttributes::groups`] returns a NULL-terminated array of attribute groups that
/// lives as long as the module, whose callbacks take `rnvme_misc_attr_data(dev)` to be
/// [`MiscAttributes::data`] of this object and need nothing else to stay valid; `data`
/// stays valid as long as the object.
pub(crate) unsafe trait MiscAttributes: Send + Sync {
    /// The device's attribute groups.
    fn groups(&self) -> *const *const bindings::attribute_group;
    /// What the attribute callbacks get through `rnvme_misc_attr_data`.
    fn data(&self) -> *mut ffi::c_void;
}

/// A registered misc device `/dev/<name>`; deregistered on drop.
///
/// # Invariants
///
/// `misc` is registered with `misc_register`, names `name` and has `rnvme_misc_fops`, while
/// the object exists; if it has attribute groups, they are `attrs`' and its `attr_data`
/// is `attrs`' data, which `attrs` keeps alive.
#[pin_data(PinnedDrop)]
pub(crate) struct MiscRegistration {
    #[pin]
    misc: Opaque<sys::rnvme_miscdevice>,
    name: CString,
    file: Arc<dyn MiscFile>,
    attrs: Option<Arc<dyn MiscAttributes>>,
    #[pin]
    _pin: PhantomPinned,
}

// SAFETY: the registration is only touched at creation, drop and open (under the misc core's
// lock); `file` is `Send + Sync`.
unsafe impl Send for MiscRegistration {}
// SAFETY: see `Send`.
unsafe impl Sync for MiscRegistration {}

impl MiscRegistration {
    /// Registers `/dev/<name>` whose open files use `file`, with the attributes `attrs`
    /// (if any) in `/sys/class/misc/<name>/`.
    pub(crate) fn register(
        name: CString,
        file: Arc<dyn MiscFile>,
        attrs: Option<Arc<dyn MiscAttributes>>,
    ) -> impl PinInit<Self, Error> {
        let name_ptr = name.as_char_ptr();
        let (groups, attr_data) = attrs
            .as_ref()
            .map_or((ptr::null(), ptr::null_mut()), |a| (a.groups(), a.data()));
        let init = move |slot: *mut Opaque<sys::rnvme_miscdevice>| {
            let outer = Opaque::raw_get(slot);
            // SAFETY: `outer` is valid for writes; all-zero is a valid `rnvme_miscdevice`;
            // the name lives in `Self` (moved there before this closure runs, and
            // `CString`'s buffer does not move with it); `groups` and `attr_data` are
            // those of `attrs`, which `Self` holds (moved there before this closure runs).
            let misc = unsafe {
                ptr::write_bytes(outer, 0, 1);
                (*outer).attr_data = attr_data;
                let misc = &raw mut (*outer).misc;
                (*misc).minor = sys::MISC_DYNAMIC_MINOR as ffi::c_int;
                (*misc).name = name_ptr;
                (*misc).fops = &raw const sys::rnvme_misc_fops;
                (*misc).groups = groups.cast_mut();
                misc
            };
            // SAFETY: `misc` is initialised and pinned inside `Self`.
            to_result(unsafe { sys::misc_register(misc) })
        };
        try_pin_init!(Self {
            name,
            file,
            attrs,
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
        // hold their own reference to `file`; no attribute callback runs any more (device
        // removal waits for them), so `attrs` may go with `Self`.
        unsafe { sys::misc_deregister(&raw mut (*self.misc.get()).misc) };
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
        // SAFETY: `misc_open` set `private_data` to our `miscdevice`, which is the first
        // field of the `rnvme_miscdevice` in the `misc` field of a `MiscRegistration` that
        // cannot be deregistered during this call.
        let reg = unsafe {
            let misc = (*file).private_data.cast::<sys::miscdevice>();
            &*misc
                .cast::<u8>()
                .sub(core::mem::offset_of!(sys::rnvme_miscdevice, misc))
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
