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
//! C headers: [`include/linux/vfio_pci_core.h`](srctree/include/linux/vfio_pci_core.h)

use core::{marker::PhantomData, pin::Pin};

use kernel::{
    bindings, error::from_result, ffi, prelude::*, str::CStr, types::ForeignOwnable, ThisModule,
};

use super::{
    bindings::sys,
    device::{Core, Normal},
    pci::{self, physfn_data, DriverRegistration},
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
}

struct Adapter<T: Driver>(PhantomData<T>);

impl<T: Driver> Adapter<T> {
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
            let ptr = data.into_foreign() as *mut ffi::c_void;
            // SAFETY: the device is valid and locked; the glue stores `ptr` beside the VFIO
            // device and returns it from `rnvme_vfio_unregister`.
            let ret = unsafe { sys::rnvme_vfio_register(pdev, ptr) };
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

/// Whether `pdev` is bound to the VFIO driver `T` and a user (a VMM) has its VFIO device
/// open. Must not be called with the device's lock held.
pub(crate) fn in_use<T: Driver>(pdev: &pci::Device<Normal>) -> bool {
    Adapter::<T>::in_use(pdev)
}

/// The registration of a VFIO [`Driver`] with the PCI core; unregisters on drop.
#[pin_data]
pub(crate) struct Registration<T: Driver> {
    #[pin]
    reg: DriverRegistration,
    _p: PhantomData<T>,
}

impl<T: Driver> Registration<T> {
    /// Registers `T` as PCI driver `name` of `module`.
    pub(crate) fn new(
        name: &'static CStr,
        module: &'static ThisModule,
    ) -> impl PinInit<Self, Error> {
        let fill = |drv: *mut sys::pci_driver| {
            // SAFETY: `drv` points to the `pci_driver` being initialised, not yet
            // registered; the glue only sets fields.
            unsafe {
                (*drv).probe = Some(Adapter::<T>::probe_callback);
                (*drv).remove = Some(Adapter::<T>::remove_callback);
                sys::rnvme_vfio_driver_init(drv);
            }
        };
        try_pin_init!(Self {
            // SAFETY: `T::ID_TABLE` is a static, terminated table (`IdTable` invariant); the
            // adapter's callbacks are valid for any device the PCI core binds.
            reg <- unsafe { DriverRegistration::new(name, module, T::ID_TABLE.as_ptr(), fill) },
            _p: PhantomData,
        })
    }
}
