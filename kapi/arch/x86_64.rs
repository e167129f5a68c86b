// SPDX-License-Identifier: GPL-2.0

//! x86-64: the MMIO accessors and DMA barriers, inline.
//!
//! Each does what the C accessor or barrier compiles to on x86-64, without a call into the
//! C glue: these run for every submission and every completion. The other architectures
//! use `arch/generic.rs`, which offers the same items.

use core::sync::atomic::{compiler_fence, fence, Ordering};

/// A value one MMIO access moves: `u8`, `u16`, `u32` or `u64`, the sizes of the C
/// `readX`/`writeX` accessors.
pub(crate) trait Mmio: Copy {}

impl Mmio for u8 {}
impl Mmio for u16 {}
impl Mmio for u32 {}
impl Mmio for u64 {}

/// Reads a `U` from MMIO address `addr` as the C `readX` does on x86-64: one `mov`
/// between two compiler barriers (the C accessor is an `asm volatile` load with a
/// "memory" clobber), inline, so that a register access costs no call.
///
/// # Safety
///
/// `addr` is a mapped MMIO (or ordinary memory) address, aligned for `U`.
#[inline(always)]
pub(crate) unsafe fn read<U: Mmio>(addr: usize) -> U {
    compiler_fence(Ordering::SeqCst);
    // SAFETY: the caller's guarantee.
    let value = unsafe { (addr as *const U).read_volatile() };
    compiler_fence(Ordering::SeqCst);
    value
}

/// Writes `value` to MMIO address `addr` as the C `writeX` does on x86-64 (see [`read`]),
/// inline, so that a doorbell costs no call. x86 keeps stores in order, so, as in C, the
/// write also comes after every earlier store to memory (the commands a doorbell
/// announces).
///
/// # Safety
///
/// As for [`read`].
#[inline(always)]
pub(crate) unsafe fn write<U: Mmio>(value: U, addr: usize) {
    compiler_fence(Ordering::SeqCst);
    // SAFETY: the caller's guarantee.
    unsafe { (addr as *mut U).write_volatile(value) };
    compiler_fence(Ordering::SeqCst);
}

/// `dma_rmb`: on x86-64 coherent DMA memory is ordered like any other memory, and
/// `dma_rmb` is only a compiler barrier, emitted inline rather than as a call into C (it
/// runs for every completion).
#[inline(always)]
pub(crate) fn dma_rmb() {
    compiler_fence(Ordering::SeqCst);
}

/// `mb`: a sequentially consistent fence, inline (every doorbell update uses it): a locked
/// instruction or `mfence`, either of which orders earlier stores to ordinary (coherent
/// DMA) memory before later loads, all the shadow doorbells need.
#[inline(always)]
pub(crate) fn mb() {
    fence(Ordering::SeqCst);
}

/// `dma_wmb`: on x86-64 only a compiler barrier, emitted inline.
#[inline(always)]
pub(crate) fn dma_wmb() {
    compiler_fence(Ordering::SeqCst);
}
