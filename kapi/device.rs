// SPDX-License-Identifier: GPL-2.0

//! Generic devices and device contexts, in the shape of upstream `kernel::device`.
//!
//! C header: [`include/linux/device.h`](srctree/include/linux/device.h)

use core::{fmt, marker::PhantomData, ptr};

use kernel::{bindings, ffi, str::CStr, types::Opaque};

use super::bindings::sys;

/// Marker trait for the state a [`Device`] reference proves.
pub(crate) trait DeviceContext: private::Sealed {}

/// Any reference to the device: it may or may not be bound to a driver.
pub(crate) struct Normal;

/// Inside a bus callback (probe, remove): the device lock is held and the device is bound.
pub(crate) struct Core;

/// The device is bound to this driver for the lifetime of the reference.
pub(crate) struct Bound;

mod private {
    pub(crate) trait Sealed {}
    impl Sealed for super::Normal {}
    impl Sealed for super::Core {}
    impl Sealed for super::Bound {}
}

impl DeviceContext for Normal {}
impl DeviceContext for Core {}
impl DeviceContext for Bound {}

/// A C `struct device`, borrowed in context `Ctx`.
///
/// # Invariants
///
/// A `&Device<Ctx>` always points to a valid `struct device` whose state matches `Ctx` for the
/// lifetime of the reference.
#[repr(transparent)]
pub(crate) struct Device<Ctx: DeviceContext = Normal>(Opaque<bindings::device>, PhantomData<Ctx>);

impl<Ctx: DeviceContext> Device<Ctx> {
    /// Creates a reference from a raw pointer.
    ///
    /// # Safety
    ///
    /// `ptr` must point to a valid `struct device` in state `Ctx` for the whole lifetime `'a`.
    pub(crate) unsafe fn from_raw<'a>(ptr: *mut bindings::device) -> &'a Self {
        // SAFETY: `Device` is a transparent wrapper of `struct device`; validity and context are
        // guaranteed by the caller.
        unsafe { &*ptr.cast() }
    }

    /// Returns the raw `struct device` pointer.
    pub(crate) fn as_raw(&self) -> *mut bindings::device {
        self.0.get()
    }

    /// Returns the device's name (for a PCI function: its BDF, e.g. `0000:01:00.0`).
    pub(crate) fn name(&self) -> &CStr {
        // SAFETY: By the type invariant the device is valid; `dev_name` returns a NUL-terminated
        // string that lives as long as the device.
        unsafe { CStr::from_char_ptr(sys::rnvme_dev_name(self.as_raw())) }
    }

    /// Prints a message at `level` (a `KERN_*` string) prefixed with the driver and device
    /// names, like the C `dev_printk`.
    pub(crate) fn printk(&self, level: &'static [u8; 3], args: fmt::Arguments<'_>) {
        // SAFETY: `level` and the format are NUL-terminated; `%pA` consumes exactly one
        // `fmt::Arguments` pointer, which lives across the call; the device is valid.
        unsafe {
            sys::_dev_printk(
                level.as_ptr().cast::<ffi::c_char>(),
                self.as_raw(),
                c"%pA".as_ptr().cast::<ffi::c_char>(),
                ptr::from_ref(&args).cast::<ffi::c_void>(),
            )
        };
    }

    /// Returns this reference in the [`Normal`] context.
    pub(crate) fn as_normal(&self) -> &Device<Normal> {
        // SAFETY: `Normal` makes no claim beyond the device being valid.
        unsafe { Device::from_raw(self.as_raw()) }
    }
}

impl Device<Core> {
    /// The device, as a [`Bound`] device: a device in a bus callback is bound.
    pub(crate) fn as_bound(&self) -> &Device<Bound> {
        // SAFETY: Inside a bus callback the device is bound (type invariant of `Core`).
        unsafe { Device::from_raw(self.as_raw()) }
    }
}

/// `KERN_ERR` as a `_dev_printk` level.
pub(crate) const KERN_ERR: &[u8; 3] = b"\x013\0";
/// `KERN_WARNING` as a `_dev_printk` level.
pub(crate) const KERN_WARNING: &[u8; 3] = b"\x014\0";
/// `KERN_INFO` as a `_dev_printk` level.
pub(crate) const KERN_INFO: &[u8; 3] = b"\x016\0";

/// Anything that can name a [`Device`] for the `dev_*!` macros.
pub(crate) trait AsDevice {
    /// Returns the underlying generic device.
    fn as_device(&self) -> &Device<Normal>;
}

impl<Ctx: DeviceContext> AsDevice for Device<Ctx> {
    fn as_device(&self) -> &Device<Normal> {
        self.as_normal()
    }
}

/// Prints an informational message for a device, like the C `dev_info`.
macro_rules! dev_info {
    ($dev:expr, $($arg:tt)*) => {
        $crate::kapi::device::AsDevice::as_device(&*$dev)
            .printk($crate::kapi::device::KERN_INFO, format_args!($($arg)*))
    };
}

/// Prints a warning for a device, like the C `dev_warn`.
macro_rules! dev_warn {
    ($dev:expr, $($arg:tt)*) => {
        $crate::kapi::device::AsDevice::as_device(&*$dev)
            .printk($crate::kapi::device::KERN_WARNING, format_args!($($arg)*))
    };
}

/// Prints an error for a device, like the C `dev_err`.
macro_rules! dev_err {
    ($dev:expr, $($arg:tt)*) => {
        $crate::kapi::device::AsDevice::as_device(&*$dev)
            .printk($crate::kapi::device::KERN_ERR, format_args!($($arg)*))
    };
}

pub(crate) use {dev_err, dev_info, dev_warn};

// SAFETY: a `struct device` may be referenced from any thread; its C API does its own
// locking, and `Device` exposes no unsynchronised mutation.
unsafe impl<Ctx: DeviceContext> Send for Device<Ctx> {}
// SAFETY: see `Send`.
unsafe impl<Ctx: DeviceContext> Sync for Device<Ctx> {}
