// SPDX-License-Identifier: GPL-2.0

//! The saving data fd: reads walk the stream the source built.

use kernel::{
    new_mutex,
    prelude::*,
    sync::{Arc, Mutex},
    uaccess::UserSliceWriter,
};

use crate::{
    kapi::{
        error::enomsg,
        vfio::{MigrationFileOps, PrecopyInfo},
    },
    nvme::spec::migration::save::{ReadOutcome, SaveCursor},
};

/// The saving data fd: the stream, and how far it has been read.
#[pin_data]
pub(super) struct SavingFile {
    /// Serialises reads (taken before `data`, never under the state mutex).
    #[pin]
    reader: Mutex<()>,
    #[pin]
    data: Mutex<SaveData>,
}

struct SaveData {
    buf: KVec<u8>,
    cursor: SaveCursor,
    /// The fd was closed by the driver (the device left the saving states).
    disabled: bool,
}

impl SavingFile {
    /// A saving fd holding `initial`; `complete`: nothing will be added.
    pub(super) fn new(initial: KVec<u8>, complete: bool) -> Result<Arc<Self>> {
        let mut cursor = SaveCursor::new();
        cursor.extend(initial.len(), complete);
        Arc::pin_init(
            try_pin_init!(Self {
                reader <- new_mutex!((), "SavingFile::reader"),
                data <- new_mutex!(SaveData { buf: initial, cursor, disabled: false }, "SavingFile::data"),
            }),
            GFP_KERNEL,
        )
    }

    /// Appends the rest of the stream.
    pub(super) fn append(&self, rest: &[u8]) -> Result {
        let mut d = self.data.lock();
        d.buf.extend_from_slice(rest, GFP_KERNEL)?;
        d.cursor.extend(rest.len(), true);
        Ok(())
    }

    /// Closes the fd for reads.
    pub(super) fn disable(&self) {
        self.data.lock().disabled = true;
    }

    /// Bytes not read yet, once the stream is complete.
    pub(super) fn unread_if_complete(&self) -> Option<usize> {
        let d = self.data.lock();
        d.cursor.complete().then(|| d.cursor.unread())
    }
}

impl MigrationFileOps for SavingFile {
    fn read(&self, out: &mut UserSliceWriter) -> Result<usize> {
        // The copy to the user runs outside `data`, which the state mutex nests: a fault in
        // the copy takes the mm's locks. `reader` keeps the bytes handed out and the cursor
        // in step.
        let _reader = self.reader.lock();
        let bytes = {
            let d = self.data.lock();
            if d.disabled {
                return Err(ENODEV);
            }
            match d.cursor.peek(out.len()) {
                ReadOutcome::Data { start, end } => {
                    let mut bytes = KVec::with_capacity(end - start, GFP_KERNEL)?;
                    bytes.extend_from_slice(&d.buf[start..end], GFP_KERNEL)?;
                    bytes
                }
                ReadOutcome::TemporaryEnd => return Err(enomsg()),
                ReadOutcome::End => return Ok(0),
            }
        };
        // A fault here consumes nothing: the next read gets the same bytes.
        out.write_slice(&bytes)?;
        self.data.lock().cursor.consume(bytes.len());
        Ok(bytes.len())
    }

    fn precopy_info(&self) -> Result<PrecopyInfo> {
        let d = self.data.lock();
        // PRE_COPY is exactly while the stream is not complete.
        if d.disabled || d.cursor.complete() {
            return Err(EINVAL);
        }
        Ok(PrecopyInfo {
            initial_bytes: d.cursor.unread() as u64,
            dirty_bytes: 0,
        })
    }
}
