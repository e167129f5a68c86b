// SPDX-License-Identifier: GPL-2.0

//! `VFIO_DEVICE_FEATURE` (`include/uapi/linux/vfio.h`), the one ioctl through which a VMM
//! reaches a device's migration (`vfio_migration.rs`) and its dirty tracking
//! (`vfio_dirty.rs`). `rust-vmm`'s crates do not wrap it, so it is a raw ioctl here.

use std::{io, os::fd::AsRawFd};

/// `VFIO_DEVICE_FEATURE`: `_IO(';', 100 + 17)`.
const VFIO_DEVICE_FEATURE: u64 = (b';' as u64) << 8 | 117;
/// Read the feature's data.
pub const GET: u32 = 1 << 16;
/// Write the feature's data.
pub const SET: u32 = 1 << 17;
/// Only ask whether the device supports the feature with `GET` or `SET`.
pub const PROBE: u32 = 1 << 18;

/// `struct vfio_device_feature` with a payload of `N` 64-bit words.
#[repr(C)]
struct Feature<const N: usize> {
    argsz: u32,
    flags: u32,
    data: [u64; N],
}

/// Runs `VFIO_DEVICE_FEATURE` on `device` with `flags` (the feature and `GET`, `SET` or
/// `PROBE`) and the payload `data`; returns the payload as the kernel left it.
pub fn feature<const N: usize>(
    device: &impl AsRawFd,
    flags: u32,
    data: [u64; N],
) -> io::Result<[u64; N]> {
    let mut f = Feature {
        argsz: (8 + 8 * N) as u32,
        flags,
        data,
    };
    // SAFETY: `f` is a valid `vfio_device_feature` of `argsz` bytes, which is all the
    // kernel reads and writes; whatever the payload points to (ranges, a bitmap) is owned
    // by the caller and outlives the call.
    let r = unsafe {
        libc::ioctl(
            device.as_raw_fd(),
            VFIO_DEVICE_FEATURE as _,
            &mut f as *mut Feature<N>,
        )
    };
    if r < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(f.data)
}
