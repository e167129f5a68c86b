// SPDX-License-Identifier: GPL-2.0

//! Coherent DMA memory, in the shape of upstream `kernel::dma` (6.15 to 6.18).
//!
//! C header: [`include/linux/dma-mapping.h`](srctree/include/linux/dma-mapping.h)

use core::{marker::PhantomData, mem::size_of, ptr::NonNull};

use kernel::{
    bindings,
    error::to_result,
    prelude::*,
    types::{ARef, AlwaysRefCounted},
};

use super::{
    arch,
    device::{Bound, Device},
    error::eoverflow,
};

/// A DMA addressing limit of `n` bits, for [`Device::dma_set_mask_and_coherent`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct DmaMask(u64);

impl DmaMask {
    /// A mask of the low `N` bits; a mask wider than 64 bits fails the build.
    pub(crate) const fn new<const N: u32>() -> Self {
        const { assert!(N >= 1 && N <= 64, "a DMA mask has 1 to 64 bits") };
        Self(if N == 64 { u64::MAX } else { (1u64 << N) - 1 })
    }

    /// The mask value.
    pub(crate) const fn value(self) -> u64 {
        self.0
    }
}

impl Device<Bound> {
    /// Sets the streaming and the coherent DMA mask of the device.
    pub(crate) fn dma_set_mask_and_coherent(&self, mask: DmaMask) -> Result {
        // SAFETY: the device is valid and bound; setting masks has no other precondition.
        to_result(unsafe { bindings::dma_set_mask(self.as_raw(), mask.value()) })?;
        // SAFETY: as above.
        to_result(unsafe { bindings::dma_set_coherent_mask(self.as_raw(), mask.value()) })
    }

    /// Sets the largest DMA segment the device handles (`dma_set_max_seg_size`); the DMA
    /// layer assumes 64 KiB otherwise.
    pub(crate) fn dma_set_max_seg_size(&self, size: u32) {
        // SAFETY: the device is valid and bound; bus devices (PCI) have `dma_parms`.
        unsafe { super::bindings::sys::rnvme_dma_set_max_seg_size(self.as_raw(), size) }
    }

    /// The largest streaming mapping, in bytes, that the DMA layer makes without extra
    /// cost (`dma_opt_mapping_size`): with an IOMMU, the largest I/O virtual address range
    /// its caches keep; without one, the largest mapping at all (`SIZE_MAX` if unbounded).
    pub(crate) fn dma_opt_mapping_size(&self) -> usize {
        // SAFETY: the device is valid and bound; the call only reads its DMA ops and
        // IOMMU domain.
        unsafe { super::bindings::sys::dma_opt_mapping_size(self.as_raw()) }
    }
}

mod private {
    pub(crate) trait Sealed {}
    impl Sealed for u8 {}
    impl Sealed for u16 {}
    impl Sealed for u32 {}
    impl Sealed for u64 {}
}

/// An element type of a [`CoherentAllocation`]: an integer for which every bit pattern is
/// valid and which has no padding, so reading memory the device wrote is always sound.
pub(crate) trait Element: private::Sealed + Copy + Default {}
impl Element for u8 {}
impl Element for u16 {}
impl Element for u32 {}
impl Element for u64 {}

/// An array of `count` elements of coherent DMA memory, zeroed at allocation and freed on
/// drop.
///
/// The device may write the memory at any time, so the CPU side only accesses it with
/// volatile reads and writes of single elements ([`CoherentAllocation::read`],
/// [`CoherentAllocation::write`]); ordering against the device is the caller's business
/// (`dma_rmb`/`dma_wmb`, doorbell writes).
///
/// # Invariants
///
/// `cpu_addr` points to `count` elements of coherent memory allocated for `dev` with
/// `dma_alloc_attrs`, mapped at bus address `dma_handle`, until drop; `count >= 1` and
/// `count * size_of::<T>()` does not overflow.
pub(crate) struct CoherentAllocation<T: Element> {
    dev: ARef<Device>,
    dma_handle: bindings::dma_addr_t,
    count: usize,
    cpu_addr: NonNull<T>,
    _t: PhantomData<T>,
}

// SAFETY: the allocation is plain memory plus a device reference; accesses are volatile
// element accesses that any thread may perform.
unsafe impl<T: Element> Send for CoherentAllocation<T> {}
// SAFETY: see `Send`; no method hands out references into the memory.
unsafe impl<T: Element> Sync for CoherentAllocation<T> {}

