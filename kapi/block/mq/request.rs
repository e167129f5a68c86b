// SPDX-License-Identifier: GPL-2.0

//! Block requests as a driver sees them in its callbacks.

use core::marker::PhantomData;

use kernel::{bindings, types::Opaque};

use super::Operations;

/// The operation of a request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ReqOp {
    /// Read data.
    Read,
    /// Write data.
    Write,
    /// Flush the volatile write cache.
    Flush,
    /// Deallocate (discard) a range.
    Discard,
    /// Write zeroes to a range.
    WriteZeroes,
    /// Driver-private, device to host (passthrough).
    DrvIn,
    /// Driver-private, host to device (passthrough).
    DrvOut,
    /// Anything else (unsupported by the driver).
    Other(u32),
}

/// `REQ_OP_MASK`: the operation is the low `REQ_OP_BITS` bits of the flags.
const REQ_OP_MASK: u32 = (1 << bindings::REQ_OP_BITS) - 1;
/// `REQ_FUA`.
const REQ_FUA: u32 = 1 << bindings::req_flag_bits___REQ_FUA;
/// `RQF_SPECIAL_PAYLOAD`: the data is the driver's own single segment.
const RQF_SPECIAL_PAYLOAD: u32 = 1 << bindings::__RQF_SPECIAL_PAYLOAD;

impl ReqOp {
    /// The operation of a request whose `cmd_flags` are `opf`.
    pub(super) fn from_opf(opf: u32) -> Self {
        match opf & REQ_OP_MASK {
            bindings::req_op_REQ_OP_READ => Self::Read,
            bindings::req_op_REQ_OP_WRITE => Self::Write,
            bindings::req_op_REQ_OP_FLUSH => Self::Flush,
            bindings::req_op_REQ_OP_DISCARD => Self::Discard,
            bindings::req_op_REQ_OP_WRITE_ZEROES => Self::WriteZeroes,
            bindings::req_op_REQ_OP_DRV_IN => Self::DrvIn,
            bindings::req_op_REQ_OP_DRV_OUT => Self::DrvOut,
            other => Self::Other(other),
        }
    }

    /// Whether the operation is driver-private (`blk_op_is_passthrough`).
    pub(crate) fn is_passthrough(self) -> bool {
        matches!(self, Self::DrvIn | Self::DrvOut)
    }

    /// Whether data moves from the host to the device.
    pub(crate) fn is_write(self) -> bool {
        matches!(self, Self::Write | Self::DrvOut)
    }
}

/// A request of a tag set of `T`, borrowed for the duration of a callback.
///
/// # Invariants
///
/// A `&Request<T>` points to a valid `struct request` of a tag set built for `T`, whose
/// driver data (PDU) is initialised, and that the driver owns (it is in flight) for the
/// lifetime of the reference.
#[repr(transparent)]
pub(crate) struct Request<T: Operations>(Opaque<bindings::request>, PhantomData<T>);

impl<T: Operations> Request<T> {
    /// # Safety
    ///
    /// `ptr` must satisfy the type invariants for the lifetime `'a`.
    pub(super) unsafe fn from_raw<'a>(ptr: *mut bindings::request) -> &'a Self {
        // SAFETY: transparent wrapper; validity guaranteed by the caller.
        unsafe { &*ptr.cast() }
    }

    pub(super) fn as_raw(&self) -> *mut bindings::request {
        self.0.get()
    }

    /// Marks the request as started (its timeout runs from now).
    pub(super) fn start(&self) {
        // SAFETY: the request is valid and owned by the driver (type invariant).
        unsafe { bindings::blk_mq_start_request(self.as_raw()) }
    }

    /// The request's tag: unique among the in-flight requests of its hardware queue.
    pub(crate) fn tag(&self) -> u16 {
        // SAFETY: the request is valid; `tag` is set before the driver sees it. Tags are
        // below the queue depth, which `TagSet::new` limits to `u16`.
        unsafe { (*self.as_raw()).tag as u16 }
    }

