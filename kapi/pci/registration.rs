// SPDX-License-Identifier: GPL-2.0

//! Registering a PCI driver with the PCI core: a `struct pci_driver` registered for as long
//! as its [`Registration`] lives.
//!
//! C header: [`include/linux/pci.h`](srctree/include/linux/pci.h)

use core::{marker::PhantomData, pin::Pin};

use kernel::{
    bindings, error::to_result, init::pin_init_from_closure, prelude::*, str::CStr, types::Opaque,
    ThisModule,
};

use super::{adapter::Adapter, driver::Driver};
use crate::kapi::bindings::sys;

/// A `struct pci_driver` registered with the PCI core; unregistered on drop. The typed
/// registrations ([`Registration`], [`super::vfio::Registration`]) differ only in the
/// callbacks they fill in.
///
/// # Invariants
///
/// `drv` is registered with the PCI core for the lifetime of the object.
#[pin_data(PinnedDrop)]
pub(in crate::kapi) struct DriverRegistration {
    #[pin]
    drv: Opaque<sys::pci_driver>,
}

// SAFETY: the registration is only touched at creation and drop; the PCI core serialises
// access to the `pci_driver` it holds.
unsafe impl Send for DriverRegistration {}
// SAFETY: no `&self` method touches the `pci_driver`.
unsafe impl Sync for DriverRegistration {}

impl DriverRegistration {
    /// Registers PCI driver `name` of `module` with ID table `ids`; `fill` sets its
    /// callbacks in the otherwise zeroed `pci_driver` before registration.
    ///
    /// # Safety
    ///
    /// `ids` is a zero-terminated table that outlives the registration, and the callbacks
    /// `fill` sets are valid for the PCI core to call while the driver is registered.
    pub(in crate::kapi) unsafe fn new(
        name: &'static CStr,
        module: &'static ThisModule,
        ids: *const bindings::pci_device_id,
        fill: impl FnOnce(*mut sys::pci_driver),
    ) -> impl PinInit<Self, Error> {
        let init = move |slot: *mut Opaque<sys::pci_driver>| {
            let drv = Opaque::raw_get(slot);
            // SAFETY: `drv` is valid for writes; all-zero is a valid `pci_driver`.
            unsafe {
                core::ptr::write_bytes(drv, 0, 1);
                (*drv).name = name.as_char_ptr();
                (*drv).id_table = ids;
            }
            fill(drv);
            // SAFETY: `drv` is fully initialised and pinned (it lives in a pinned `Opaque`
            // that is only dropped through `PinnedDrop`, which unregisters it); `name` is a
            // static string; the table and callbacks are valid (caller).
            to_result(unsafe {
                sys::__pci_register_driver(drv, module.as_ptr(), name.as_char_ptr())
            })
        };
        try_pin_init!(Self {
            // SAFETY: the closure initialises the whole `pci_driver` before registering it,
            // and returns an error only when registration failed (nothing to undo).
            drv <- unsafe { pin_init_from_closure(init) },
        })
    }
}

#[pinned_drop]
impl PinnedDrop for DriverRegistration {
    fn drop(self: Pin<&mut Self>) {
        // SAFETY: by the type invariant the driver is registered.
        unsafe { sys::pci_unregister_driver(self.drv.get()) };
    }
}

/// The registration of a [`Driver`] with the PCI core; unregisters on drop.
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
            // SAFETY: `drv` points to the `pci_driver` being initialised, not yet registered.
            unsafe {
                (*drv).probe = Some(Adapter::<T>::probe_callback);
                (*drv).remove = Some(Adapter::<T>::remove_callback);
                (*drv).shutdown = Some(Adapter::<T>::shutdown_callback);
                (*drv).sriov_configure = Some(Adapter::<T>::sriov_configure_callback);
                (*drv).err_handler = &Adapter::<T>::ERROR_HANDLERS;
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
