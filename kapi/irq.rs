// SPDX-License-Identifier: GPL-2.0

//! Interrupt handlers, in the shape of upstream `kernel::irq` (6.18).
//!
//! C header: [`include/linux/interrupt.h`](srctree/include/linux/interrupt.h)

use core::{any::Any, marker::PhantomPinned, ptr};

use kernel::{
    bindings, error::to_result, ffi, init::pin_init_from_closure, prelude::*, str::CStr, sync::Arc,
    types::Opaque,
};

/// What a handler did with an interrupt.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum IrqReturn {
    /// The interrupt was not from this device.
    None,
    /// The interrupt was handled.
    Handled,
}

/// An interrupt handler. `handle` runs in hard interrupt context: it must not sleep.
pub(crate) trait Handler: Sync {
    /// Handles one interrupt.
    fn handle(&self) -> IrqReturn;
}

/// A Linux IRQ number a bus handed out for a device (e.g. an MSI-X vector of a PCI
/// function), with a reference to whatever keeps the vector allocated; only bus code
/// creates it.
#[derive(Clone)]
pub(crate) struct IrqRequest {
    irq: u32,
    owner: Arc<dyn Any + Send + Sync>,
}

impl IrqRequest {
    /// # Safety
    ///
    /// `irq` must be an interrupt number that stays allocated while `owner` is alive.
    pub(crate) unsafe fn new(irq: u32, owner: Arc<dyn Any + Send + Sync>) -> Self {
        Self { irq, owner }
    }

    /// The Linux IRQ number.
    pub(crate) fn irq(&self) -> u32 {
        self.irq
    }
}

/// A registered handler: `T` is called for every interrupt on the line until drop, which
/// frees the line and waits for running handlers to finish.
///
/// # Invariants
///
/// `handler` is registered with `request_threaded_irq` for `irq`, with the address of
/// `handler` as the cookie, while the object exists.
#[pin_data(PinnedDrop)]
pub(crate) struct Registration<T: Handler + 'static> {
    irq: u32,
    // Keeps the interrupt vector allocated until the handler is freed.
    _owner: Arc<dyn Any + Send + Sync>,
    #[pin]
    handler: Opaque<T>,
    #[pin]
    _pin: PhantomPinned,
}

// SAFETY: the handler is `Sync` and only accessed through shared references.
unsafe impl<T: Handler + Send + 'static> Send for Registration<T> {}
// SAFETY: as above.
unsafe impl<T: Handler + 'static> Sync for Registration<T> {}

impl<T: Handler + 'static> Registration<T> {
    /// Initialises `handler` in place and registers it for `request`.
    pub(crate) fn new(
        request: IrqRequest,
        name: &'static CStr,
        handler: impl PinInit<T, Error>,
    ) -> impl PinInit<Self, Error> {
        let irq = request.irq;
        let init_handler = move |slot: *mut Opaque<T>| {
            let h = Opaque::raw_get(slot);
            // SAFETY: `h` is valid for writes and pinned inside `Self`.
            unsafe { handler.__pinned_init(h) }?;
            // SAFETY: `h` is initialised and pinned; it outlives the registration (freed in
            // `PinnedDrop` before `handler` is dropped); `name` is static.
            let ret = to_result(unsafe {
                bindings::request_threaded_irq(
                    irq,
                    Some(handle_irq_callback::<T>),
                    None,
                    // Vectors may be shared (a function with a single vector serves the
                    // admin queue and an I/O queue with it); every handler says whether
                    // the interrupt was its own.
                    bindings::IRQF_SHARED as _,
                    name.as_char_ptr(),
                    h.cast::<ffi::c_void>(),
                )
            });
            if let Err(e) = ret {
                // SAFETY: `h` was initialised above and is not used any more.
                unsafe { ptr::drop_in_place(h) };
                return Err(e);
            }
            Ok(())
        };
        try_pin_init!(Self {
            irq,
            _owner: request.owner,
            // SAFETY: the closure initialises `handler` completely or cleans up and fails.
            handler <- unsafe { pin_init_from_closure(init_handler) },
            _pin: PhantomPinned,
        })
    }

    /// The registered handler.
    pub(crate) fn handler(&self) -> &T {
        // SAFETY: by the type invariant the handler is initialised until drop.
        unsafe { &*self.handler.get() }
    }

    /// The Linux IRQ number.
    pub(crate) fn irq(&self) -> u32 {
        self.irq
    }
}

#[pinned_drop]
impl<T: Handler + 'static> PinnedDrop for Registration<T> {
    fn drop(self: Pin<&mut Self>) {
        // SAFETY: by the type invariant the handler is registered with this cookie;
        // `free_irq` waits for running handlers, so `handler` is unused afterwards and can be
        // dropped.
        unsafe {
            bindings::free_irq(self.irq, self.handler.get().cast::<ffi::c_void>());
            ptr::drop_in_place(self.handler.get());
        }
    }
}

/// Waits until no handler of interrupt `irq` is running (`synchronize_irq`); returns at once
/// for an unused line.
pub(crate) fn synchronize(irq: u32) {
    // SAFETY: `synchronize_irq` looks the line up and does nothing for an invalid one.
    unsafe { bindings::synchronize_irq(irq) }
}

/// # Safety
///
/// Called by the IRQ core with the cookie registered in [`Registration::new`].
unsafe extern "C" fn handle_irq_callback<T: Handler>(
    _irq: ffi::c_int,
    cookie: *mut ffi::c_void,
) -> bindings::irqreturn_t {
    // SAFETY: the cookie is the address of an initialised, pinned `T` that stays valid until
    // `free_irq` returns (type invariant of `Registration`).
    let handler = unsafe { &*cookie.cast::<T>() };
    match handler.handle() {
        IrqReturn::None => bindings::irqreturn_IRQ_NONE,
        IrqReturn::Handled => bindings::irqreturn_IRQ_HANDLED,
    }
}
