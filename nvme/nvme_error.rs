// SPDX-License-Identifier: GPL-2.0

//! Errors of NVMe operations and their mapping to kernel error codes.

use core::fmt;

use kernel::prelude::*;

use crate::{kapi::error::etimedout, nvme::spec::completion::Status};

/// Why an NVMe operation failed.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum NvmeError {
    /// The controller completed the command with an error status.
    Status(Status),
    /// The command did not complete in time.
    Timeout,
    /// The controller is gone or failed (registers read all ones, or CSTS.CFS).
    Dead,
    /// A kernel error (allocation, bad argument).
    Kernel(Error),
}

impl From<Error> for NvmeError {
    fn from(e: Error) -> Self {
        Self::Kernel(e)
    }
}

impl From<kernel::alloc::AllocError> for NvmeError {
    fn from(_: kernel::alloc::AllocError) -> Self {
        Self::Kernel(ENOMEM)
    }
}

impl From<NvmeError> for Error {
    fn from(e: NvmeError) -> Self {
        match e {
            NvmeError::Status(_) => EIO,
            NvmeError::Timeout => etimedout(),
            NvmeError::Dead => ENODEV,
            NvmeError::Kernel(e) => e,
        }
    }
}

impl fmt::Debug for NvmeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Status(s) => write!(f, "{s:?}"),
            Self::Timeout => f.write_str("timeout"),
            Self::Dead => f.write_str("controller dead"),
            Self::Kernel(e) => write!(f, "{e:?}"),
        }
    }
}
