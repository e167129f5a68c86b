// SPDX-License-Identifier: GPL-2.0

//! The `nvme` and `nvme-subsystem` device classes that libnvme (nvme-cli's `nvme list`)
//! reads, held by rnvme under the module parameter `nvme_class` (no upstream Rust; the C
//! side is `kapi/glue/nvme_class.c`).
//!
//! Those classes belong to the C `nvme-core` module. With `nvme_class=on` (or `auto` while
//! `nvme-core` is not loaded) the module registers them at load and refuses to let
//! `nvme-core` load while it holds them; every controller then gets a class device
//! `nvme<N>` (parent: its PCI function) and a subsystem `nvme-subsys<N>`.
//!
//! The controller attributes of the C nvme driver (`state`, `serial`, ..., and the actions
//! `reset_controller` and `rescan_controller`) are on the class device with the classes,
//! and on the controller's misc device without them ([`CtrlDevice`]).

use core::ptr::NonNull;

use kernel::{
    error::{from_err_ptr, to_result},
    ffi,
    prelude::*,
    str::CStr,
    sync::Arc,
    types::ForeignOwnable,
};

use super::{bindings::sys, device::Device, miscdevice::MiscAttributes};

/// The classes, registered while the module is loaded (if the parameter asks for them).
///
/// # Invariants
///
/// `rnvme_nvme_class_register` succeeded; `rnvme_nvme_class_unregister` runs on drop.
pub(crate) struct ClassRegistration(());

impl ClassRegistration {
    /// Registers the classes as `nvme_class` says: not at all (`off`), or fails with
    /// `EBUSY` (`on`) or leaves them to it (`auto`) if `nvme-core` is loaded.
    pub(crate) fn new() -> Result<Self> {
        // SAFETY: called once at module init, before any controller is probed.
        to_result(unsafe { sys::rnvme_nvme_class_register() })?;
        // INVARIANT: registered above.
        Ok(Self(()))
    }

    /// Whether the module holds the classes, so devices are named `nvme<N>` and
    /// `nvme<N>n<nsid>` and controllers get class devices.
    pub(crate) fn active() -> bool {
        // SAFETY: reads a flag set only at module init and exit; no preconditions.
        unsafe { sys::rnvme_nvme_class_is_active() }
    }
}

impl Drop for ClassRegistration {
    fn drop(&mut self) {
        // SAFETY: registered (type invariant); every controller device is gone (the drivers
        // are unregistered first).
        unsafe { sys::rnvme_nvme_class_unregister() };
    }
}

/// What a controller's attributes ask the driver: the `state` shown, and the actions of
/// `reset_controller` and `rescan_controller`.
///
/// The actions run synchronously in the writer's context (a sysfs store callback); the
/// controller's device cannot be removed until they return (device removal waits for
/// running callbacks), so they must not wait for anything its removal holds.
pub(crate) trait CtrlControls: Send + Sync + 'static {
    /// The state's name as the C driver spells it (`live`, `resetting`, `deleting`,
    /// `dead`, ...).
    fn state_name(&self) -> &'static CStr;

    /// A write of `input` to `reset_controller`: resets the controller, or fails.
    fn reset_controller(this: &Arc<Self>, input: &[u8]) -> Result;

    /// A write of `input` to `rescan_controller`: rescans the namespaces, or fails.
    fn rescan_controller(this: &Arc<Self>, input: &[u8]) -> Result;
}

/// What a controller's class and subsystem devices show, fixed at creation.
pub(crate) struct CtrlInfo<'a> {
    /// The controller's instance number (`nvme<instance>`).
    pub(crate) instance: u32,
    /// Model number.
    pub(crate) model: &'a [u8],
    /// Serial number.
    pub(crate) serial: &'a [u8],
    /// Firmware revision.
    pub(crate) firmware: &'a [u8],
    /// NVM subsystem NQN.
    pub(crate) subsysnqn: &'a [u8],
    /// Controller ID.
    pub(crate) cntlid: u16,
    /// Queues of the controller, admin queue included.
    pub(crate) queue_count: u16,
    /// Entries of an I/O submission queue, 0's based.
    pub(crate) sqsize: u16,
}

/// Copies `src` into the C string field `dst` (cut to fit, NUL-terminated).
fn copy_field<const N: usize>(dst: &mut [ffi::c_char; N], src: &[u8]) {
    let n = src.len().min(N - 1);
    for (d, &s) in dst.iter_mut().zip(&src[..n]) {
        *d = s as ffi::c_char;
    }
    dst[n] = 0;
}

