// SPDX-License-Identifier: GPL-2.0

//! The C side of a PCI [`Driver`]: the callbacks the PCI core calls (probe, remove,
//! shutdown, SR-IOV configuration, resets and error recovery), which find the driver's
//! object in the function's driver data and hand it to the trait's methods.
//!
//! C header: [`include/linux/pci.h`](srctree/include/linux/pci.h)

use core::{marker::PhantomData, pin::Pin};

use kernel::{bindings, error::from_result, ffi, prelude::*, types::ForeignOwnable};

use super::{
    device::Device,
    driver::{ChannelState, Driver, ErsResult},
    registration::DriverCallbacks,
};
use crate::kapi::{bindings::sys, device::Core};

/// The data of driver `T` bound to the physical function of `vf`, if `vf` is a VF and its
/// PF is bound to `T` (and done probing).
///
/// # Safety
///
/// `vf` is a valid `pci_dev`, and for `'a` either its device lock is held or a sysfs
/// attribute callback of it is running: either keeps the PF's data alive, because
/// `remove_callback` disables SR-IOV (removing the VF, which waits for both) before it
/// drops the data.
pub(in crate::kapi) unsafe fn physfn_data<'a, T: Driver>(
    vf: *mut sys::pci_dev,
) -> Option<Pin<&'a T>> {
    // SAFETY: `vf` is valid; the helper returns the PF's driver data only if the PF is
    // bound to the driver whose probe is `T`'s, so it came from
    // `Pin<KBox<T>>::into_foreign` in `probe_callback`; it lives for `'a` (caller).
    unsafe {
        let ptr = sys::rnvme_pci_physfn_drvdata(vf, Some(Adapter::<T>::probe_callback));
        (!ptr.is_null()).then(|| <Pin<KBox<T>> as ForeignOwnable>::borrow(ptr))
    }
}

/// The C callbacks of a [`Driver`]: what a [`super::Registration`] of `T` fills in.
pub(crate) struct Adapter<T: Driver>(PhantomData<T>);

impl<T: Driver> Adapter<T> {
    /// # Safety
    ///
    /// Called by the PCI core with a valid device (lock held) and a valid matched ID.
    unsafe extern "C" fn probe_callback(
        pdev: *mut sys::pci_dev,
        id: *const bindings::pci_device_id,
    ) -> ffi::c_int {
        // SAFETY: the PCI core calls probe with a valid device, locked and being bound.
        let dev = unsafe { Device::<Core>::from_raw(pdev) };
        // SAFETY: the PCI core passes the matched entry, valid for the call.
        let id = unsafe { &*id };

        from_result(|| {
            let info = T::ID_TABLE.info(id).ok_or(ENODEV)?;
            // SAFETY: the device is valid and its lock is held.
            let physfn = unsafe { physfn_data::<T>(pdev) };
            let data = KBox::pin_init(T::probe(dev, info, physfn), GFP_KERNEL)?;
            // SAFETY: the device is valid; ownership of `data` moves to the drvdata pointer
            // and is taken back exactly once in `remove_callback`.
            unsafe { sys::rnvme_dev_set_drvdata(dev.as_dev().as_raw(), data.into_foreign() as _) };
            for attr in T::attributes(dev) {
                // SAFETY: the device is valid and bound to `T` with its data set, as the
                // attribute's callbacks expect; `remove_callback` removes it before the data
                // is dropped.
                let ret =
                    unsafe { sys::device_create_file(dev.as_dev().as_raw(), attr.0.as_raw()) };
                if ret != 0 {
                    crate::kapi::device::dev_warn!(
                        dev,
                        "sysfs attribute {} not added: {:?}\n",
                        attr.name(),
                        Error::from_errno(ret)
                    );
                }
            }
            Ok(0)
        })
    }

    /// # Safety
    ///
    /// Called by the PCI core with a valid device that `probe_callback` bound.
    unsafe extern "C" fn remove_callback(pdev: *mut sys::pci_dev) {
        // SAFETY: the PCI core calls remove with a valid, locked, still bound device.
        let dev = unsafe { Device::<Core>::from_raw(pdev) };
        // SAFETY: the device is valid.
        let ptr = unsafe { sys::rnvme_dev_get_drvdata(dev.as_dev().as_raw()) };
        // SAFETY: probe succeeded (otherwise remove is not called), so `ptr` came from
        // `Pin<KBox<T>>::into_foreign` and is converted back exactly once.
        let data = unsafe { <Pin<KBox<T>> as ForeignOwnable>::from_foreign(ptr) };
        for attr in T::attributes(dev) {
            // SAFETY: the device is valid; removing a file that was never added is a no-op.
            // Removal waits for running callbacks, which borrow `data`.
            unsafe { sys::device_remove_file(dev.as_dev().as_raw(), attr.0.as_raw()) };
        }
        // VFs go first: their probes and attributes may borrow this function's data (see
        // `physfn_data`), and a VF must not outlive the driver that configured it.
        if dev.num_vfs() > 0 {
            dev.disable_sriov();
        }
        T::unbind(dev, data.as_ref());
        drop(data);
        // SAFETY: the device is valid; the stale pointer must not be seen by the next driver.
        unsafe { sys::rnvme_dev_set_drvdata(dev.as_dev().as_raw(), core::ptr::null_mut()) };
    }

    /// # Safety
    ///
    /// Called by the PCI core (from `sriov_numvfs`) with a valid, locked device.
    unsafe extern "C" fn sriov_configure_callback(
        pdev: *mut sys::pci_dev,
        num_vfs: ffi::c_int,
    ) -> ffi::c_int {
        // SAFETY: the PCI core passes a valid device with its lock held.
        let Some((dev, data)) = (unsafe { Self::bound(pdev) }) else {
            return ENODEV.to_errno();
        };
        from_result(|| {
            let n = u16::try_from(num_vfs).map_err(|_| EINVAL)?;
            T::sriov_configure(dev, data, n).map(ffi::c_int::from)
        })
    }

