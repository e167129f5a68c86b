// SPDX-License-Identifier: GPL-2.0

//! The `nvme` and `nvme-subsystem` device classes that libnvme (nvme-cli's `nvme list`)
//! reads, held by rnvme under the module parameter `nvme_class` (no upstream Rust; the C
//! side is `kapi/glue/nvme_class.c`).
//!
//! Those classes belong to the C `nvme-core` module. With `nvme_class=on` (or `auto` while
//! `nvme-core` is not loaded) the module registers them at load and refuses to let
//! `nvme-core` load while it holds them; every controller then gets a class device
//! `nvme<N>` (parent: its PCI function) and a subsystem `nvme-subsys<N>`.

use core::ptr::NonNull;

use kernel::{
    error::{from_err_ptr, to_result},
    ffi,
    prelude::*,
    str::CStr,
    sync::Arc,
    types::ForeignOwnable,
};

use super::{bindings::sys, device::Device};

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

/// The state of a controller as the class device's `state` attribute shows it.
pub(crate) trait CtrlStateSource: Send + Sync + 'static {
    /// The state's name as the C driver spells it (`live`, `resetting`, `deleting`,
    /// `dead`, ...).
    fn state_name(&self) -> &'static CStr;
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

/// A controller's class device `nvme<N>` and subsystem `nvme-subsys<N>`; removed on drop.
///
/// # Invariants
///
/// `raw` came from `rnvme_nvme_ctrl_create` with `state_data` from
/// `Arc::<S>::into_raw`-style `into_foreign`, both released only by `Drop`.
pub(crate) struct CtrlDevice<S: CtrlStateSource> {
    raw: NonNull<sys::rnvme_nvme_ctrl>,
    state_data: *const ffi::c_void,
    _source: core::marker::PhantomData<Arc<S>>,
}

// SAFETY: the C object is only touched at creation and drop; `S` is `Send + Sync`.
unsafe impl<S: CtrlStateSource> Send for CtrlDevice<S> {}
// SAFETY: `&self` only reads the device pointer.
unsafe impl<S: CtrlStateSource> Sync for CtrlDevice<S> {}

impl<S: CtrlStateSource> CtrlDevice<S> {
    /// Creates the devices of a controller of PCI function `parent` (the classes must be
    /// registered: `ENODEV` otherwise); `address` shows `parent`'s name and `state`
    /// answers the `state` attribute.
    pub(crate) fn new(parent: &Device, info: &CtrlInfo<'_>, state: Arc<S>) -> Result<Self> {
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
        let state_data = state.into_foreign();
        // SAFETY: `parent` is a valid device; `raw_info` is copied by the call; the
        // trampoline gets `state_data`, alive until `Drop` releases it after the devices
        // (whose attributes call it) are gone.
        let raw = unsafe {
            sys::rnvme_nvme_ctrl_create(
                parent.as_raw(),
                &raw_info,
                Some(state_show::<S>),
                state_data,
            )
        };
        match from_err_ptr(raw).map(NonNull::new) {
            // INVARIANT: created above with `state_data`.
            Ok(Some(raw)) => Ok(Self {
                raw,
                state_data,
                _source: core::marker::PhantomData,
            }),
            Ok(None) | Err(_) => {
                // SAFETY: nothing refers to `state_data`: the creation failed.
                drop(unsafe { Arc::<S>::from_foreign(state_data) });
                Err(from_err_ptr(raw).err().unwrap_or(ENOMEM))
            }
        }
    }

    /// The class device `nvme<N>` (the parent of the controller's disks).
    pub(crate) fn device(&self) -> &Device {
        // SAFETY: the class device lives until `Drop` (type invariant).
        unsafe { Device::from_raw(sys::rnvme_nvme_ctrl_device(self.raw.as_ptr())) }
    }
}

impl<S: CtrlStateSource> Drop for CtrlDevice<S> {
    fn drop(&mut self) {
        // SAFETY: created by `rnvme_nvme_ctrl_create` (type invariant); after the call no
        // attribute callback runs, so `state_data` can be released.
        unsafe {
            sys::rnvme_nvme_ctrl_destroy(self.raw.as_ptr());
            drop(Arc::<S>::from_foreign(self.state_data));
        }
    }
}

/// The `state` attribute's callback.
///
/// # Safety
///
/// `data` must come from `Arc::<S>::into_foreign` and still be owned by a [`CtrlDevice`].
unsafe extern "C" fn state_show<S: CtrlStateSource>(
    data: *const ffi::c_void,
) -> *const ffi::c_char {
    // SAFETY: guaranteed by the caller.
    let source = unsafe { Arc::<S>::borrow(data) };
    source.state_name().as_char_ptr()
}

/// The attribute groups of a namespace disk in the classes (`nsid`), for
/// [`super::block::mq::GenDiskBuilder::nvme_namespace_attributes`].
pub(crate) fn namespace_groups() -> *const *const kernel::bindings::attribute_group {
    // A NULL-terminated static array of the C glue, never written.
    (&raw const sys::rnvme_nvme_ns_groups).cast()
}