/// A controller's sysfs controls: the attribute data of the C glue, and, while the
/// module holds the classes, the class device `nvme<N>` (which carries the attributes) and
/// the subsystem `nvme-subsys<N>`. Without the classes the attributes go on the
/// controller's misc device: pass the object (as [`MiscAttributes`]) to
/// [`super::miscdevice::MiscRegistration::register`]. Removed on drop.
///
/// # Invariants
///
/// `raw` came from `rnvme_nvme_ctrl_create` with the ops of `S` and `data` from
/// `Arc::<S>::into_foreign`, both released only by `Drop`.
pub(crate) struct CtrlDevice<S: CtrlControls> {
    raw: NonNull<sys::rnvme_nvme_ctrl>,
    data: *const ffi::c_void,
    _source: core::marker::PhantomData<Arc<S>>,
}

// SAFETY: the C object is only touched at creation and drop, and by attribute callbacks
// (which only read it); `S` is `Send + Sync`.
unsafe impl<S: CtrlControls> Send for CtrlDevice<S> {}
// SAFETY: `&self` only reads the device pointer.
unsafe impl<S: CtrlControls> Sync for CtrlDevice<S> {}

/// The C callbacks of a controller whose driver side is `S`.
struct Ops<S>(core::marker::PhantomData<S>);

impl<S: CtrlControls> Ops<S> {
    /// The table `rnvme_nvme_ctrl_create` gets.
    const OPS: sys::rnvme_nvme_ctrl_ops = sys::rnvme_nvme_ctrl_ops {
        state: Some(state_show::<S>),
        reset: Some(reset_store::<S>),
        rescan: Some(rescan_store::<S>),
    };
}

impl<S: CtrlControls> CtrlDevice<S> {
    /// Creates the controls of a controller of PCI function `parent`, with its class
    /// devices if the module holds the classes; `address` shows `parent`'s name and
    /// `controls` answers the state and the actions.
    pub(crate) fn new(parent: &Device, info: &CtrlInfo<'_>, controls: Arc<S>) -> Result<Self> {
        // SAFETY: all-zero is a valid `rnvme_nvme_ctrl_info` (integers and char arrays).
        let mut raw_info: sys::rnvme_nvme_ctrl_info = unsafe { core::mem::zeroed() };
        raw_info.instance = info.instance;
        copy_field(&mut raw_info.model, info.model);
        copy_field(&mut raw_info.serial, info.serial);
        copy_field(&mut raw_info.firmware, info.firmware);
        copy_field(&mut raw_info.subsysnqn, info.subsysnqn);
        copy_field(&mut raw_info.address, parent.name().as_bytes());
        raw_info.cntlid = info.cntlid;
        raw_info.queue_count = info.queue_count;
        raw_info.sqsize = info.sqsize;
        let data = controls.into_foreign();
        let ops: &'static sys::rnvme_nvme_ctrl_ops = &Ops::<S>::OPS;
        // SAFETY: `parent` is a valid device (the C side takes a reference); `raw_info` is
        // copied by the call; `ops` is static and its trampolines get `data`, alive until
        // `Drop` releases it after the devices whose attributes call them are gone.
        let raw = unsafe { sys::rnvme_nvme_ctrl_create(parent.as_raw(), &raw_info, ops, data) };
        match from_err_ptr(raw).map(NonNull::new) {
            // INVARIANT: created above with `data`.
            Ok(Some(raw)) => Ok(Self {
                raw,
                data,
                _source: core::marker::PhantomData,
            }),
            Ok(None) | Err(_) => {
                // SAFETY: nothing refers to `data`: the creation failed.
                drop(unsafe { Arc::<S>::from_foreign(data) });
                Err(from_err_ptr(raw).err().unwrap_or(ENOMEM))
            }
        }
    }

    /// The class device `nvme<N>` (the parent of the controller's disks), if the module
    /// holds the classes.
    pub(crate) fn class_device(&self) -> Option<&Device> {
        // SAFETY: created by `rnvme_nvme_ctrl_create` (type invariant).
        let dev = unsafe { sys::rnvme_nvme_ctrl_device(self.raw.as_ptr()) };
        if dev.is_null() {
            return None;
        }
        // SAFETY: the class device lives until `Drop` (type invariant).
        Some(unsafe { Device::from_raw(dev) })
    }
}

