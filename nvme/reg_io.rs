// SPDX-License-Identifier: GPL-2.0

//! How the typed registers of [`crate::nvme::spec`] reach the hardware: the pure crate
//! defines them over any [`RegisterIo`]; the kernel's MMIO regions ([`Io`]) are one.

use crate::{kapi::io::Io, nvme::spec::register::RegisterIo};

/// Typed registers read and write through the build-time checked accessors: a register outside the compile-time size of the region fails the build.
impl<const SIZE: usize> RegisterIo for Io<SIZE> {
    #[inline(always)]
    fn read_u32(&self, offset: usize) -> u32 {
        self.read32(offset)
    }
    #[inline(always)]
    fn read_u64(&self, offset: usize) -> u64 {
        self.read64(offset)
    }
    #[inline(always)]
    fn write_u32(&self, value: u32, offset: usize) {
        self.write32(value, offset)
    }
    #[inline(always)]
    fn write_u64(&self, value: u64, offset: usize) {
        self.write64(value, offset)
    }
}
