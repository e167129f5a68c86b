// SPDX-License-Identifier: GPL-2.0

//! Sleeping and deadlines, in the shape of upstream `kernel::time::delay` and
//! `kernel::io::poll`.
//!
//! C header: [`include/linux/delay.h`](srctree/include/linux/delay.h)

use super::error::etimedout;
use kernel::{
    bindings, ffi,
    prelude::*,
    time::{ktime_ms_delta, Ktime},
};

/// Sleeps for at least `ms` milliseconds. Must be called from a context that may sleep.
pub(crate) fn msleep(ms: u32) {
    // SAFETY: `msleep` may be called from any sleepable context.
    unsafe { bindings::msleep(ms) }
}

/// Sleeps between `min_us` and `max_us` microseconds. Must be called from a context that
/// may sleep.
pub(crate) fn usleep_range(min_us: u32, max_us: u32) {
    // SAFETY: as for `msleep`; `TASK_UNINTERRUPTIBLE` is the state `usleep_range` uses.
    unsafe {
        bindings::usleep_range_state(
            min_us as ffi::c_ulong,
            max_us.max(min_us) as ffi::c_ulong,
            bindings::TASK_UNINTERRUPTIBLE,
        )
    }
}

/// Polls `read` until `done` accepts its value or `timeout_ms` elapse (like upstream's
/// `read_poll_timeout`). Returns the accepted value, or `ETIMEDOUT` with no value. `read`
/// errors end the poll at once.
///
/// For the first [`SPIN_NS`] it polls back to back: a device usually answers a command
/// within tens of microseconds, and the shortest sleep (with its timer and wake-up) costs
/// more than that, several times more under emulation. After that it sleeps between
/// polls. Must be called from a context that may sleep.
pub(crate) fn read_poll_timeout<T, R, D>(mut read: R, mut done: D, timeout_ms: u32) -> Result<T>
where
    R: FnMut() -> Result<T>,
    D: FnMut(&T) -> bool,
{
    let start = Ktime::ktime_get();
    loop {
        let value = read()?;
        if done(&value) {
            return Ok(value);
        }
        let now = Ktime::ktime_get();
        if ktime_ms_delta(now, start) > i64::from(timeout_ms) {
            // One last look: the sleep may have overshot the deadline.
            let value = read()?;
            return if done(&value) {
                Ok(value)
            } else {
                Err(etimedout())
            };
        }
        if (now - start).to_ns() < SPIN_NS {
            core::hint::spin_loop();
        } else {
            usleep_range(50, 200);
        }
    }
}

/// How long [`read_poll_timeout`] polls without sleeping, in nanoseconds.
pub(crate) const SPIN_NS: i64 = 100_000;
