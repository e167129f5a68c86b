// SPDX-License-Identifier: GPL-2.0

//! sysfs attributes of bound PCI functions: [`BoundAttribute`], added to a function while
//! a driver is bound to it, and what every PCI attribute's `show` and `store` callbacks
//! share (see also [`super::vf_attribute`]).
//!
//! C header: [`include/linux/device.h`](srctree/include/linux/device.h)

use core::{marker::PhantomData, pin::Pin};

use kernel::{bindings, ffi, prelude::*, str::CStr, types::ForeignOwnable};

use super::device::Device;
use crate::kapi::{
    bindings::sys,
    device::Normal,
    sysfs::{DeviceAttribute, ShowBuffer},
};

/// The `struct pci_dev` a sysfs callback's `struct device` is embedded in.
///
/// # Safety
///
/// `dev` is the `dev` member of a valid `struct pci_dev`.
pub(super) unsafe fn to_pci_dev(dev: *mut bindings::device) -> *mut sys::pci_dev {
    // SAFETY: by the caller, stepping back by the offset of `dev` stays in the `pci_dev`.
    unsafe {
        dev.cast::<u8>()
            .sub(core::mem::offset_of!(sys::pci_dev, dev))
            .cast()
    }
}

/// Runs a `show` callback: `f` formats into the page sysfs gave.
///
/// # Safety
///
/// `buf` is the `PAGE_SIZE` buffer of a sysfs `show` call.
pub(super) unsafe fn run_show(
    buf: *mut ffi::c_char,
    f: impl FnOnce(&mut ShowBuffer<'_>) -> Result,
) -> isize {
    // SAFETY: sysfs passes a writable page, exclusively ours for the call.
    let page =
        unsafe { core::slice::from_raw_parts_mut(buf.cast::<u8>(), kernel::page::PAGE_SIZE) };
    let mut out = ShowBuffer::new(page);
    match f(&mut out) {
        Ok(()) => out.len() as isize,
        Err(e) => e.to_errno() as isize,
    }
}

/// Runs a `store` callback: `f` gets the written bytes; a success consumes all of them.
///
/// # Safety
///
/// `buf` points to `count` bytes, valid for the call.
pub(super) unsafe fn run_store(
    buf: *const ffi::c_char,
    count: usize,
    f: impl FnOnce(&[u8]) -> Result,
) -> isize {
    // SAFETY: by the caller.
    let input = unsafe { core::slice::from_raw_parts(buf.cast::<u8>(), count) };
    match f(input) {
        Ok(()) => count as isize,
        Err(e) => e.to_errno() as isize,
    }
}

/// The callbacks of a [`BoundAttribute`]: they see the function and driver `T`'s data.
pub(crate) trait BoundAttributeOps<T: 'static> {
    /// Formats the value.
    fn show(dev: &Device, this: Pin<&T>, out: &mut ShowBuffer<'_>) -> Result;
    /// Parses and applies a write.
    fn store(dev: &Device, this: Pin<&T>, input: &[u8]) -> Result;
}

/// A sysfs attribute of functions bound to driver `T`, listed by `Driver::attributes`:
/// added once the function is bound, removed before it unbinds.
pub(crate) struct BoundAttribute<T: 'static>(pub(super) DeviceAttribute, PhantomData<T>);

impl<T: 'static> BoundAttribute<T> {
    /// An attribute `name` with permissions `mode`, served by `A`.
    pub(crate) const fn new<A: BoundAttributeOps<T>>(name: &'static CStr, mode: u16) -> Self {
        // SAFETY: the adapter adds the attribute only to functions bound to `T`, while
        // their data is set (see `bound_show`).
        let attr =
            unsafe { DeviceAttribute::new(name, mode, bound_show::<T, A>, bound_store::<T, A>) };
        Self(attr, PhantomData)
    }

    /// The attribute's file name.
    pub(super) fn name(&self) -> &'static str {
        // SAFETY: the name is a static NUL-terminated string (`DeviceAttribute` invariant).
        let name = unsafe { CStr::from_char_ptr((*self.0.as_raw()).attr.name) };
        name.to_str().unwrap_or("?")
    }
}

/// # Safety
///
/// `dev` is a PCI function bound to `T` whose data is set and stays alive for the call.
unsafe fn bound_data<'a, T: 'static>(
    dev: *mut bindings::device,
) -> Option<(&'a Device, Pin<&'a T>)> {
    // SAFETY: by the caller `dev` is embedded in a valid `pci_dev`.
    let pdev = unsafe { Device::<Normal>::from_raw(to_pci_dev(dev)) };
    // SAFETY: the device is valid.
    let ptr = unsafe { sys::rnvme_dev_get_drvdata(dev) };
    if ptr.is_null() {
        return None;
    }
    // SAFETY: by the caller a non-null drvdata is `T`'s, from `probe_callback`.
    let this = unsafe { <Pin<KBox<T>> as ForeignOwnable>::borrow(ptr) };
    Some((pdev, this))
}

/// sysfs `show` of a [`BoundAttribute`].
///
/// # Safety
///
/// Called by sysfs for a PCI function bound to `T`, with sysfs's buffer.
unsafe extern "C" fn bound_show<T: 'static, A: BoundAttributeOps<T>>(
    dev: *mut bindings::device,
    _attr: *mut bindings::device_attribute,
    buf: *mut ffi::c_char,
) -> isize {
    // SAFETY: the attribute exists only between `probe_callback` setting the data and
    // `remove_callback` removing it (which waits for running callbacks).
    let Some((pdev, this)) = (unsafe { bound_data::<T>(dev) }) else {
        return ENODEV.to_errno() as isize;
    };
    // SAFETY: sysfs passes its `show` page.
    unsafe { run_show(buf, |out| A::show(pdev, this, out)) }
}

/// sysfs `store` of a [`BoundAttribute`].
///
/// # Safety
///
/// Called by sysfs for a PCI function bound to `T`, with sysfs's buffer.
unsafe extern "C" fn bound_store<T: 'static, A: BoundAttributeOps<T>>(
    dev: *mut bindings::device,
    _attr: *mut bindings::device_attribute,
    buf: *const ffi::c_char,
    count: usize,
) -> isize {
    // SAFETY: as in `bound_show`.
    let Some((pdev, this)) = (unsafe { bound_data::<T>(dev) }) else {
        return ENODEV.to_errno() as isize;
    };
    // SAFETY: sysfs passes the written bytes.
    unsafe { run_store(buf, count, |input| A::store(pdev, this, input)) }
}
