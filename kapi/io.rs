// SPDX-License-Identifier: GPL-2.0

//! Memory-mapped I/O, in the shape of upstream `kernel::io` (6.14 to 6.18).
//!
//! C header: [`include/asm-generic/io.h`](srctree/include/asm-generic/io.h)
//!
//! Each access is one [`arch::read`] or [`arch::write`]: inline on x86-64, the C accessor
//! (`readl`, `writel`, ...) elsewhere.

use kernel::{build_assert, prelude::*};

use super::arch;

/// Raw representation of an MMIO region: its base address and its size in bytes.
///
/// `SIZE` is the size known at compile time: accessors with a constant offset below `SIZE`
/// are checked at build time. `maxsize` is the real size, checked at run time by the `try_*`
/// accessors.
///
/// # Invariants
///
/// `maxsize >= SIZE`.
#[derive(Clone, Copy)]
pub(crate) struct IoRaw<const SIZE: usize = 0> {
    addr: usize,
    maxsize: usize,
}

impl<const SIZE: usize> IoRaw<SIZE> {
    /// Describes the region at `addr` of `maxsize` bytes; fails with `EINVAL` when the region
    /// is smaller than the compile-time size `SIZE`.
    pub(crate) fn new(addr: usize, maxsize: usize) -> Result<Self> {
        if maxsize < SIZE {
            return Err(EINVAL);
        }
        // INVARIANT: checked above.
        Ok(Self { addr, maxsize })
    }

    /// Base address of the region.
    pub(crate) fn addr(&self) -> usize {
        self.addr
    }

    /// Size of the region in bytes.
    pub(crate) fn maxsize(&self) -> usize {
        self.maxsize
    }
}

/// An MMIO region with bounds-checked, typed accessors.
///
/// Accessors take the value first and the byte offset second, like upstream:
/// `io.write32(value, offset)`. `readN`/`writeN` check the offset against `SIZE` at build time
/// (a bad constant offset fails the build); `try_readN`/`try_writeN` check against the
/// region's real size at run time and return `EINVAL` when the access would leave the region
/// or is misaligned.
///
/// # Invariants
///
/// `addr .. addr + maxsize` is a valid, mapped MMIO region for the lifetime of the `Io`.
#[repr(transparent)]
pub(crate) struct Io<const SIZE: usize = 0>(IoRaw<SIZE>);

