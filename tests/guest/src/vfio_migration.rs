// SPDX-License-Identifier: GPL-2.0

//! The VFIO migration v2 uAPI as a VMM uses it (`include/uapi/linux/vfio.h`):
//! `VFIO_DEVICE_FEATURE` with `MIGRATION`, `MIG_DEVICE_STATE` and `MIG_DATA_SIZE` on a
//! device fd, and reads, writes and `VFIO_MIG_GET_PRECOPY_INFO` on the data fd a state
//! change returns. The feature requests go through [`crate::vfio_feature`];
//! `VFIO_MIG_GET_PRECOPY_INFO` is a raw ioctl here.

use std::{
    fs::File,
    io::{self, Read, Write},
    os::fd::{AsRawFd, FromRawFd},
};

use crate::vfio_feature::{feature, GET, PROBE, SET};

/// `VFIO_MIG_GET_PRECOPY_INFO`: `_IO(';', 100 + 21)`.
const VFIO_MIG_GET_PRECOPY_INFO: u64 = (b';' as u64) << 8 | 121;
const FEATURE_MIGRATION: u32 = 1;
const FEATURE_MIG_DEVICE_STATE: u32 = 2;
const FEATURE_MIG_DATA_SIZE: u32 = 9;

/// `enum vfio_device_mig_state`, the uAPI flags and every state: the driver's own
/// definitions (`nvme/spec/migration/fsm.rs`, through the host crate `rnvme-spec`), so the test
/// and the driver cannot disagree about a value.
pub use rnvme_spec::spec::migration::fsm::{
    MigState as State, MIGRATION_P2P as P2P, MIGRATION_PRE_COPY as PRE_COPY,
    MIGRATION_STOP_COPY as STOP_COPY, STATES,
};

/// The state of a uAPI value the kernel returned.
fn state_of(v: u32) -> io::Result<State> {
    State::from_raw(v).ok_or_else(|| io::Error::other(format!("device state {v} is not a state")))
}

/// The migration flags the device advertises (`ENOTTY`: it does not migrate).
pub fn flags(device: &impl AsRawFd) -> io::Result<u64> {
    Ok(feature(device, GET | FEATURE_MIGRATION, [0u64])?[0])
}

/// Whether the device supports the migration state feature (`PROBE`).
pub fn probe(device: &impl AsRawFd) -> io::Result<()> {
    feature(device, PROBE | SET | FEATURE_MIG_DEVICE_STATE, [0u64]).map(|_| ())
}

/// The current migration state.
pub fn state(device: &impl AsRawFd) -> io::Result<State> {
    let d = feature(device, GET | FEATURE_MIG_DEVICE_STATE, [0u64])?;
    state_of(d[0] as u32)
}

/// Moves the device to `state`; returns the data fd the change opened, if any.
pub fn set_state(device: &impl AsRawFd, state: State) -> io::Result<Option<File>> {
    set_state_raw(device, state as u32)
}

/// Like [`set_state`] with any value, for the tests of values that are not states.
pub fn set_state_raw(device: &impl AsRawFd, state: u32) -> io::Result<Option<File>> {
    // { u32 device_state; s32 data_fd }, data_fd -1 on the way in.
    let data = [u64::from(state) | (u64::from(u32::MAX) << 32)];
    let d = feature(device, SET | FEATURE_MIG_DEVICE_STATE, data)?;
    let fd = (d[0] >> 32) as u32 as i32;
    if fd < 0 {
        return Ok(None);
    }
    // SAFETY: the kernel installed `fd` for this process; it is owned from here on.
    Ok(Some(unsafe { File::from_raw_fd(fd) }))
}

/// `VFIO_DEVICE_FEATURE_MIG_DATA_SIZE`: the bytes STOP_COPY is expected to yield.
pub fn data_size(device: &impl AsRawFd) -> io::Result<u64> {
    Ok(feature(device, GET | FEATURE_MIG_DATA_SIZE, [0u64])?[0])
}

/// `VFIO_MIG_GET_PRECOPY_INFO`: (initial_bytes, dirty_bytes).
pub fn precopy_info(data: &File) -> io::Result<(u64, u64)> {
    let mut info = [24u32 as u64, 0, 0];
    // SAFETY: `info` is a valid `vfio_precopy_info` (argsz 24, flags 0).
    let r = unsafe {
        libc::ioctl(
            data.as_raw_fd(),
            VFIO_MIG_GET_PRECOPY_INFO as _,
            info.as_mut_ptr(),
        )
    };
    if r < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok((info[1], info[2]))
}

/// How a read of the data fd ended.
#[derive(Debug, PartialEq, Eq)]
pub enum ReadEnd {
    /// `read` returned 0: the end of the stream.
    End,
    /// `ENOMSG`: a temporary end (PRE_COPY).
    Temporary,
}

/// Reads the data fd until the stream ends or ends for now, in reads of `chunk` bytes.
pub fn read_all(data: &mut File, chunk: usize) -> io::Result<(Vec<u8>, ReadEnd)> {
    let mut out = Vec::new();
    let mut buf = vec![0u8; chunk];
    loop {
        match data.read(&mut buf) {
            Ok(0) => return Ok((out, ReadEnd::End)),
            Ok(n) => out.extend_from_slice(&buf[..n]),
            Err(e) if e.raw_os_error() == Some(libc::ENOMSG) => {
                return Ok((out, ReadEnd::Temporary))
            }
            Err(e) => return Err(e),
        }
    }
}

/// Writes `bytes` to the data fd in writes of at most `chunk` bytes.
pub fn write_all(data: &mut File, bytes: &[u8], chunk: usize) -> io::Result<()> {
    for piece in bytes.chunks(chunk.max(1)) {
        data.write_all(piece)?;
    }
    Ok(())
}
