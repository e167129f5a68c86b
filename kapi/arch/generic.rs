// SPDX-License-Identifier: GPL-2.0

//! Every architecture but x86-64: the MMIO accessors and DMA barriers are calls to the C
//! glue (`kapi/glue/helpers.c`), which uses the kernel's own `readX`/`writeX`, `dma_rmb`,
//! `mb` and `dma_wmb`, so the architecture's C code decides. Offers the same items as
//! `arch/x86_64.rs`.

use kernel::ffi;

use crate::kapi::bindings::sys;

/// A value one MMIO access moves: `u8`, `u16`, `u32` or `u64`, each with its C accessors.
pub(crate) trait Mmio: Copy {
    /// The C `readX` for this size.
    ///
    /// # Safety
    ///
    /// As for [`read`].
    unsafe fn c_read(addr: usize) -> Self;

    /// The C `writeX` for this size.
    ///
    /// # Safety
    ///
    /// As for [`read`].
    unsafe fn c_write(self, addr: usize);
}

/// Implements [`Mmio`] for `$type_name` with the C helpers `$read` and `$write`.
macro_rules! impl_mmio {
    ($type_name:ty, $read:ident, $write:ident) => {
        impl Mmio for $type_name {
            #[inline(always)]
            unsafe fn c_read(addr: usize) -> Self {
                // SAFETY: the caller's guarantee: `addr` is mapped and aligned for the type.
                unsafe { sys::$read(addr as *const ffi::c_void) }
            }

            #[inline(always)]
            unsafe fn c_write(self, addr: usize) {
                // SAFETY: as above.
                unsafe { sys::$write(self, addr as *mut ffi::c_void) }
            }
        }
    };
}

impl_mmio!(u8, rnvme_readb, rnvme_writeb);
impl_mmio!(u16, rnvme_readw, rnvme_writew);
impl_mmio!(u32, rnvme_readl, rnvme_writel);
impl_mmio!(u64, rnvme_readq, rnvme_writeq);

/// Reads a `U` from MMIO address `addr` with the C `readX`.
///
/// # Safety
///
/// `addr` is a mapped MMIO (or ordinary memory) address, aligned for `U`.
#[inline(always)]
pub(crate) unsafe fn read<U: Mmio>(addr: usize) -> U {
    // SAFETY: the caller's guarantee.
    unsafe { U::c_read(addr) }
}

/// Writes `value` to MMIO address `addr` with the C `writeX`, which orders it after every
/// earlier store to memory.
///
/// # Safety
///
/// As for [`read`].
#[inline(always)]
pub(crate) unsafe fn write<U: Mmio>(value: U, addr: usize) {
    // SAFETY: the caller's guarantee.
    unsafe { value.c_write(addr) }
}

/// `dma_rmb`, the C macro.
#[inline(always)]
pub(crate) fn dma_rmb() {
    // SAFETY: a memory barrier has no preconditions.
    unsafe { sys::rnvme_dma_rmb() }
}

/// `mb`, the C macro.
#[inline(always)]
pub(crate) fn mb() {
    // SAFETY: a memory barrier has no preconditions.
    unsafe { sys::rnvme_mb() }
}

/// `dma_wmb`, the C macro.
#[inline(always)]
pub(crate) fn dma_wmb() {
    // SAFETY: a memory barrier has no preconditions.
    unsafe { sys::rnvme_dma_wmb() }
}
