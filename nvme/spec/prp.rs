// SPDX-License-Identifier: GPL-2.0

//! Physical Region Page (PRP) entries (NVM Express Base Specification 2.0, section 4.1.1):
//! how a transfer described by DMA segments is handed to the controller.
//!
//! PRP entry 1 points at the first byte (any offset into its page). If the transfer ends
//! within that page, PRP entry 2 is unused; if it ends within the next page, PRP entry 2
//! points at that page; otherwise PRP entry 2 points at a list of the remaining page
//! addresses. Every segment but the first must start on a page boundary and every segment
//! but the last must end on one: the block layer guarantees that with a virtual boundary
//! mask of `page_size - 1`, and [`build`] rejects anything else.

/// Why a transfer cannot be described with PRPs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PrpError {
    /// No data, or a zero-length segment.
    Empty,
    /// A segment boundary is not page aligned where it must be.
    Misaligned,
    /// More pages than one PRP list holds.
    TooLong,
    /// The page size is not a power of two of at least 4 KiB.
    BadPageSize,
}

/// PRP entry 2 of a command.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Prp2 {
    /// The transfer fits in the first page: entry 2 is zero.
    None,
    /// The transfer ends in the second page: entry 2 is that page's address.
    Page(u64),
    /// Entry 2 must point at the PRP list that [`build`] filled with this many entries.
    List(usize),
}

/// The PRP description of a transfer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Prps {
    /// PRP entry 1.
    pub prp1: u64,
    /// PRP entry 2.
    pub prp2: Prp2,
}

/// Number of entries of a PRP list that fills one page of `page_size` bytes.
pub fn list_capacity(page_size: u64) -> usize {
    (page_size / 8) as usize
}

/// Describes a transfer of one segment that spans at most two pages without a PRP list
/// (the common case of small I/O); `None` when it needs [`build`].
pub fn simple(addr: u64, len: u32, page_size: u64) -> Option<Prps> {
    if len == 0 || page_size < 4096 || !page_size.is_power_of_two() {
        return None;
    }
    let mask = page_size - 1;
    let end = (addr & mask) + u64::from(len);
    let prp2 = if end <= page_size {
        Prp2::None
    } else if end <= 2 * page_size {
        Prp2::Page((addr & !mask) + page_size)
    } else {
        return None;
    };
    Some(Prps { prp1: addr, prp2 })
}

/// Describes the transfer made of `segments` (bus address, length) with PRPs for a
/// controller memory page size of `page_size`. Page addresses after the second go to `list`
/// (one PRP list page; a longer transfer is [`PrpError::TooLong`]), whose first
/// [`Prp2::List`] entries are valid on return.
pub fn build(
    segments: impl IntoIterator<Item = (u64, u32)>,
    page_size: u64,
    list: &mut [u64],
) -> Result<Prps, PrpError> {
    if page_size < 4096 || !page_size.is_power_of_two() {
        return Err(PrpError::BadPageSize);
    }
    let mask = page_size - 1;
    let mut prp1 = None;
    // Page addresses after the first page, in order.
    let mut pages = 0usize;
    let mut second = 0u64;
    let mut prev_end_aligned = true;
    let mut push = |page: u64, pages: &mut usize, second: &mut u64| -> Result<(), PrpError> {
        if *pages == 0 {
            *second = page;
        } else {
            // Entry 0 of the list repeats the second page once the list is in use.
            if *pages == 1 {
                *list.get_mut(0).ok_or(PrpError::TooLong)? = *second;
            }
            *list.get_mut(*pages).ok_or(PrpError::TooLong)? = page;
        }
        *pages += 1;
        Ok(())
    };

    for (addr, len) in segments {
        if len == 0 {
            return Err(PrpError::Empty);
        }
        let end = addr
            .checked_add(u64::from(len))
            .ok_or(PrpError::Misaligned)?;
        match prp1 {
            None => {
                prp1 = Some(addr);
                // Pages after the one holding `addr`.
                let mut page = (addr & !mask) + page_size;
                while page < end {
                    push(page, &mut pages, &mut second)?;
                    page += page_size;
                }
            }
            Some(_) => {
                if !prev_end_aligned || addr & mask != 0 {
                    return Err(PrpError::Misaligned);
                }
                let mut page = addr;
                while page < end {
                    push(page, &mut pages, &mut second)?;
                    page += page_size;
                }
            }
        }
        prev_end_aligned = end & mask == 0;
    }

    let prp1 = prp1.ok_or(PrpError::Empty)?;
    let prp2 = match pages {
        0 => Prp2::None,
        1 => Prp2::Page(second),
        n => Prp2::List(n),
    };
    Ok(Prps { prp1, prp2 })
}