macro_rules! define_read {
    ($(#[$attr:meta])* $name:ident, $try_name:ident -> $type_name:ty) => {
        $(#[$attr])*
        #[inline(always)]
        pub(crate) fn $name(&self, offset: usize) -> $type_name {
            // By the type invariant `addr` lies within the mapped region, and the build-time
            // check made sure the access is in bounds and aligned.
            let addr = self.io_addr_assert::<$type_name>(offset);
            // SAFETY: `addr` is mapped and aligned for the type, as said above.
            unsafe { arch::read::<$type_name>(addr) }
        }

        /// Like the infallible variant, but checks the offset at run time.
        #[inline]
        pub(crate) fn $try_name(&self, offset: usize) -> Result<$type_name> {
            // `io_addr` checked bounds and alignment against the mapped size.
            let addr = self.io_addr::<$type_name>(offset)?;
            // SAFETY: `addr` is mapped and aligned for the type, as said above.
            Ok(unsafe { arch::read::<$type_name>(addr) })
        }
    };
}

macro_rules! define_write {
    ($(#[$attr:meta])* $name:ident, $try_name:ident <- $type_name:ty) => {
        $(#[$attr])*
        #[inline(always)]
        pub(crate) fn $name(&self, value: $type_name, offset: usize) {
            // By the type invariant `addr` lies within the mapped region, and the build-time
            // check made sure the access is in bounds and aligned.
            let addr = self.io_addr_assert::<$type_name>(offset);
            // SAFETY: `addr` is mapped and aligned for the type, as said above.
            unsafe { arch::write::<$type_name>(value, addr) };
        }

        /// Like the infallible variant, but checks the offset at run time.
        #[inline]
        pub(crate) fn $try_name(&self, value: $type_name, offset: usize) -> Result {
            // `io_addr` checked bounds and alignment against the mapped size.
            let addr = self.io_addr::<$type_name>(offset)?;
            // SAFETY: `addr` is mapped and aligned for the type, as said above.
            unsafe { arch::write::<$type_name>(value, addr) };
            Ok(())
        }
    };
}

impl<const SIZE: usize> Io<SIZE> {
    /// Converts an [`IoRaw`] into an [`Io`] reference.
    ///
    /// # Safety
    ///
    /// `raw` must describe a valid MMIO mapping (`addr .. addr + maxsize`) that stays mapped
    /// for the lifetime of the returned reference.
    pub(crate) unsafe fn from_raw(raw: &IoRaw<SIZE>) -> &Self {
        // SAFETY: `Io` is a transparent wrapper around `IoRaw`.
        unsafe { &*core::ptr::from_ref(raw).cast::<Self>() }
    }

    /// Base address of the region.
    pub(crate) fn addr(&self) -> usize {
        self.0.addr()
    }

    /// Size of the region in bytes, as mapped.
    pub(crate) fn maxsize(&self) -> usize {
        self.0.maxsize()
    }

    /// Whether an access of type `U` at `offset` stays within `size` bytes and is aligned.
    #[inline(always)]
    const fn offset_valid<U>(offset: usize, size: usize) -> bool {
        let type_size = core::mem::size_of::<U>();
        // `offset + type_size <= size` without the addition (which could wrap), and aligned.
        size >= type_size && offset <= size - type_size && offset % type_size == 0
    }

    #[inline(always)]
    fn io_addr_assert<U>(&self, offset: usize) -> usize {
        build_assert!(Self::offset_valid::<U>(offset, SIZE));
        self.addr() + offset
    }

    /// Whether a `U` at `offset` lies within the mapped region and is aligned, as the
    /// run-time checked accessors require.
    #[inline]
    pub(crate) fn valid_offset<U>(&self, offset: usize) -> bool {
        Self::offset_valid::<U>(offset, self.maxsize())
    }

    /// Writes a 32-bit little-endian value at `offset` without checking it.
    ///
    /// # Safety
    ///
    /// [`Self::valid_offset::<u32>`] is true for `offset`.
    #[inline(always)]
    pub(crate) unsafe fn write32_prechecked(&self, value: u32, offset: usize) {
        // Cannot wrap: `offset < maxsize` (the caller's guarantee) and `addr + maxsize`
        // does not overflow (`Self::from_raw`).
        let addr = self.addr().wrapping_add(offset);
        // SAFETY: `addr` lies within the mapped region and is aligned for `u32`, by the
        // caller's guarantee.
        unsafe { arch::write::<u32>(value, addr) };
    }

    #[inline]
    fn io_addr<U>(&self, offset: usize) -> Result<usize> {
        if !Self::offset_valid::<U>(offset, self.maxsize()) {
            return Err(EINVAL);
        }
        // Cannot wrap: `offset < maxsize`, and the safety requirements of `Self::from_raw`
        // guarantee that `addr + maxsize` does not overflow.
        Ok(self.addr().wrapping_add(offset))
    }

    define_read!(
        /// Reads a byte at `offset`.
        read8, try_read8 -> u8
    );
    define_read!(
        /// Reads a 16-bit little-endian value at `offset`.
        read16, try_read16 -> u16
    );
    define_read!(
        /// Reads a 32-bit little-endian value at `offset`.
        read32, try_read32 -> u32
    );
    define_read!(
        /// Reads a 64-bit little-endian value at `offset`.
        read64, try_read64 -> u64
    );
    define_write!(
        /// Writes a byte at `offset`.
        write8, try_write8 <- u8
    );
    define_write!(
        /// Writes a 16-bit little-endian value at `offset`.
        write16, try_write16 <- u16
    );
    define_write!(
        /// Writes a 32-bit little-endian value at `offset`.
        write32, try_write32 <- u32
    );
    define_write!(
        /// Writes a 64-bit little-endian value at `offset`.
        write64, try_write64 <- u64
    );
}

#[cfg(CONFIG_KUNIT)]
crate::kapi::kunit::kunit_tests!(rnvme_kapi_io, {
    fn io_raw_rejects_regions_smaller_than_size() {
        assert!(IoRaw::<64>::new(0x1000, 32).is_err());
        assert!(IoRaw::<64>::new(0x1000, 64).is_ok());
        assert!(IoRaw::<0>::new(0x1000, 0).is_ok());
    }

    fn try_accessors_check_bounds() {
        with_fake_io(|io| {
            assert!(io.try_write32(0xdead_beef, 60).is_ok());
            assert_eq!(io.try_read32(60), Ok(0xdead_beef));
            assert_eq!(io.try_read32(64), Err(EINVAL));
            assert_eq!(io.try_read64(60), Err(EINVAL));
            assert_eq!(io.try_read8(63), Ok(0xde));
            assert_eq!(io.try_read8(64), Err(EINVAL));
            assert_eq!(io.try_write32(0, usize::MAX - 1), Err(EINVAL));
            // Aligned, and `offset + 4` would wrap to 0.
            assert_eq!(io.try_write32(0, usize::MAX - 3), Err(EINVAL));
            assert_eq!(io.try_read64(usize::MAX - 7), Err(EINVAL));
        });
    }

    fn try_accessors_check_alignment() {
        with_fake_io(|io| {
            assert_eq!(io.try_read32(2), Err(EINVAL));
            assert_eq!(io.try_read64(4), Err(EINVAL));
            assert!(io.try_read16(2).is_ok());
            assert_eq!(io.try_write16(1, 3), Err(EINVAL));
        });
    }

    fn accessors_are_little_endian_and_hit_memory() {
        with_fake_io(|io| {
            io.write64(0x1122_3344_5566_7788, 8);
            assert_eq!(io.read32(8), 0x5566_7788);
            assert_eq!(io.read32(12), 0x1122_3344);
            assert_eq!(io.read16(14), 0x1122);
            assert_eq!(io.read8(8), 0x88);
            io.write8(0xff, 9);
            assert_eq!(io.read64(8), 0x1122_3344_5566_ff88);
        });
    }
});

/// Runs `f` on an [`Io`] over 64 bytes of zeroed kernel memory, for KUnit tests of code
/// that reads and writes registers.
#[cfg(CONFIG_KUNIT)]
pub(crate) fn with_fake_io(f: impl FnOnce(&Io<64>)) {
    let Ok(mem) = KBox::new([0u64; 8], GFP_KERNEL) else {
        crate::kapi::kunit::fail(
            kernel::c_str!(file!()),
            line!(),
            format_args!("cannot allocate the fake MMIO region"),
        );
        return;
    };
    let addr = core::ptr::from_ref(&*mem) as usize;
    let Ok(raw) = IoRaw::<64>::new(addr, 64) else {
        crate::kapi::kunit::fail(kernel::c_str!(file!()), line!(), format_args!("IoRaw::new"));
        return;
    };
    // SAFETY: `raw` describes 64 bytes of ordinary kernel memory owned by `mem`, which outlives
    // the reference; `readl`/`writel` and friends work on ordinary memory on x86.
    f(unsafe { Io::from_raw(&raw) });
    drop(mem);
}
