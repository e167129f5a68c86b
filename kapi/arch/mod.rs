// SPDX-License-Identifier: GPL-2.0

//! The architecture-specific code of the kernel API layer: the MMIO accessors and the DMA
//! barriers under [`super::io`] and [`super::dma`].
//!
//! On x86-64 (`arch/x86_64.rs`) they are emitted inline, as the C accessors and barriers
//! compile there, so that the I/O path (a doorbell write per submission, a read barrier per
//! completion) makes no call into C. On every other architecture (`arch/generic.rs`) they
//! call the C accessors and barriers of the glue (`kapi/glue/helpers.c`). Both files offer
//! the same items, re-exported here: `read` and `write` (of a `u8`, `u16`, `u32` or `u64`, the
//! types with an `Mmio` implementation), `dma_rmb`, `mb` and `dma_wmb`.
//! No other file of the module has code for one architecture.

#[cfg(not(target_arch = "x86_64"))]
mod generic;
#[cfg(target_arch = "x86_64")]
mod x86_64;

#[cfg(not(target_arch = "x86_64"))]
pub(crate) use generic::{dma_rmb, dma_wmb, mb, read, write};
#[cfg(target_arch = "x86_64")]
pub(crate) use x86_64::{dma_rmb, dma_wmb, mb, read, write};