    /// Number of physical data segments (0 for requests without data).
    pub(crate) fn nr_phys_segments(&self) -> u16 {
        // SAFETY: the request is valid and owned by the driver, so blk-mq does not change
        // these fields under it (as `blk_rq_nr_phys_segments`, without the call).
        let (flags, segments) =
            unsafe { ((*self.as_raw()).rq_flags, (*self.as_raw()).nr_phys_segments) };
        if flags & RQF_SPECIAL_PAYLOAD != 0 {
            1
        } else {
            segments
        }
    }

    /// The page, offset and length of the data of a request with a single physical
    /// segment (`req_bvec`, inline in C): its special payload, or its first bio's current
    /// (multi-page) bio_vec. `None` if the request has another number of segments.
    #[inline]
    pub(super) fn single_bvec(&self) -> Option<(*mut bindings::page, u32, u32)> {
        if self.nr_phys_segments() != 1 {
            return None;
        }
        let rq = self.as_raw();
        // SAFETY: the request is valid and owned by the driver, so blk-mq does not change
        // its payload under it. A request with one segment that is not a special payload
        // has a bio whose iterator points into its bio_vec array (`mp_bvec_iter_bvec`).
        unsafe {
            if (*rq).rq_flags & RQF_SPECIAL_PAYLOAD != 0 {
                let bv = (*rq).__bindgen_anon_3.special_vec;
                return Some((bv.bv_page, bv.bv_offset, bv.bv_len));
            }
            let bio = (*rq).bio;
            if bio.is_null() {
                return None;
            }
            let iter = (*bio).bi_iter;
            let bv = *(*bio).bi_io_vec.add(iter.bi_idx as usize);
            let len = iter
                .bi_size
                .min(bv.bv_len.saturating_sub(iter.bi_bvec_done));
            Some((bv.bv_page, bv.bv_offset + iter.bi_bvec_done, len))
        }
    }

    /// The index of the hardware queue the request was dispatched on.
    pub(crate) fn hctx_index(&self) -> u32 {
        // SAFETY: the request is valid and in flight, so `mq_hctx` points to its hardware
        // context.
        unsafe { (*(*self.as_raw()).mq_hctx).queue_num }
    }

    /// The operation.
    pub(crate) fn op(&self) -> ReqOp {
        ReqOp::from_opf(self.opf())
    }

    /// Whether the request reads or writes data (`REQ_OP_READ` or `REQ_OP_WRITE`): one
    /// comparison, for the hot path to test before it looks at [`Self::op`].
    pub(crate) fn is_read_write(&self) -> bool {
        const _: () =
            assert!(bindings::req_op_REQ_OP_READ == 0 && bindings::req_op_REQ_OP_WRITE == 1);
        self.opf() & REQ_OP_MASK <= bindings::req_op_REQ_OP_WRITE
    }

    /// The operation and flags (`cmd_flags`).
    fn opf(&self) -> u32 {
        // SAFETY: the request is valid and owned by the driver, which blk-mq leaves its
        // flags to.
        unsafe { (*self.as_raw()).cmd_flags }
    }

    /// Whether the write must reach non-volatile media before it completes.
    pub(crate) fn is_fua(&self) -> bool {
        self.opf() & REQ_FUA != 0
    }

    /// First sector (512 bytes) of the request (`blk_rq_pos`).
    pub(crate) fn sector(&self) -> u64 {
        // SAFETY: the request is valid and owned by the driver.
        unsafe { (*self.as_raw()).__sector }
    }

    /// Length of the request in bytes (`blk_rq_bytes`).
    pub(crate) fn bytes(&self) -> u32 {
        // SAFETY: the request is valid and owned by the driver.
        unsafe { (*self.as_raw()).__data_len }
    }

    /// The driver's data of this request.
    pub(crate) fn data(&self) -> &T::RequestData {
        // SAFETY: the PDU is initialised for every request of the tag set (type invariant)
        // and lives as long as the request.
        unsafe { &*pdu(self.as_raw()).cast::<T::RequestData>() }
    }
}

/// The driver data (PDU) of request `rq`: the memory right after the `struct request`, as
/// `blk_mq_rq_to_pdu` computes it (inline here: the helper would be a call per use).
pub(super) fn pdu(rq: *mut bindings::request) -> *mut core::ffi::c_void {
    // `rq + 1`, as in C; only the address is computed, nothing is dereferenced.
    rq.wrapping_add(1).cast()
}