impl<T: Element> CoherentAllocation<T> {
    /// Allocates `count` zeroed elements of coherent memory for `dev` (`GFP_KERNEL`: may
    /// sleep).
    pub(crate) fn alloc_coherent(dev: &Device<Bound>, count: usize) -> Result<Self> {
        if count == 0 {
            return Err(EINVAL);
        }
        let size = count.checked_mul(size_of::<T>()).ok_or_else(eoverflow)?;
        let mut dma_handle: bindings::dma_addr_t = 0;
        // SAFETY: the device is valid and bound; `dma_handle` is valid for writes.
        let cpu = unsafe {
            bindings::dma_alloc_attrs(
                dev.as_raw(),
                size,
                &mut dma_handle,
                bindings::GFP_KERNEL | bindings::__GFP_ZERO,
                0,
            )
        };
        let cpu_addr = NonNull::new(cpu.cast::<T>()).ok_or(ENOMEM)?;
        // INVARIANT: allocated above with `count` elements.
        Ok(Self {
            dev: dev.as_normal().into(),
            dma_handle,
            count,
            cpu_addr,
            _t: PhantomData,
        })
    }

    /// Number of elements.
    pub(crate) fn count(&self) -> usize {
        self.count
    }

    /// Size in bytes.
    pub(crate) fn size(&self) -> usize {
        self.count * size_of::<T>()
    }

    /// The bus address of the first element, for the device.
    pub(crate) fn dma_handle(&self) -> u64 {
        self.dma_handle
    }

    /// The bus address of element `index`, or `EINVAL` past the end.
    pub(crate) fn dma_handle_with_offset(&self, index: usize) -> Result<u64> {
        if index >= self.count {
            return Err(EINVAL);
        }
        Ok(self.dma_handle + (index * size_of::<T>()) as u64)
    }

    /// Reads element `index` (volatile); `EINVAL` past the end.
    pub(crate) fn read(&self, index: usize) -> Result<T> {
        if index >= self.count {
            return Err(EINVAL);
        }
        // SAFETY: `index < count`, so the element lies in the allocation (type invariant);
        // every bit pattern is a valid `T` (`Element`).
        Ok(unsafe { self.cpu_addr.as_ptr().add(index).read_volatile() })
    }

    /// Writes element `index` (volatile); `EINVAL` past the end.
    pub(crate) fn write(&self, index: usize, value: T) -> Result {
        if index >= self.count {
            return Err(EINVAL);
        }
        // SAFETY: `index < count`, so the element lies in the allocation (type invariant).
        unsafe { self.cpu_addr.as_ptr().add(index).write_volatile(value) };
        Ok(())
    }

    /// Checks that the `len` elements from `index` on lie in the allocation
    /// (`index + len <= count`); `EINVAL` if they do not.
    fn check_range(&self, index: usize, len: usize) -> Result {
        match index.checked_add(len) {
            Some(end) if end <= self.count => Ok(()),
            _ => Err(EINVAL),
        }
    }

    /// Copies `out.len()` elements starting at `index` into `out` (volatile, one bounds
    /// check); `EINVAL` if they do not all lie in the allocation.
    pub(crate) fn read_into(&self, index: usize, out: &mut [T]) -> Result {
        self.check_range(index, out.len())?;
        for (i, slot) in out.iter_mut().enumerate() {
            // SAFETY: `index + i < index + out.len() <= count` (checked above), so the
            // element lies in the allocation (type invariant); every bit pattern is a
            // valid `T` (`Element`).
            *slot = unsafe { self.cpu_addr.as_ptr().add(index + i).read_volatile() };
        }
        Ok(())
    }

    /// Copies `data` into the elements starting at `index` (volatile, one bounds check);
    /// `EINVAL` if they do not all lie in the allocation.
    pub(crate) fn write_from(&self, index: usize, data: &[T]) -> Result {
        self.check_range(index, data.len())?;
        for (i, v) in data.iter().enumerate() {
            // SAFETY: `index + i < index + data.len() <= count` (checked above), so the
            // element lies in the allocation (type invariant).
            unsafe { self.cpu_addr.as_ptr().add(index + i).write_volatile(*v) };
        }
        Ok(())
    }