// SAFETY: `rnvme_nvme_ctrl_groups` is a static, NULL-terminated array of the C glue whose
// callbacks take `rnvme_misc_attr_data` to be the `rnvme_nvme_ctrl` of `data()`, which
// lives as long as `self` (type invariant) and holds `Arc<S>` for the trampolines.
unsafe impl<S: CtrlControls> MiscAttributes for CtrlDevice<S> {
    fn groups(&self) -> *const *const kernel::bindings::attribute_group {
        (&raw const sys::rnvme_nvme_ctrl_groups).cast()
    }

    fn data(&self) -> *mut ffi::c_void {
        self.raw.as_ptr().cast()
    }
}

impl<S: CtrlControls> Drop for CtrlDevice<S> {
    fn drop(&mut self) {
        // SAFETY: created by `rnvme_nvme_ctrl_create` (type invariant); a misc device
        // using it as `MiscAttributes` holds a reference to `self`, so it is gone; after
        // the call no attribute callback runs, so `data` can be released.
        unsafe {
            sys::rnvme_nvme_ctrl_destroy(self.raw.as_ptr());
            drop(Arc::<S>::from_foreign(self.data));
        }
    }
}

/// The `state` attribute's callback.
///
/// # Safety
///
/// `data` must come from `Arc::<S>::into_foreign` and still be owned by a [`CtrlDevice`].
unsafe extern "C" fn state_show<S: CtrlControls>(data: *const ffi::c_void) -> *const ffi::c_char {
    // SAFETY: guaranteed by the caller.
    let source = unsafe { Arc::<S>::borrow(data) };
    source.state_name().as_char_ptr()
}

/// The written bytes of a store callback.
///
/// # Safety
///
/// `buf` must be valid for reads of `count` bytes for `'a`.
unsafe fn written<'a>(buf: *const ffi::c_char, count: usize) -> &'a [u8] {
    if count == 0 || buf.is_null() {
        return &[];
    }
    // SAFETY: guaranteed by the caller.
    unsafe { core::slice::from_raw_parts(buf.cast::<u8>(), count) }
}

/// Runs `action` for a write of `count` bytes at `buf` to one of the controller's action
/// attributes; returns 0 or a negative errno.
///
/// # Safety
///
/// `data` must come from `Arc::<S>::into_foreign` and still be owned by a [`CtrlDevice`];
/// `buf` must be valid for reads of `count` bytes during the call.
unsafe fn run_action<S: CtrlControls>(
    data: *const ffi::c_void,
    buf: *const ffi::c_char,
    count: usize,
    action: fn(&Arc<S>, &[u8]) -> Result,
) -> ffi::c_int {
    // SAFETY: guaranteed by the caller.
    let (source, input) = unsafe { (Arc::<S>::borrow(data), written(buf, count)) };
    // A reference of its own for the action (a reset may hand the controller to work
    // items), dropped when the callback returns.
    let source: Arc<S> = source.into();
    match action(&source, input) {
        Ok(()) => 0,
        Err(e) => e.to_errno(),
    }
}

/// The `reset_controller` attribute's callback: 0 or a negative errno.
///
/// # Safety
///
/// As [`run_action`].
unsafe extern "C" fn reset_store<S: CtrlControls>(
    data: *const ffi::c_void,
    buf: *const ffi::c_char,
    count: usize,
) -> ffi::c_int {
    // SAFETY: this function's contract is `run_action`'s.
    unsafe { run_action(data, buf, count, S::reset_controller) }
}

/// The `rescan_controller` attribute's callback: 0 or a negative errno.
///
/// # Safety
///
/// As [`run_action`].
unsafe extern "C" fn rescan_store<S: CtrlControls>(
    data: *const ffi::c_void,
    buf: *const ffi::c_char,
    count: usize,
) -> ffi::c_int {
    // SAFETY: this function's contract is `run_action`'s.
    unsafe { run_action(data, buf, count, S::rescan_controller) }
}

/// The attribute groups of a namespace disk in the classes (`nsid`), for
/// [`super::block::mq::GenDiskBuilder::nvme_namespace_attributes`].
pub(crate) fn namespace_groups() -> *const *const kernel::bindings::attribute_group {
    // A NULL-terminated static array of the C glue, never written.
    (&raw const sys::rnvme_nvme_ns_groups).cast()
}
