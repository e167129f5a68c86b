// SPDX-License-Identifier: GPL-2.0

//! Commands from userspace: the NVMe ioctls of the controller device `/dev/rnvme<N>` and
//! of the namespace disks `/dev/rnvme<N>n<nsid>` (admin and I/O passthrough, namespace
//! ID, reset, rescan), as nvme-cli and libnvme use them.
//!
//! Every argument is untrusted: the structure is validated before a command is built, data
//! goes through kernel bounce buffers, and only `CAP_SYS_ADMIN` may send commands.

use kernel::{alloc::KVVec, prelude::*, sync::Arc, uaccess::UserSlice};

use crate::{
    kapi::{block::mq::DiskQueue, miscdevice::capable_sys_admin},
    nvme::{
        admin::MAX_PASSTHRU_DATA,
        ctrl_base::CtrlState,
        ctrl_core::CtrlCore,
        io::request::{IoOps, MAX_TRANSFER},
        namespace::Namespace,
        nvme_error::NvmeError,
        spec::{
            command::admin,
            passthru::{admin_effects, DataDirection, Ioctl, Passthru, PASSTHRU64_SIZE},
        },
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

/// Ioctls of the controller device.
pub(crate) fn ctrl_ioctl(core: &Arc<CtrlCore>, cmd: u32, arg: usize) -> Result<isize> {
    let ioc = Ioctl::from_cmd(cmd).ok_or(ENOTTY)?;
    if ioc != Ioctl::Id {
        may_send_commands(core)?;
    }
    match ioc {
        // A controller has no namespace ID of its own.
        Ioctl::Id => Err(ENOTTY),
        Ioctl::Reset => core.reset_now().map(|()| 0),
        Ioctl::Rescan => core.rescan().map(|()| 0),
        Ioctl::AdminCmd | Ioctl::Admin64Cmd => admin_cmd(core, ioc, arg),
        Ioctl::IoCmd | Ioctl::Io64Cmd => {
            // The command's namespace chooses the disk whose queue carries it.
            let p = read_passthru(ioc, arg, MAX_TRANSFER)?;
            core.with_disk_queue(p.cmd.nsid(), |queue| io_cmd(queue, &p, ioc, arg))
        }
    }
}

/// Ioctls of the disk of namespace `ns`, whose queue is `queue`.
pub(crate) fn disk_ioctl(
    core: &CtrlCore,
    ns: &Namespace,
    queue: &DiskQueue<IoOps>,
    cmd: u32,
    arg: usize,
) -> Result<isize> {
    let ioc = Ioctl::from_cmd(cmd).ok_or(ENOTTY)?;
    match ioc {
        Ioctl::Id => Ok(ns.nsid() as isize),
        Ioctl::AdminCmd | Ioctl::Admin64Cmd => {
            may_send_commands(core)?;
            admin_cmd(core, ioc, arg)
        }
        Ioctl::IoCmd | Ioctl::Io64Cmd => {
            may_send_commands(core)?;
            let p = read_passthru(ioc, arg, MAX_TRANSFER)?;
            // A disk carries commands for its own namespace only.
            if p.cmd.nsid() != ns.nsid() {
                return Err(EINVAL);
            }
            io_cmd(queue, &p, ioc, arg)
        }
        // Controller operations belong to the controller device.
        Ioctl::Reset | Ioctl::Rescan => Err(ENOTTY),
    }
}

/// Refuses unprivileged callers, and callers while the controller cannot take commands.
fn may_send_commands(core: &CtrlCore) -> Result {
    if !capable_sys_admin() {
        return Err(EACCES);
    }
    match core.state() {
        CtrlState::Live => Ok(()),
        CtrlState::Resetting => Err(EBUSY),
        CtrlState::Dead | CtrlState::Removing => Err(ENODEV),
    }
}

/// Reads and validates the passthrough structure of `ioc` at user address `arg`.
fn read_passthru(ioc: Ioctl, arg: usize, max_data: u32) -> Result<Passthru> {
    let size = ioc.arg_size();
    let mut raw = [0u8; PASSTHRU64_SIZE];
    UserSlice::new(arg, size)
        .reader()
        .read_slice(&mut raw[..size])?;
    Passthru::parse(&raw[..size], max_data).map_err(|_| EINVAL)
}

/// Writes a command's result into the user's structure, if `ioc` has a result field.
fn write_result(ioc: Ioctl, arg: usize, result: u64) -> Result {
    if let Some((offset, width)) = ioc.result_field() {
        UserSlice::new(arg + offset, width)
            .writer()
            .write_slice(&result.to_le_bytes()[..width])?;
    }
    Ok(())
}

/// Runs an admin passthrough command; returns 0, or the NVMe status of a failed command (as
/// the C driver does).
fn admin_cmd(core: &CtrlCore, ioc: Ioctl, arg: usize) -> Result<isize> {
    let p = read_passthru(ioc, arg, MAX_PASSTHRU_DATA)?;
    if RESERVED_OPCODES.contains(&p.cmd.opcode()) {
        return Err(EPERM);
    }
    let len = p.data_len as usize;
    let (mut data_in, mut data_out) = UserSlice::new(p.addr as usize, len).reader_writer();
    let effects = admin_effects(p.cmd.opcode());
    let outcome = core.passthru_with_effects(effects, || {
        Ok(core.admin_bounced(
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
        ))
    })?;
    let (ret, result) = match outcome {
        Ok(cqe) => (0, u64::from(cqe.result)),
        Err(NvmeError::Status(status)) => (isize::from(status.0 as i16), 0),
        Err(e) => return Err(e.into()),
    };
    write_result(ioc, arg, result)?;
    Ok(ret)
}

/// Runs I/O passthrough command `p` through `queue`, as a driver-private request that
/// shares the queue's tags, timeout handling and recovery with normal I/O. Returns 0, or
/// the NVMe status of a failed command.
fn io_cmd(queue: &DiskQueue<IoOps>, p: &Passthru, ioc: Ioctl, arg: usize) -> Result<isize> {
    // A block request moves data one way.
    if p.dir == DataDirection::Both {
        return Err(EINVAL);
    }
    let len = p.data_len as usize;
    let mut buf = KVVec::from_elem(0u8, len, GFP_KERNEL)?;
    if p.dir.copies_in() {
        UserSlice::new(p.addr as usize, len)
            .reader()
            .read_slice(&mut buf)?;
    }

    let mut rq = queue.alloc_request(p.dir == DataDirection::ToDevice)?;
    rq.data().set_passthru(Some(p.cmd));
    rq.set_timeout_ms(p.timeout_ms);
    let ended = rq.execute(&mut buf)?;
    let (status, result) = (rq.data().status(), rq.data().result());
    drop(rq);

    if !status.is_success() {
        write_result(ioc, arg, result)?;
        return Ok(isize::from(status.0 as i16));
    }
    if !ended.is_ok() {
        // Not completed by the controller: refused, or cancelled by recovery.
        return Err(EIO);
    }
    if p.dir.copies_out() {
        UserSlice::new(p.addr as usize, len)
            .writer()
            .write_slice(&buf)?;
    }
    write_result(ioc, arg, result)?;
    Ok(0)
}