    /// Copies `data` into the elements starting at `index` with one plain `memcpy`, as C
    /// drivers fill descriptors in coherent memory (upstream's `CoherentAllocation::write`
    /// copies the same way): for a submission queue entry that is eight 64-bit stores
    /// instead of sixteen volatile 32-bit ones. The device must not read the elements
    /// until a later doorbell write, which is ordered after the copy, announces them.
    /// `EINVAL` if they do not all lie in the allocation.
    pub(crate) fn copy_from(&self, index: usize, data: &[T]) -> Result {
        self.check_range(index, data.len())?;
        // SAFETY: `index + data.len() <= count` (checked above), so the destination lies in
        // the allocation (type invariant); `data` is a separate Rust slice, so the two do
        // not overlap; the device does not access the elements until told to (the caller's
        // contract), so no one else touches them during the copy.
        unsafe {
            core::ptr::copy_nonoverlapping(
                data.as_ptr(),
                self.cpu_addr.as_ptr().add(index),
                data.len(),
            )
        };
        Ok(())
    }
}

impl<T: Element> Drop for CoherentAllocation<T> {
    fn drop(&mut self) {
        // SAFETY: by the type invariant the memory was allocated for `dev` with this size
        // and handle, and nothing accesses it after this point.
        unsafe {
            bindings::dma_free_attrs(
                self.dev.as_raw(),
                self.size(),
                self.cpu_addr.as_ptr().cast(),
                self.dma_handle,
                0,
            )
        };
    }
}

// SAFETY: `get_device`/`put_device` manage the refcount of a `struct device`.
unsafe impl AlwaysRefCounted for Device {
    fn inc_ref(&self) {
        // SAFETY: the device is valid, so its refcount is non-zero.
        unsafe { bindings::get_device(self.as_raw()) };
    }

    unsafe fn dec_ref(obj: NonNull<Self>) {
        // SAFETY: the caller owns a reference.
        unsafe { bindings::put_device(obj.cast::<bindings::device>().as_ptr()) }
    }
}

/// Read barrier between reading a descriptor the device wrote (its "new" marker) and the
/// rest of it (`dma_rmb`).
///
/// On x86-64 coherent DMA memory is ordered like any other memory, and `dma_rmb` is only
/// a compiler barrier; it is emitted inline rather than as a call into C (this runs for
/// every completion). Elsewhere the C macro decides. See [`arch::dma_rmb`].
pub(crate) fn dma_rmb() {
    arch::dma_rmb();
}

/// Full memory barrier (`mb`), ordering earlier stores before later loads.
///
/// On x86-64 a sequentially consistent fence is emitted inline (every doorbell update uses
/// it): a locked instruction or `mfence`, either of which orders earlier stores to
/// ordinary (coherent DMA) memory before later loads, all the shadow doorbells need.
/// Elsewhere the C macro decides. See [`arch::mb`].
pub(crate) fn mb() {
    arch::mb();
}

/// Write barrier between filling a descriptor and handing it to the device by another
/// memory write (`dma_wmb`); MMIO doorbell writes (`writel`) already order themselves
/// after prior memory writes.
///
/// On x86-64 `dma_wmb` is only a compiler barrier, emitted inline; elsewhere the C macro
/// decides. See [`arch::dma_wmb`].
pub(crate) fn dma_wmb() {
    arch::dma_wmb();
}

/// A pool of small, equally sized coherent DMA blocks (`dma_pool`), e.g. NVMe PRP lists.
///
/// # Invariants
///
/// `pool` was created by `dma_pool_create` for `dev` and is destroyed on drop, after every
/// block (each holds a reference to the pool) is freed.
pub(crate) struct DmaPool {
    pool: NonNull<super::bindings::sys::dma_pool>,
    block_size: usize,
    _dev: ARef<Device>,
}

// SAFETY: `dma_pool` functions lock internally.
unsafe impl Send for DmaPool {}
// SAFETY: as above.
unsafe impl Sync for DmaPool {}

