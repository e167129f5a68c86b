// SPDX-License-Identifier: GPL-2.0

//! sysfs attributes of SR-IOV VFs served by their physical function's driver:
//! [`VfAttribute`], and [`Device::add_vf_attribute`] to add one to a VF.
//!
//! C header: [`include/linux/device.h`](srctree/include/linux/device.h)

use core::{marker::PhantomData, pin::Pin};

use kernel::{bindings, error::to_result, ffi, prelude::*, str::CStr};

use super::{
    adapter::physfn_data,
    attribute::{run_show, run_store, to_pci_dev},
    device::Device,
    driver::Driver,
};
use crate::kapi::{
    bindings::sys,
    device::Normal,
    sysfs::{DeviceAttribute, ShowBuffer},
};

/// The callbacks of a [`VfAttribute`]: they see the VF and the data of driver `T` bound to
/// its physical function.
pub(crate) trait VfAttributeOps<T: Driver> {
    /// Formats the value.
    fn show(vf: &Device, pf: Pin<&T>, out: &mut ShowBuffer<'_>) -> Result;
    /// Parses and applies a write.
    fn store(vf: &Device, pf: Pin<&T>, input: &[u8]) -> Result;
}

/// A sysfs attribute of SR-IOV VFs whose physical function is bound to driver `T`; the PF's
/// driver adds it to its VFs ([`Device::add_vf_attribute`]). It goes away with the VF,
/// which cannot outlive the PF's binding. Callbacks fail with `ENODEV` if the PF is not
/// bound to `T`.
pub(crate) struct VfAttribute<T: Driver>(DeviceAttribute, PhantomData<T>);

impl<T: Driver> VfAttribute<T> {
    /// An attribute `name` with permissions `mode`, served by `A`.
    pub(crate) const fn new<A: VfAttributeOps<T>>(name: &'static CStr, mode: u16) -> Self {
        // SAFETY: the trampolines accept any device the attribute is added to:
        // `add_vf_attribute` only adds it to PCI VFs.
        let attr = unsafe { DeviceAttribute::new(name, mode, vf_show::<T, A>, vf_store::<T, A>) };
        Self(attr, PhantomData)
    }
}

/// sysfs `show` of a [`VfAttribute`].
///
/// # Safety
///
/// Called by sysfs for a PCI VF the attribute was added to, with sysfs's buffer.
unsafe extern "C" fn vf_show<T: Driver, A: VfAttributeOps<T>>(
    dev: *mut bindings::device,
    _attr: *mut bindings::device_attribute,
    buf: *mut ffi::c_char,
) -> isize {
    // SAFETY: the attribute is only added to PCI VFs (`add_vf_attribute`).
    let pdev = unsafe { to_pci_dev(dev) };
    // SAFETY: a callback of the VF's attribute is running.
    let Some(pf) = (unsafe { physfn_data::<T>(pdev) }) else {
        return ENODEV.to_errno() as isize;
    };
    // SAFETY: `pdev` is valid for the call.
    let vf = unsafe { Device::<Normal>::from_raw(pdev) };
    // SAFETY: sysfs passes its `show` page.
    unsafe { run_show(buf, |out| A::show(vf, pf, out)) }
}

/// sysfs `store` of a [`VfAttribute`].
///
/// # Safety
///
/// Called by sysfs for a PCI VF the attribute was added to, with sysfs's buffer.
unsafe extern "C" fn vf_store<T: Driver, A: VfAttributeOps<T>>(
    dev: *mut bindings::device,
    _attr: *mut bindings::device_attribute,
    buf: *const ffi::c_char,
    count: usize,
) -> isize {
    // SAFETY: the attribute is only added to PCI VFs (`add_vf_attribute`).
    let pdev = unsafe { to_pci_dev(dev) };
    // SAFETY: a callback of the VF's attribute is running.
    let Some(pf) = (unsafe { physfn_data::<T>(pdev) }) else {
        return ENODEV.to_errno() as isize;
    };
    // SAFETY: `pdev` is valid for the call.
    let vf = unsafe { Device::<Normal>::from_raw(pdev) };
    // SAFETY: sysfs passes the written bytes.
    unsafe { run_store(buf, count, |input| A::store(vf, pf, input)) }
}

impl Device<Normal> {
    /// Adds attribute `attr` to this VF; it goes away when the VF is removed. `EINVAL` for
    /// a function that is not a VF.
    pub(crate) fn add_vf_attribute<T: Driver>(&self, attr: &'static VfAttribute<T>) -> Result {
        if !self.is_virtfn() {
            return Err(EINVAL);
        }
        // SAFETY: the device is valid; the attribute's callbacks accept any VF.
        to_result(unsafe { sys::device_create_file(self.as_dev().as_raw(), attr.0.as_raw()) })
    }
}