    /// # Safety
    ///
    /// Called by the PCI core at shutdown with a valid device, bound or not.
    unsafe extern "C" fn shutdown_callback(pdev: *mut sys::pci_dev) {
        // SAFETY: the PCI core calls shutdown with a valid device, its lock held.
        if let Some((dev, data)) = unsafe { Self::bound(pdev) } {
            T::shutdown(dev, data);
        }
    }

    /// The device and the driver's data of a bound function, for the callbacks that run
    /// on a bound function with its device lock held (all but probe and remove).
    ///
    /// # Safety
    ///
    /// `pdev` is valid and its device lock is held for `'a`.
    unsafe fn bound<'a>(pdev: *mut sys::pci_dev) -> Option<(&'a Device<Core>, Pin<&'a T>)> {
        // SAFETY: valid and locked (caller).
        let dev = unsafe { Device::<Core>::from_raw(pdev) };
        // SAFETY: the device is valid.
        let ptr = unsafe { sys::rnvme_dev_get_drvdata(dev.as_dev().as_raw()) };
        if ptr.is_null() {
            return None;
        }
        // SAFETY: a non-null drvdata is the object `probe_callback` stored, alive until
        // `remove_callback`, which cannot run while the device lock is held.
        Some((dev, unsafe {
            <Pin<KBox<T>> as ForeignOwnable>::borrow(ptr)
        }))
    }

    /// # Safety
    ///
    /// Called by the PCI core with a valid device whose lock is held.
    unsafe extern "C" fn reset_prepare_callback(pdev: *mut sys::pci_dev) {
        // SAFETY: as this function's contract.
        if let Some((dev, data)) = unsafe { Self::bound(pdev) } {
            T::reset_prepare(dev, data);
        }
    }

    /// # Safety
    ///
    /// Called by the PCI core with a valid device whose lock is held.
    unsafe extern "C" fn reset_done_callback(pdev: *mut sys::pci_dev) {
        // SAFETY: as this function's contract.
        if let Some((dev, data)) = unsafe { Self::bound(pdev) } {
            T::reset_done(dev, data);
        }
    }

    /// # Safety
    ///
    /// Called by the PCI core with a valid device whose lock is held.
    unsafe extern "C" fn error_detected_callback(
        pdev: *mut sys::pci_dev,
        state: sys::pci_channel_state_t,
    ) -> sys::pci_ers_result_t {
        // SAFETY: as this function's contract.
        let result = match unsafe { Self::bound(pdev) } {
            Some((dev, data)) => T::error_detected(dev, data, ChannelState::from_raw(state)),
            None => ErsResult::None,
        };
        result as sys::pci_ers_result_t
    }

    /// # Safety
    ///
    /// Called by the PCI core with a valid device whose lock is held.
    unsafe extern "C" fn mmio_enabled_callback(pdev: *mut sys::pci_dev) -> sys::pci_ers_result_t {
        // SAFETY: as this function's contract.
        let result = match unsafe { Self::bound(pdev) } {
            Some((dev, data)) => T::mmio_enabled(dev, data),
            None => ErsResult::None,
        };
        result as sys::pci_ers_result_t
    }

    /// # Safety
    ///
    /// Called by the PCI core with a valid device whose lock is held.
    unsafe extern "C" fn slot_reset_callback(pdev: *mut sys::pci_dev) -> sys::pci_ers_result_t {
        // SAFETY: as this function's contract.
        let result = match unsafe { Self::bound(pdev) } {
            Some((dev, data)) => T::slot_reset(dev, data),
            None => ErsResult::None,
        };
        result as sys::pci_ers_result_t
    }

    /// # Safety
    ///
    /// Called by the PCI core with a valid device whose lock is held.
    unsafe extern "C" fn resume_callback(pdev: *mut sys::pci_dev) {
        // SAFETY: as this function's contract.
        if let Some((dev, data)) = unsafe { Self::bound(pdev) } {
            T::resume(dev, data);
        }
    }

    /// The error handlers of every driver of type `T`: a constant, so `&ERROR_HANDLERS`
    /// is a static the PCI core may keep.
    const ERROR_HANDLERS: sys::pci_error_handlers = sys::pci_error_handlers {
        error_detected: Some(Self::error_detected_callback),
        mmio_enabled: Some(Self::mmio_enabled_callback),
        slot_reset: Some(Self::slot_reset_callback),
        reset_prepare: Some(Self::reset_prepare_callback),
        reset_done: Some(Self::reset_done_callback),
        resume: Some(Self::resume_callback),
        cor_error_detected: None,
    };
}

// SAFETY: `T::ID_TABLE` is a static, terminated table (`IdTable` invariant); the adapter's
// callbacks are valid for any device the PCI core binds.
unsafe impl<T: Driver> DriverCallbacks for Adapter<T> {
    fn id_table() -> *const bindings::pci_device_id {
        T::ID_TABLE.as_ptr()
    }

    unsafe fn fill(drv: *mut sys::pci_driver) {
        // SAFETY: `drv` points to the `pci_driver` being initialised, not yet registered
        // (caller).
        unsafe {
            (*drv).probe = Some(Self::probe_callback);
            (*drv).remove = Some(Self::remove_callback);
            (*drv).shutdown = Some(Self::shutdown_callback);
            (*drv).sriov_configure = Some(Self::sriov_configure_callback);
            (*drv).err_handler = &Self::ERROR_HANDLERS;
        }
    }
}