impl DmaPool {
    /// Creates a pool named `name` of `block_size`-byte blocks aligned to `align` bytes.
    pub(crate) fn new(
        dev: &Device<Bound>,
        name: &'static kernel::str::CStr,
        block_size: usize,
        align: usize,
    ) -> Result<kernel::sync::Arc<Self>> {
        // SAFETY: the device is valid and bound; `name` is static.
        let pool = unsafe {
            super::bindings::sys::dma_pool_create(
                name.as_char_ptr(),
                dev.as_raw(),
                block_size,
                align,
                0,
            )
        };
        let pool = NonNull::new(pool).ok_or(ENOMEM)?;
        // INVARIANT: created above.
        Ok(kernel::sync::Arc::new(
            Self {
                pool,
                block_size,
                _dev: dev.as_normal().into(),
            },
            GFP_KERNEL,
        )?)
    }

    /// Allocates a block without sleeping (`GFP_ATOMIC`).
    pub(crate) fn alloc_atomic(self: &kernel::sync::Arc<Self>) -> Result<DmaPoolBlock> {
        let mut dma_handle: bindings::dma_addr_t = 0;
        // SAFETY: the pool is valid (type invariant); `dma_handle` is valid for writes.
        let cpu = unsafe {
            super::bindings::sys::dma_pool_alloc(
                self.pool.as_ptr(),
                bindings::GFP_ATOMIC,
                &mut dma_handle,
            )
        };
        let cpu = NonNull::new(cpu.cast::<u64>()).ok_or(ENOMEM)?;
        // INVARIANT: allocated from `pool` above.
        Ok(DmaPoolBlock {
            pool: self.clone(),
            cpu,
            dma_handle,
        })
    }

    /// Allocates a block without sleeping and lets `fill` write its entries in place,
    /// before the block's bus address is known to anyone, so the device cannot be using
    /// it yet. The entries hold what the block last held; `fill` writes the ones it uses
    /// (as little-endian values, which the device reads).
    pub(crate) fn alloc_atomic_filled<R>(
        self: &kernel::sync::Arc<Self>,
        fill: impl FnOnce(&mut [u64]) -> R,
    ) -> Result<(DmaPoolBlock, R)> {
        let block = self.alloc_atomic()?;
        // SAFETY: the block is `len()` `u64` entries of memory owned by `block` (type
        // invariant) and initialised (pool pages come zeroed from `dma_alloc_coherent`,
        // and blocks only ever hold plain values). Its bus address has not been handed
        // out, so neither the device nor other code accesses it during this borrow.
        let entries = unsafe { core::slice::from_raw_parts_mut(block.cpu.as_ptr(), block.len()) };
        let r = fill(entries);
        Ok((block, r))
    }
}

impl Drop for DmaPool {
    fn drop(&mut self) {
        // SAFETY: created by `dma_pool_create`; no block is left (each holds a reference).
        unsafe { super::bindings::sys::dma_pool_destroy(self.pool.as_ptr()) };
    }
}

/// A block of a [`DmaPool`], viewed as `u64` entries; freed on drop.
///
/// # Invariants
///
/// `cpu`/`dma_handle` is a live block of `pool`.
pub(crate) struct DmaPoolBlock {
    pool: kernel::sync::Arc<DmaPool>,
    cpu: NonNull<u64>,
    dma_handle: bindings::dma_addr_t,
}

// SAFETY: the block is plain memory owned by this object.
unsafe impl Send for DmaPoolBlock {}

impl DmaPoolBlock {
    /// The bus address of the block.
    pub(crate) fn dma_handle(&self) -> u64 {
        self.dma_handle
    }

    /// Number of `u64` entries in the block.
    pub(crate) fn len(&self) -> usize {
        self.pool.block_size / size_of::<u64>()
    }

    /// Writes `entries` (as little-endian values) at the start of the block.
    pub(crate) fn write_le(&self, entries: &[u64]) -> Result {
        if entries.len() > self.len() {
            return Err(EINVAL);
        }
        for (i, e) in entries.iter().enumerate() {
            // SAFETY: `i < len`, inside the block (type invariant).
            unsafe { self.cpu.as_ptr().add(i).write_volatile(e.to_le()) };
        }
        Ok(())
    }
}

impl Drop for DmaPoolBlock {
    fn drop(&mut self) {
        // SAFETY: a live block of `pool` (type invariant), not used after this.
        unsafe {
            super::bindings::sys::dma_pool_free(
                self.pool.pool.as_ptr(),
                self.cpu.as_ptr().cast(),
                self.dma_handle,
            )
        };
    }
}
