// SPDX-License-Identifier: GPL-2.0

//! The VFIO device dirty tracking uAPI as a VMM uses it (`include/uapi/linux/vfio.h`):
//! `VFIO_DEVICE_FEATURE` with `DMA_LOGGING_START` (the IOVA ranges to track and the page
//! size), `DMA_LOGGING_STOP` and `DMA_LOGGING_REPORT` (a bitmap of the pages written in a
//! window, cleared as it is read). `rust-vmm`'s crates do not wrap these, so they are raw
//! ioctls here, as in `vfio_migration.rs`.

use std::{io, os::fd::AsRawFd};

/// `VFIO_DEVICE_FEATURE`: `_IO(';', 100 + 17)`.
const VFIO_DEVICE_FEATURE: u64 = (b';' as u64) << 8 | 117;
const FEATURE_GET: u32 = 1 << 16;
const FEATURE_SET: u32 = 1 << 17;
const FEATURE_PROBE: u32 = 1 << 18;
const FEATURE_DMA_LOGGING_START: u32 = 6;
const FEATURE_DMA_LOGGING_STOP: u32 = 7;
const FEATURE_DMA_LOGGING_REPORT: u32 = 8;

/// `struct vfio_device_feature_dma_logging_range`.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Range {
    /// First IOVA of the range.
    pub iova: u64,
    /// Bytes in the range.
    pub length: u64,
}

/// `struct vfio_device_feature` with a payload of `N` 64-bit words.
#[repr(C)]
struct Feature<const N: usize> {
    argsz: u32,
    flags: u32,
    data: [u64; N],
}

/// Runs `VFIO_DEVICE_FEATURE` with `flags` and `data` on `device`.
fn feature<const N: usize>(device: &impl AsRawFd, flags: u32, data: [u64; N]) -> io::Result<()> {
    let mut f = Feature {
        argsz: (8 + 8 * N) as u32,
        flags,
        data,
    };
    // SAFETY: `f` is a valid `vfio_device_feature` of `argsz` bytes; whatever it points to
    // (ranges, a bitmap) is owned by the caller and outlives the call.
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
    Ok(())
}

/// Whether the device tracks the DMA it does (`PROBE` of `DMA_LOGGING_START`); `ENOTTY`
/// if it does not, which is what makes QEMU refuse to migrate it without
/// `enable-migration=on`.
pub fn probe(device: &impl AsRawFd) -> io::Result<()> {
    feature(
        device,
        FEATURE_PROBE | FEATURE_SET | FEATURE_DMA_LOGGING_START,
        [0u64; 0],
    )
}

/// Starts tracking `ranges` at pages of `page_size` bytes (`DMA_LOGGING_START`).
pub fn start(device: &impl AsRawFd, page_size: u64, ranges: &[Range]) -> io::Result<()> {
    let count =
        u32::try_from(ranges.len()).map_err(|_| io::Error::from_raw_os_error(libc::E2BIG))?;
    feature(
        device,
        FEATURE_SET | FEATURE_DMA_LOGGING_START,
        [page_size, u64::from(count), ranges.as_ptr() as u64],
    )
}

/// Stops tracking (`DMA_LOGGING_STOP`).
pub fn stop(device: &impl AsRawFd) -> io::Result<()> {
    feature(device, FEATURE_SET | FEATURE_DMA_LOGGING_STOP, [0u64; 0])
}

/// The pages of `page_size` bytes written in `iova..iova + length` since the last report
/// (`DMA_LOGGING_REPORT`), as their IOVAs in increasing order.
pub fn report(
    device: &impl AsRawFd,
    iova: u64,
    length: u64,
    page_size: u64,
) -> io::Result<Vec<u64>> {
    let pages = length.div_ceil(page_size.max(1));
    let mut bitmap = vec![0u64; pages.div_ceil(64) as usize];
    feature(
        device,
        FEATURE_GET | FEATURE_DMA_LOGGING_REPORT,
        [iova, length, page_size, bitmap.as_mut_ptr() as u64],
    )?;
    Ok((0..pages)
        .filter(|p| bitmap[(p / 64) as usize] & (1 << (p % 64)) != 0)
        .map(|p| iova + p * page_size)
        .collect())
}
