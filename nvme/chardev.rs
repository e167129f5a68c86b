// SPDX-License-Identifier: GPL-2.0

//! The controller character device `/dev/rnvme<N>`: the NVMe passthrough ioctls nvme-cli
//! and libnvme use (`NVME_IOCTL_ADMIN_CMD`, `NVME_IOCTL_ADMIN64_CMD`, `NVME_IOCTL_RESET`,
//! `NVME_IOCTL_RESCAN`).

use kernel::{prelude::*, sync::Arc, uaccess::UserSlice};

use crate::{
    admin::MAX_PASSTHRU_DATA,
    core::{CtrlCore, CtrlState},
    kapi::miscdevice::{capable_sys_admin, MiscFile},
    nvme_error::NvmeError,
    spec::{
        command::admin,
        passthru::{CtrlIoctl, Passthru, PASSTHRU64_SIZE},
    },
};

/// Admin opcodes userspace may not send: they create or delete the queues the driver itself
/// runs on.
const RESERVED_OPCODES: [u8; 4] = [
    admin::DELETE_SQ,
    admin::CREATE_SQ,
    admin::DELETE_CQ,
    admin::CREATE_CQ,
];

/// What an open `/dev/rnvme<N>` acts on.
pub(crate) struct CtrlFile {
    core: Arc<CtrlCore>,
}

impl CtrlFile {
    /// The file operations of controller `core`.
    pub(crate) fn new(core: Arc<CtrlCore>) -> Self {
        Self { core }
    }

    /// Runs a passthrough admin command described at user address `arg`; returns 0 or the
    /// NVMe status of a failed command (as the C driver does), and writes the command's
    /// result back into the user's structure.
    fn admin_passthru(&self, ioc: CtrlIoctl, arg: usize) -> Result<isize> {
        let size = ioc.arg_size();
        let mut raw = [0u8; PASSTHRU64_SIZE];
        UserSlice::new(arg, size)
            .reader()
            .read_slice(&mut raw[..size])?;
        let p = Passthru::parse(&raw[..size], MAX_PASSTHRU_DATA).map_err(|_| EINVAL)?;
        if RESERVED_OPCODES.contains(&p.cmd.opcode()) {
            return Err(EPERM);
        }

        let len = p.data_len as usize;
        let (mut data_in, mut data_out) = UserSlice::new(p.addr as usize, len).reader_writer();
        let outcome = self.core.admin_bounced(
            p.cmd,
            p.data_len,
            |buf| {
                if p.dir.copies_in() {
                    let mut tmp = KVec::from_elem(0u8, len, GFP_KERNEL)?;
                    data_in.read_slice(&mut tmp)?;
                    buf.write_from(0, &tmp)?;
                }
                Ok(())
            },
            |buf| {
                if p.dir.copies_out() {
                    let mut tmp = KVec::from_elem(0u8, len, GFP_KERNEL)?;
                    buf.read_into(0, &mut tmp)?;
                    data_out.write_slice(&tmp)?;
                }
                Ok(())
            },
        );
        let (ret, result) = match outcome {
            Ok(cqe) => (0, u64::from(cqe.result)),
            Err(NvmeError::Status(status)) => (isize::from(status.0 as i16), 0),
            Err(e) => return Err(e.into()),
        };
        if let Some((offset, width)) = ioc.result_field() {
            UserSlice::new(arg + offset, width)
                .writer()
                .write_slice(&result.to_le_bytes()[..width])?;
        }
        Ok(ret)
    }
}

impl MiscFile for CtrlFile {
    fn ioctl(&self, cmd: u32, arg: usize) -> Result<isize> {
        let ioc = CtrlIoctl::from_cmd(cmd).ok_or(ENOTTY)?;
        if !capable_sys_admin() {
            return Err(EACCES);
        }
        match self.core.state() {
            CtrlState::Live => {}
            CtrlState::Resetting => return Err(EBUSY),
            CtrlState::Dead | CtrlState::Removing => return Err(ENODEV),
        }
        match ioc {
            CtrlIoctl::Reset => self.core.reset_now().map(|()| 0),
            CtrlIoctl::Rescan => self.core.rescan().map(|()| 0),
            CtrlIoctl::AdminCmd | CtrlIoctl::Admin64Cmd => self.admin_passthru(ioc, arg),
        }
    }
}
