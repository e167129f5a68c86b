// SPDX-License-Identifier: GPL-2.0

//! Direct (O_DIRECT) access to rnvme's disks and test data patterns.

use std::{
    fs,
    io::{Read, Seek, SeekFrom, Write},
    os::unix::fs::OpenOptionsExt,
};

/// The disk of namespace 1 of the first controller.
pub const DISK: &str = "/dev/rnvme0n1";

/// A deterministic pseudo-random pattern (xorshift), different for every `seed`.
pub fn pattern(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

/// An O_DIRECT handle on the disk with a 4 KiB aligned buffer helper.
pub struct Direct(fs::File);

impl Direct {
    /// Opens [`DISK`] for direct reads and writes.
    pub fn open() -> Result<Self, String> {
        Self::open_path(DISK)
    }

    /// Opens the disk `path` for direct reads and writes.
    pub fn open_path(path: &str) -> Result<Self, String> {
        fs::OpenOptions::new()
            .read(true)
            .write(true)
            .custom_flags(libc::O_DIRECT)
            .open(path)
            .map(Self)
            .map_err(|e| format!("open {path}: {e}"))
    }

    /// Writes `data` at byte `offset`.
    pub fn write_at(&mut self, offset: u64, data: &[u8]) -> Result<(), String> {
        let mut buf = AlignedBuf::new(data.len())?;
        buf.as_mut().copy_from_slice(data);
        self.0
            .seek(SeekFrom::Start(offset))
            .and_then(|_| self.0.write_all(buf.as_mut()))
            .map_err(|e| format!("write {} bytes at {offset}: {e}", data.len()))
    }

    /// Reads `len` bytes at byte `offset`.
    pub fn read_at(&mut self, offset: u64, len: usize) -> Result<Vec<u8>, String> {
        let mut buf = AlignedBuf::new(len)?;
        self.0
            .seek(SeekFrom::Start(offset))
            .and_then(|_| self.0.read_exact(buf.as_mut()))
            .map_err(|e| format!("read {len} bytes at {offset}: {e}"))?;
        Ok(buf.as_mut().to_vec())
    }
}

/// A page-aligned buffer, as O_DIRECT needs.
struct AlignedBuf {
    ptr: *mut u8,
    len: usize,
}

impl AlignedBuf {
    fn new(len: usize) -> Result<Self, String> {
        let mut ptr = std::ptr::null_mut();
        // SAFETY: valid out pointer; alignment is a power of two multiple of the pointer size.
        let rc = unsafe { libc::posix_memalign(&mut ptr, 4096, len.max(1)) };
        if rc != 0 {
            return Err(format!("posix_memalign({len}): {rc}"));
        }
        Ok(Self {
            ptr: ptr.cast(),
            len,
        })
    }

    fn as_mut(&mut self) -> &mut [u8] {
        // SAFETY: `ptr` is a live allocation of `len` bytes owned by `self`.
        unsafe { std::slice::from_raw_parts_mut(self.ptr, self.len) }
    }
}

impl Drop for AlignedBuf {
    fn drop(&mut self) {
        // SAFETY: allocated by posix_memalign in `new`.
        unsafe { libc::free(self.ptr.cast()) };
    }
}
