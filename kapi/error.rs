// SPDX-License-Identifier: GPL-2.0

//! Error codes that 6.12's `kernel::error::code` does not declare.
//!
//! Upstream later declares them as constants (`ETIMEDOUT`, `EOVERFLOW`); 6.12's `Error` can
//! only be built at run time from outside the `kernel` crate, hence functions.

use kernel::{bindings, error::Error};

/// `-ETIMEDOUT`: an operation did not finish in time.
pub(crate) fn etimedout() -> Error {
    Error::from_errno(-(bindings::ETIMEDOUT as i32))
}

/// `-EOVERFLOW`: a value does not fit.
pub(crate) fn eoverflow() -> Error {
    Error::from_errno(-(bindings::EOVERFLOW as i32))
}

/// `-ENOMSG`: no message (a migration data fd's temporary end of stream).
pub(crate) fn enomsg() -> Error {
    Error::from_errno(-(bindings::ENOMSG as i32))
}

/// `-EOPNOTSUPP`: the operation is not supported (an incompatible migration source).
pub(crate) fn eopnotsupp() -> Error {
    Error::from_errno(-(bindings::EOPNOTSUPP as i32))
}
