// SPDX-License-Identifier: GPL-2.0

//! Registering a driver with the PCI core: a `struct pci_driver` registered for as long as
//! its [`Registration`] lives.
//!
//! One registration type serves every kind of PCI driver of the module; what differs is who
//! fills in the callbacks ([`DriverCallbacks`]): the adapter of a PCI [`super::Driver`]
//! (the registration is then [`super::Registration`]) or that of a VFIO driver
//! ([`crate::kapi::vfio::Registration`]), as upstream's `kernel::driver::Registration` is
//! generic over the bus adapter.
//!
//! C header: [`include/linux/pci.h`](srctree/include/linux/pci.h)

use core::{marker::PhantomData, pin::Pin};

use kernel::{
    bindings, error::to_result, init::pin_init_from_closure, prelude::*, str::CStr, types::Opaque,
    ThisModule,
};

use crate::kapi::bindings::sys;

/// What a kind of PCI driver fills into its `struct pci_driver`: the ID table and the
/// callbacks through which the PCI core reaches the typed driver.
///
/// # Safety
///
/// [`DriverCallbacks::id_table`] returns a zero-terminated table that outlives every
/// registration, and [`DriverCallbacks::fill`] sets only callbacks that are valid for the
/// PCI core to call, for any device it binds, while the driver is registered.
pub(crate) unsafe trait DriverCallbacks {
    /// The driver's zero-terminated ID table.
    fn id_table() -> *const bindings::pci_device_id;

    /// Sets the callbacks (and any other fields but the name and the ID table) of `drv`.
    ///
    /// # Safety
    ///
    /// `drv` points to the otherwise zeroed `pci_driver` being initialised, not yet
    /// registered.
    unsafe fn fill(drv: *mut sys::pci_driver);
}

/// A `struct pci_driver` registered with the PCI core, its callbacks filled in by `A`;
/// unregistered on drop.
///
/// # Invariants
///
/// `drv` is registered with the PCI core for the lifetime of the object.
#[pin_data(PinnedDrop)]
pub(crate) struct Registration<A: DriverCallbacks> {
    #[pin]
    drv: Opaque<sys::pci_driver>,
    _p: PhantomData<A>,
}

// SAFETY: the registration is only touched at creation and drop; the PCI core serialises
// access to the `pci_driver` it holds. `A` is only a name for the callbacks: no `A` is kept.
unsafe impl<A: DriverCallbacks> Send for Registration<A> {}
// SAFETY: no `&self` method touches the `pci_driver`.
unsafe impl<A: DriverCallbacks> Sync for Registration<A> {}

impl<A: DriverCallbacks> Registration<A> {
    /// Registers PCI driver `name` of `module` with `A`'s ID table and callbacks.
    pub(crate) fn new(
        name: &'static CStr,
        module: &'static ThisModule,
    ) -> impl PinInit<Self, Error> {
        let init = move |slot: *mut Opaque<sys::pci_driver>| {
            let drv = Opaque::raw_get(slot);
            // SAFETY: `drv` is valid for writes; all-zero is a valid `pci_driver`. It is not
            // registered yet, as `A::fill` requires.
            unsafe {
                core::ptr::write_bytes(drv, 0, 1);
                (*drv).name = name.as_char_ptr();
                (*drv).id_table = A::id_table();
                A::fill(drv);
            }
            // SAFETY: `drv` is fully initialised and pinned (it lives in a pinned `Opaque`
            // that is only dropped through `PinnedDrop`, which unregisters it); `name` is a
            // static string; the table and callbacks are valid (`DriverCallbacks` contract).
            to_result(unsafe {
                sys::__pci_register_driver(drv, module.as_ptr(), name.as_char_ptr())
            })
        };
        // INVARIANT: the closure returns `Ok` only once the driver is registered.
        try_pin_init!(Self {
            // SAFETY: the closure initialises the whole `pci_driver` before registering it,
            // and returns an error only when registration failed (nothing to undo).
            drv <- unsafe { pin_init_from_closure(init) },
            _p: PhantomData,
        })
    }
}

#[pinned_drop]
impl<A: DriverCallbacks> PinnedDrop for Registration<A> {
    fn drop(self: Pin<&mut Self>) {
        // SAFETY: by the type invariant the driver is registered.
        unsafe { sys::pci_unregister_driver(self.drv.get()) };
    }
}
