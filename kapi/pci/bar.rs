// SPDX-License-Identifier: GPL-2.0

//! The memory BARs of a PCI function: requested and mapped as a [`Bar`], whose accesses are
//! checked against the mapping, and [`BarReg32`], a register of one whose offset was
//! checked once.
//!
//! C header: [`include/linux/pci.h`](srctree/include/linux/pci.h)

use core::ops::Deref;

use kernel::{error::to_result, ffi, prelude::*, str::CStr, sync::Arc, types::ARef};

use super::device::{valid_bar, Device};
use crate::kapi::{
    bindings::sys,
    device::{Core, Normal},
    io::{Io, IoRaw},
};

impl Device<Core> {
    /// Requests memory BAR `bar` for `name` and maps it. Fails with `EINVAL` if the BAR is
    /// not a memory BAR or is smaller than `SIZE`, `EBUSY` if another driver holds the
    /// region, `ENOMEM` if it cannot be mapped.
    pub(crate) fn iomap_region_sized<const SIZE: usize>(
        &self,
        bar: u32,
        name: &'static CStr,
    ) -> Result<Bar<SIZE>> {
        let num = valid_bar(bar)?;
        if self.resource_flags(num) & sys::IORESOURCE_MEM as ffi::c_ulong == 0 {
            return Err(EINVAL);
        }
        let len = usize::try_from(self.resource_len(bar)?).map_err(|_| EINVAL)?;
        if len < SIZE {
            return Err(EINVAL);
        }

        // SAFETY: the device is valid; `name` is a static NUL-terminated string, as the
        // resource tree keeps the pointer.
        to_result(unsafe { sys::pci_request_region(self.as_raw(), num, name.as_char_ptr()) })?;

        // SAFETY: the region was requested above; `0` maps the whole BAR.
        let ioptr = unsafe { sys::pci_iomap(self.as_raw(), num, 0) };
        if ioptr.is_null() {
            // SAFETY: the region was requested above and is not mapped.
            unsafe { sys::pci_release_region(self.as_raw(), num) };
            return Err(ENOMEM);
        }

        let io = match IoRaw::new(ioptr as usize, len) {
            Ok(io) => io,
            Err(e) => {
                // SAFETY: `ioptr` was mapped and the region requested above.
                unsafe {
                    sys::pci_iounmap(self.as_raw(), ioptr);
                    sys::pci_release_region(self.as_raw(), num);
                }
                return Err(e);
            }
        };

        // INVARIANT: `io` describes the BAR mapped above, which stays mapped and requested
        // until `Bar::drop`.
        Ok(Bar {
            pdev: self.as_normal().into(),
            io,
            num,
        })
    }
}

/// A requested and mapped memory BAR.
///
/// Dereferences to [`Io<SIZE>`]; `SIZE` is the part of the BAR whose accesses are checked at
/// build time. The mapping and the region request are released on drop.
///
/// # Invariants
///
/// `io` describes the mapping of BAR `num` of `pdev`, which stays mapped and requested until
/// drop.
pub(crate) struct Bar<const SIZE: usize = 0> {
    pdev: ARef<Device<Normal>>,
    io: IoRaw<SIZE>,
    num: ffi::c_int,
}

impl<const SIZE: usize> Deref for Bar<SIZE> {
    type Target = Io<SIZE>;

    fn deref(&self) -> &Io<SIZE> {
        // SAFETY: by the type invariant the mapping is valid until drop.
        unsafe { Io::from_raw(&self.io) }
    }
}

/// A 32-bit register of a [`Bar`] whose offset was checked once, when the register was
/// made, so that a write costs no check (a queue doorbell, written for every command).
///
/// # Invariants
///
/// `offset` is aligned and a 32-bit access at it stays within `bar`'s mapping.
pub(crate) struct BarReg32<const SIZE: usize> {
    bar: Arc<Bar<SIZE>>,
    offset: usize,
}

impl<const SIZE: usize> BarReg32<SIZE> {
    /// The register at `offset` of `bar`; `EINVAL` if a 32-bit access there would leave the
    /// mapping or is not aligned.
    pub(crate) fn new(bar: &Arc<Bar<SIZE>>, offset: usize) -> Result<Self> {
        if !bar.valid_offset::<u32>(offset) {
            return Err(EINVAL);
        }
        // INVARIANT: checked above.
        Ok(Self {
            bar: bar.clone(),
            offset,
        })
    }

    /// Writes `value` to the register.
    #[inline(always)]
    pub(crate) fn write(&self, value: u32) {
        // SAFETY: the offset was checked against this BAR's mapping (type invariant).
        unsafe { self.bar.write32_prechecked(value, self.offset) }
    }
}

impl<const SIZE: usize> Drop for Bar<SIZE> {
    fn drop(&mut self) {
        // SAFETY: by the type invariant the BAR is mapped and requested; nothing uses the
        // mapping after this point because `self` is being dropped.
        unsafe {
            sys::pci_iounmap(self.pdev.as_raw(), self.io.addr() as *mut ffi::c_void);
            sys::pci_release_region(self.pdev.as_raw(), self.num);
        }
    }
}
