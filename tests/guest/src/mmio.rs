// SPDX-License-Identifier: GPL-2.0

//! Reading a PCI function's BAR from userspace through sysfs `resourceN`, to cross-check
//! what the driver reports.

use std::{fs::OpenOptions, os::fd::AsRawFd, path::Path, ptr};

/// A read-only mapping of the first bytes of a sysfs PCI resource file.
pub struct BarMap {
    base: *mut libc::c_void,
    len: usize,
}

impl BarMap {
    /// Maps the first `len` bytes (a multiple of the page size) of `resource_file`.
    pub fn open(resource_file: &Path, len: usize) -> Result<Self, String> {
        let f = OpenOptions::new()
            .read(true)
            .write(true)
            .open(resource_file)
            .map_err(|e| format!("open {}: {e}", resource_file.display()))?;
        // SAFETY: mapping a device resource file with a valid fd; the result is checked.
        let base = unsafe {
            libc::mmap(
                ptr::null_mut(),
                len,
                libc::PROT_READ,
                libc::MAP_SHARED,
                f.as_raw_fd(),
                0,
            )
        };
        if base == libc::MAP_FAILED {
            return Err(format!(
                "mmap {}: {}",
                resource_file.display(),
                std::io::Error::last_os_error()
            ));
        }
        Ok(Self { base, len })
    }

    /// Reads the 32-bit register at `offset`.
    pub fn read32(&self, offset: usize) -> Result<u32, String> {
        if !offset.is_multiple_of(4) || offset + 4 > self.len {
            return Err(format!("bad offset {offset:#x}"));
        }
        // SAFETY: in bounds and aligned (checked above) within a live mapping.
        Ok(unsafe { ptr::read_volatile(self.base.cast::<u8>().add(offset).cast::<u32>()) })
    }

    /// Reads the 64-bit register at `offset` as two 32-bit reads, low half first (the NVMe
    /// spec allows 64-bit registers to be read that way).
    pub fn read64(&self, offset: usize) -> Result<u64, String> {
        Ok(u64::from(self.read32(offset)?) | (u64::from(self.read32(offset + 4)?) << 32))
    }
}

impl Drop for BarMap {
    fn drop(&mut self) {
        // SAFETY: unmapping the mapping created in `open`.
        unsafe { libc::munmap(self.base, self.len) };
    }
}
