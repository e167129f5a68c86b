// SPDX-License-Identifier: GPL-2.0

//! The VFIO device dirty tracking uAPI as a VMM uses it (`include/uapi/linux/vfio.h`):
//! `VFIO_DEVICE_FEATURE` with `DMA_LOGGING_START` (the IOVA ranges to track and the page
//! size), `DMA_LOGGING_STOP` and `DMA_LOGGING_REPORT` (a bitmap of the pages written in a
//! window, cleared as it is read), through [`crate::vfio_feature`].

use std::{io, os::fd::AsRawFd};

use crate::vfio_feature::{feature, GET, PROBE, SET};

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

/// Whether the device tracks the DMA it does (`PROBE` of `DMA_LOGGING_START`); `ENOTTY`
/// if it does not, which is what makes QEMU refuse to migrate it without
/// `enable-migration=on`.
pub fn probe(device: &impl AsRawFd) -> io::Result<()> {
    feature(device, PROBE | SET | FEATURE_DMA_LOGGING_START, [0u64; 0]).map(|_| ())
}

/// Starts tracking `ranges` at pages of `page_size` bytes (`DMA_LOGGING_START`).
pub fn start(device: &impl AsRawFd, page_size: u64, ranges: &[Range]) -> io::Result<()> {
    let count =
        u32::try_from(ranges.len()).map_err(|_| io::Error::from_raw_os_error(libc::E2BIG))?;
    feature(
        device,
        SET | FEATURE_DMA_LOGGING_START,
        [page_size, u64::from(count), ranges.as_ptr() as u64],
    )
    .map(|_| ())
}

/// Stops tracking (`DMA_LOGGING_STOP`).
pub fn stop(device: &impl AsRawFd) -> io::Result<()> {
    feature(device, SET | FEATURE_DMA_LOGGING_STOP, [0u64; 0]).map(|_| ())
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
        GET | FEATURE_DMA_LOGGING_REPORT,
        [iova, length, page_size, bitmap.as_mut_ptr() as u64],
    )?;
    Ok((0..pages)
        .filter(|p| bitmap[(p / 64) as usize] & (1 << (p % 64)) != 0)
        .map(|p| iova + p * page_size)
        .collect())
}