#[cfg(test)]
mod tests {
    #[test]
    fn simple_transfers_need_no_list() {
        let one = simple(0x1000_0200, 512, 4096).expect("one page");
        assert_eq!((one.prp1, one.prp2), (0x1000_0200, Prp2::None));
        let whole = simple(0x1000_0000, 4096, 4096).expect("one whole page");
        assert_eq!(whole.prp2, Prp2::None);
        let two = simple(0x1000_0e00, 4096, 4096).expect("two pages");
        assert_eq!((two.prp1, two.prp2), (0x1000_0e00, Prp2::Page(0x1000_1000)));
        assert_eq!(simple(0x1000_0000, 8193, 4096), None);
        assert_eq!(simple(0x1000_0000, 0, 4096), None);
        assert_eq!(simple(0x1000_0000, 4096, 1000), None);
        // Whatever `simple` accepts, `build` describes the same way.
        for (addr, len) in [
            (0x2000_0000u64, 4096u32),
            (0x2000_0800, 4096),
            (0x2000_0000, 8192),
        ] {
            let mut list = [0u64; 4];
            assert_eq!(
                simple(addr, len, 4096),
                build([(addr, len)], 4096, &mut list).ok()
            );
        }
    }

    use super::*;

    const PS: u64 = 4096;

    #[test]
    fn single_page_needs_no_prp2() {
        let mut list = [0u64; 512];
        let p = build([(0x1000_0200, 512)], PS, &mut list).expect("prps");
        assert_eq!(
            p,
            Prps {
                prp1: 0x1000_0200,
                prp2: Prp2::None
            }
        );
        let p = build([(0x1000_0000, 4096)], PS, &mut list).expect("prps");
        assert_eq!(p.prp2, Prp2::None);
    }

    #[test]
    fn two_pages_use_prp2_directly() {
        let mut list = [0u64; 512];
        // Starts mid-page and crosses into the next page.
        let p = build([(0x1000_0e00, 1024)], PS, &mut list).expect("prps");
        assert_eq!(
            p,
            Prps {
                prp1: 0x1000_0e00,
                prp2: Prp2::Page(0x1000_1000)
            }
        );
        // Two discontiguous page-aligned segments.
        let p = build([(0x5000, 4096), (0x9000, 4096)], PS, &mut list).expect("prps");
        assert_eq!(
            p,
            Prps {
                prp1: 0x5000,
                prp2: Prp2::Page(0x9000)
            }
        );
    }

    #[test]
    fn longer_transfers_fill_a_list() {
        let mut list = [0u64; 512];
        let p = build(
            [(0x10_0000, 8192), (0x20_0000, 4096), (0x30_0000, 100)],
            PS,
            &mut list,
        )
        .expect("prps");
        assert_eq!(p.prp1, 0x10_0000);
        assert_eq!(p.prp2, Prp2::List(3));
        assert_eq!(&list[..3], &[0x10_1000, 0x20_0000, 0x30_0000]);
    }

    #[test]
    fn misaligned_segments_are_rejected() {
        let mut list = [0u64; 512];
        // Second segment not page aligned.
        assert_eq!(
            build([(0x1000, 4096), (0x3200, 512)], PS, &mut list),
            Err(PrpError::Misaligned)
        );
        // First segment does not end on a page boundary but another follows.
        assert_eq!(
            build([(0x1000, 512), (0x3000, 4096)], PS, &mut list),
            Err(PrpError::Misaligned)
        );
    }

    #[test]
    fn limits_are_enforced() {
        let mut list = [0u64; 4];
        // 1 + 5 pages: the list would need 5 entries.
        assert_eq!(
            build([(0x0, 6 * 4096)], PS, &mut list),
            Err(PrpError::TooLong)
        );
        assert!(build([(0x0, 5 * 4096)], PS, &mut list).is_ok());
        assert_eq!(build([], PS, &mut list), Err(PrpError::Empty));
        assert_eq!(build([(0x0, 0)], PS, &mut list), Err(PrpError::Empty));
        assert_eq!(
            build([(0x0, 1)], 1000, &mut list),
            Err(PrpError::BadPageSize)
        );
        assert_eq!(list_capacity(4096), 512);
    }
}
