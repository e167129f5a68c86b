// SPDX-License-Identifier: GPL-2.0

//! The resuming data fd: the stream received so far, checked as it arrives, and what it is
//! checked against.

use kernel::{
    new_mutex,
    prelude::*,
    sync::{Arc, Mutex},
    types::ARef,
    uaccess::UserSliceReader,
};

use crate::{
    kapi::{device::dev_err, error::eopnotsupp, pci, vfio::MigrationFileOps},
    nvme::{
        spec::lm::{
            formats::{StateFormat, StateFormats},
            state::Limits,
        },
        spec::migration::{
            compat::{Fixed, NamespaceInfo},
            resume::{Destination, Refusal, Resume},
            stream::MAX_STREAM,
        },
    },
};

/// What an incoming stream is checked against: the destination VF as it is when RESUMING
/// begins.
pub(super) struct LocalCompat {
    /// The destination's compatibility section, apart from the namespaces.
    pub(super) fixed: Fixed,
    /// The namespaces attached to the destination's secondary controller.
    pub(super) namespaces: KVec<NamespaceInfo>,
    /// The state formats the destination's PF takes.
    pub(super) formats: StateFormats,
    /// What an incoming controller state must fit.
    pub(super) limits: Limits,
}

impl LocalCompat {
    /// The destination as the resume checks see it.
    pub(super) fn destination(&self) -> Destination<'_> {
        Destination {
            fixed: &self.fixed,
            namespaces: &self.namespaces,
            formats: &self.formats,
            limits: &self.limits,
        }
    }
}

/// The resuming data fd: the stream received so far, checked as it arrives
/// ([`Resume`]).
#[pin_data]
pub(super) struct ResumingFile {
    vf: ARef<pci::Device>,
    vfn: u16,
    #[pin]
    data: Mutex<ResumeData>,
}

struct ResumeData {
    buf: KVec<u8>,
    resume: Resume,
    local: LocalCompat,
    /// The fd was closed by the driver.
    disabled: bool,
}

impl ResumingFile {
    /// The resuming fd of VF `vfn` (`vf`), whose stream is checked against `local`.
    pub(super) fn new(vf: ARef<pci::Device>, vfn: u16, local: LocalCompat) -> Result<Arc<Self>> {
        Arc::pin_init(
            try_pin_init!(Self {
                vf,
                vfn,
                data <- new_mutex!(
                    ResumeData {
                        buf: KVec::new(),
                        resume: Resume::new(),
                        local,
                        disabled: false,
                    },
                    "ResumingFile::data"
                ),
            }),
            GFP_KERNEL,
        )
    }

    /// Closes the fd for writes.
    pub(super) fn disable(&self) {
        self.data.lock().disabled = true;
    }

    /// Logs why the stream was refused and returns the error the VFIO user sees.
    pub(super) fn refusal(&self, r: Refusal) -> Error {
        if r.incompatible() {
            dev_err!(
                self.vf,
                "VF {}: incompatible migration source: {:?}\n",
                self.vfn,
                r
            );
            eopnotsupp()
        } else {
            dev_err!(
                self.vf,
                "VF {}: migration stream refused: {:?}\n",
                self.vfn,
                r
            );
            EINVAL
        }
    }

    /// Logs a stream that outgrew [`MAX_STREAM`] and returns the error the user sees.
    pub(super) fn too_long(&self) -> Error {
        dev_err!(
            self.vf,
            "VF {}: migration stream longer than {} bytes\n",
            self.vfn,
            MAX_STREAM
        );
        EFBIG
    }

    /// The controller state of a complete, checked stream and the format it is in.
    pub(super) fn take_state(&self) -> Result<(StateFormat, KVec<u8>)> {
        let d = self.data.lock();
        let (format, raw) = d
            .resume
            .finish(&d.buf, &d.local.destination())
            .map_err(|r| self.refusal(r))?;
        let mut state = KVec::with_capacity(raw.len(), GFP_KERNEL)?;
        state.extend_from_slice(raw, GFP_KERNEL)?;
        Ok((format, state))
    }
}

impl MigrationFileOps for ResumingFile {
    fn write(&self, input: &mut UserSliceReader) -> Result<usize> {
        let n = input.len();
        if n > MAX_STREAM {
            return Err(self.too_long());
        }
        // Copied aside first, outside `data` (which the state mutex nests; a fault in the
        // copy takes the mm's locks): a fault halfway leaves the stream as it was.
        let mut bytes = KVec::from_elem(0u8, n, GFP_KERNEL)?;
        input.read_slice(&mut bytes)?;
        let mut guard = self.data.lock();
        let d = &mut *guard;
        if d.disabled {
            return Err(ENODEV);
        }
        if d.resume.refused() {
            return Err(EINVAL);
        }
        if d.buf.len().saturating_add(n) > MAX_STREAM {
            return Err(self.too_long());
        }
        d.buf.extend_from_slice(&bytes, GFP_KERNEL)?;
        let dest = d.local.destination();
        d.resume
            .advance(&d.buf, &dest)
            .map_err(|r| self.refusal(r))?;
        Ok(n)
    }
}
