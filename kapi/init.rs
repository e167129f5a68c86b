// SPDX-License-Identifier: GPL-2.0

//! Initialisation helpers that 6.12's pin-init lacks.

use kernel::{init::pin_init_from_closure, prelude::*};

/// Runs `f` and then the initialiser it returns, as one initialiser: fallible set-up work
/// (enabling a device, mapping a BAR) can use `?` before the fields are initialised.
///
/// A backport of upstream pin-init's `pin_init_scope`.
pub(crate) fn pin_init_scope<T, E, I, F>(f: F) -> impl PinInit<T, E>
where
    I: PinInit<T, E>,
    F: FnOnce() -> Result<I, E>,
{
    // SAFETY: the closure either initialises `slot` completely through `I` (whose contract
    // guarantees it) or returns the error from `f` or `I`, in which case `I` has cleaned up
    // and `slot` is untouched.
    unsafe {
        pin_init_from_closure(move |slot: *mut T| {
            let init = f()?;
            init.__pinned_init(slot)
        })
    }
}
