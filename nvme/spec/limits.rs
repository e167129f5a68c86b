// SPDX-License-Identifier: GPL-2.0

//! The size limits of one block request: the smallest of what the controller (MDTS), the
//! DMA layer and the driver's own mapping take.

/// How large one request may be.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RequestLimits {
    /// Largest transfer in bytes; a multiple of the controller page size.
    pub max_transfer: u32,
    /// Most data segments: one per controller page of `max_transfer`, plus one for data
    /// that does not start on a page boundary.
    pub max_segments: u16,
}

impl RequestLimits {
    /// The limits for a controller whose Maximum Data Transfer Size is `mdts` bytes
    /// (`None`: no limit), on a device whose DMA mappings are cheapest up to `dma_opt`
    /// bytes (`dma_opt_mapping_size`: with an IOMMU, the largest I/O virtual address
    /// range its caches keep; larger mappings take its allocator's slow path), with the
    /// driver mapping at most `driver_max` bytes in at most `driver_segments` segments.
    /// `ctrl_page` is the controller page size, a power of two. A `dma_opt` below one
    /// controller page is ignored, as it cannot be met.
    ///
    /// The C driver sets the same limits (its `max_hw_sectors` and
    /// `nvme_max_drv_segments`).
    pub fn new(
        mdts: Option<usize>,
        dma_opt: usize,
        driver_max: u32,
        driver_segments: u16,
        ctrl_page: u32,
    ) -> Self {
        let page = ctrl_page.max(1);
        let mut max = driver_max;
        if let Some(m) = mdts {
            max = max.min(u32::try_from(m).unwrap_or(u32::MAX));
        }
        if dma_opt >= page as usize {
            max = max.min(u32::try_from(dma_opt).unwrap_or(u32::MAX));
        }
        // Whole controller pages, and at least one.
        let max_transfer = (max - max % page).max(page);
        let segments = (max_transfer / page).saturating_add(1);
        Self {
            max_transfer,
            max_segments: u16::try_from(segments)
                .unwrap_or(u16::MAX)
                .min(driver_segments)
                .max(1),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const K: usize = 1024;

    #[test]
    fn iommu_cache_limit_caps_a_larger_mdts() {
        // QEMU's controller (MDTS 7 with 4 KiB pages) behind an IOMMU whose IOVA caches
        // keep ranges up to 128 KiB: the C driver's 128 KiB and 33 segments.
        let l = RequestLimits::new(Some(512 * K), 128 * K, 512 * 1024, 64, 4096);
        assert_eq!(l.max_transfer, 128 * 1024);
        assert_eq!(l.max_segments, 33);
    }

    #[test]
    fn without_an_iommu_mdts_and_the_driver_limit() {
        let l = RequestLimits::new(Some(512 * K), usize::MAX, 512 * 1024, 64, 4096);
        assert_eq!(l.max_transfer, 512 * 1024);
        assert_eq!(l.max_segments, 64);
        let l = RequestLimits::new(Some(64 * K), usize::MAX, 512 * 1024, 64, 4096);
        assert_eq!((l.max_transfer, l.max_segments), (64 * 1024, 17));
        let l = RequestLimits::new(None, usize::MAX, 512 * 1024, 64, 4096);
        assert_eq!(l.max_transfer, 512 * 1024);
    }

    #[test]
    fn odd_dma_limits_round_down_to_pages_and_tiny_ones_are_ignored() {
        let l = RequestLimits::new(Some(512 * K), 130 * K, 512 * 1024, 64, 4096);
        assert_eq!(l.max_transfer, 128 * 1024);
        let l = RequestLimits::new(Some(512 * K), 100, 512 * 1024, 64, 4096);
        assert_eq!(l.max_transfer, 512 * 1024);
        let l = RequestLimits::new(Some(512 * K), 0, 512 * 1024, 64, 4096);
        assert_eq!(l.max_transfer, 512 * 1024);
    }

    #[test]
    fn huge_or_zero_inputs_stay_in_range() {
        let l = RequestLimits::new(Some(usize::MAX), usize::MAX, u32::MAX, u16::MAX, 4096);
        assert_eq!(l.max_transfer, u32::MAX - u32::MAX % 4096);
        assert_eq!(l.max_segments, u16::MAX);
        let l = RequestLimits::new(Some(0), 0, 0, 0, 0);
        assert_eq!((l.max_transfer, l.max_segments), (1, 1));
    }
}
