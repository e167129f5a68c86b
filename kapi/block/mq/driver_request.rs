// SPDX-License-Identifier: GPL-2.0

//! Driver-private requests: commands of the driver's own (passthrough from userspace) sent
//! through a disk's queue, so they share its tags, timeouts and recovery with normal I/O.

use core::{marker::PhantomData, ptr::NonNull};

use kernel::{bindings, error::from_err_ptr, ffi, prelude::*, types::Opaque};

use super::Operations;
use crate::kapi::block::BlkStatus;

/// The request queue of a disk of driver `T`, borrowed.
///
/// # Invariants
///
/// A `&DiskQueue<T>` points to a valid `struct request_queue` of a disk whose tag set was
/// built for `T`; the queue stays alive for the lifetime of the reference.
#[repr(transparent)]
pub(crate) struct DiskQueue<T: Operations>(Opaque<bindings::request_queue>, PhantomData<T>);

impl<T: Operations> DiskQueue<T> {
    /// # Safety
    ///
    /// `ptr` must satisfy the type invariants for the lifetime `'a`.
    pub(super) unsafe fn from_raw<'a>(ptr: *mut bindings::request_queue) -> &'a Self {
        // SAFETY: transparent wrapper; validity guaranteed by the caller.
        unsafe { &*ptr.cast() }
    }

    fn as_raw(&self) -> *mut bindings::request_queue {
        self.0.get()
    }

    /// Allocates a driver-private request (`REQ_OP_DRV_OUT` when data moves to the device,
    /// else `REQ_OP_DRV_IN`), waiting for a free tag. Fails if the queue is being torn
    /// down.
    pub(crate) fn alloc_request(&self, to_device: bool) -> Result<DriverRequest<'_, T>> {
        let op = if to_device {
            bindings::req_op_REQ_OP_DRV_OUT
        } else {
            bindings::req_op_REQ_OP_DRV_IN
        };
        // SAFETY: the queue is valid (type invariant); flags 0 means "may sleep for a tag".
        let rq = from_err_ptr(unsafe { bindings::blk_mq_alloc_request(self.as_raw(), op, 0) })?;
        let rq = NonNull::new(rq).ok_or(ENOMEM)?;
        // INVARIANT: freshly allocated on this queue, not yet executed.
        Ok(DriverRequest {
            rq,
            executed: false,
            _queue: PhantomData,
        })
    }
}

/// A driver-private request allocated on a [`DiskQueue`]; freed on drop.
///
/// # Invariants
///
/// `rq` came from `blk_mq_alloc_request` on a queue of driver `T` that outlives `'a`, and
/// is freed only by `Drop`. Once `executed`, the block layer has ended it (its data is
/// unmapped) and it is not executed again.
pub(crate) struct DriverRequest<'a, T: Operations> {
    rq: NonNull<bindings::request>,
    executed: bool,
    _queue: PhantomData<&'a DiskQueue<T>>,
}

impl<T: Operations> DriverRequest<'_, T> {
    /// The driver's data of this request (initialised for every request of the tag set).
    pub(crate) fn data(&self) -> &T::RequestData {
        // SAFETY: the request is valid (type invariant); its PDU was initialised when the
        // tag set allocated it and lives as long as the request.
        unsafe { &*super::request::pdu(self.rq.as_ptr()).cast::<T::RequestData>() }
    }

    /// Sets the request's timeout; 0 keeps the tag set's default.
    pub(crate) fn set_timeout_ms(&mut self, ms: u32) {
        if ms != 0 {
            // SAFETY: the request is valid and not yet dispatched, so the driver owns it.
            unsafe {
                (*self.rq.as_ptr()).timeout =
                    kernel::time::msecs_to_jiffies(ms).min(ffi::c_uint::MAX as _) as _
            };
        }
    }

    /// Sends the request with `buf` as its data (none if `buf` is empty) and waits until it
    /// ends; returns the status the driver ended it with. A request is executed once.
    pub(crate) fn execute(&mut self, buf: &mut [u8]) -> Result<BlkStatus> {
        if self.executed {
            return Err(EINVAL);
        }
        let rq = self.rq.as_ptr();
        if !buf.is_empty() {
            let len = ffi::c_uint::try_from(buf.len()).map_err(|_| EINVAL)?;
            // SAFETY: the request is valid and owned by the driver; `buf` is writable for
            // `len` bytes and borrowed until this function returns, after the request has
            // ended (the block layer copies or unmaps it when the bios end). On failure
            // nothing stays mapped.
            kernel::error::to_result(unsafe {
                bindings::blk_rq_map_kern(
                    (*rq).q,
                    rq,
                    buf.as_mut_ptr().cast(),
                    len,
                    bindings::GFP_KERNEL,
                )
            })?;
        }
        self.executed = true;
        // SAFETY: the request is valid and complete; `blk_execute_rq` waits for it to end.
        let status = unsafe { bindings::blk_execute_rq(rq, false) };
        Ok(BlkStatus::from_raw(status))
    }
}

impl<T: Operations> Drop for DriverRequest<'_, T> {
    fn drop(&mut self) {
        // SAFETY: allocated by `blk_mq_alloc_request` and not freed before (invariant); it
        // is not in flight (never executed, or `blk_execute_rq` returned).
        unsafe { bindings::blk_mq_free_request(self.rq.as_ptr()) };
    }
}
