// SPDX-License-Identifier: GPL-2.0

//! Every ioctl number of the controller device `/dev/rnvme0` and of the disk
//! `/dev/rnvme0n1`, the ones the driver knows, the C driver's it does not, wrong size
//! encodings and numbers nobody knows, each with every kind of argument (none, a low
//! address, an unmapped page, a kernel address, a zeroed structure), as root and as an
//! unprivileged user (uid 65534, no capabilities). The cases `chardev/hostile-ioctls` and
//! `passthru/hostile-io-commands` already check (malformed command structures, data
//! lengths, reserved opcodes) are not repeated here. Each must return the documented errno;
//! afterwards the controller and the disk still work.

use std::{fs, os::fd::AsRawFd};

use crate::fixture::with_loaded;
use crate::{
    disk::{pattern, Direct},
    harness::{ensure, Env, Report, Test},
    nvme_ioctl::{self, errno_unprivileged, Cmd, ADMIN_CMD, ID, IO64_CMD, IO_CMD},
    tests::hardening::Campaign,
};

/// The ioctl campaign.
pub fn tests() -> Vec<Test> {
    vec![Test {
        name: "hardening/ioctls-every-number-and-argument",
        groups: &["hardening"],
        run: ioctls,
    }]
}

/// `NVME_IOCTL_SUBMIT_IO`: `_IOW('N', 0x42, struct nvme_user_io)`; the C driver's, not ours.
const SUBMIT_IO: libc::c_ulong = 0x4030_4e42;
/// `NVME_IOCTL_RESET`: `_IO('N', 0x44)`.
const RESET: libc::c_ulong = 0x4e44;
/// `NVME_IOCTL_SUBSYS_RESET`: `_IO('N', 0x45)`; not ours.
const SUBSYS_RESET: libc::c_ulong = 0x4e45;
/// `NVME_IOCTL_RESCAN`: `_IO('N', 0x46)`.
const RESCAN: libc::c_ulong = 0x4e46;
/// `NVME_IOCTL_ADMIN64_CMD`: `_IOWR('N', 0x47, struct nvme_passthru_cmd64)`.
const ADMIN64_CMD: libc::c_ulong = 0xc050_4e47;
/// `NVME_IOCTL_IO64_CMD_VECTORED`: `_IOWR('N', 0x49, ...)`; not ours.
const IO64_CMD_VEC: libc::c_ulong = 0xc050_4e49;
/// `BLKGETSIZE64`: `_IOR(0x12, 114, size_t)`, answered by the block layer.
const BLKGETSIZE64: libc::c_ulong = 0x8008_1272;

/// What an ioctl does on each device: the errno it must fail with, or `Ok` (any
/// non-negative result).
#[derive(Clone, Copy, Debug, PartialEq)]
enum Want {
    /// Fails with this errno whatever the argument.
    Errno(i32),
    /// Ignores its argument and succeeds (reset, rescan, ID of a disk).
    NoArg,
    /// Reads a command structure: `EFAULT` for a bad pointer; the zeroed structure gets
    /// the given result.
    Command(Result<i32, i32>),
    /// Writes its result through the pointer: `EFAULT` for a bad pointer, success for a
    /// good one.
    Output,
}

/// Whether an unprivileged caller is refused (`EACCES`) where root is not.
fn privileged(req: libc::c_ulong) -> bool {
    matches!(
        req,
        ADMIN_CMD | ADMIN64_CMD | IO_CMD | IO64_CMD | RESET | RESCAN
    )
}

/// The table: number, name, on the controller device, on the disk.
fn table() -> Vec<(libc::c_ulong, &'static str, Want, Want)> {
    use Want::*;
    vec![
        (ID, "NVME_IOCTL_ID", Errno(libc::ENOTTY), NoArg),
        // A zeroed admin command is Delete I/O SQ, which userspace may not send.
        (
            ADMIN_CMD,
            "ADMIN_CMD",
            Command(Err(libc::EPERM)),
            Command(Err(libc::EPERM)),
        ),
        (
            ADMIN64_CMD,
            "ADMIN64_CMD",
            Command(Err(libc::EPERM)),
            Command(Err(libc::EPERM)),
        ),
        // A zeroed I/O command names namespace 0: no disk has it.
        (
            IO_CMD,
            "IO_CMD",
            Command(Err(libc::EINVAL)),
            Command(Err(libc::EINVAL)),
        ),
        (
            IO64_CMD,
            "IO64_CMD",
            Command(Err(libc::EINVAL)),
            Command(Err(libc::EINVAL)),
        ),
        (RESET, "RESET", NoArg, Errno(libc::ENOTTY)),
        (RESCAN, "RESCAN", NoArg, Errno(libc::ENOTTY)),
        (
            SUBMIT_IO,
            "SUBMIT_IO",
            Errno(libc::ENOTTY),
            Errno(libc::ENOTTY),
        ),
        (
            SUBSYS_RESET,
            "SUBSYS_RESET",
            Errno(libc::ENOTTY),
            Errno(libc::ENOTTY),
        ),
        (
            IO64_CMD_VEC,
            "IO64_CMD_VEC",
            Errno(libc::ENOTTY),
            Errno(libc::ENOTTY),
        ),
        // Known numbers with a wrong size or direction encoded.
        (
            0xc040_4e41,
            "ADMIN_CMD, size 64",
            Errno(libc::ENOTTY),
            Errno(libc::ENOTTY),
        ),
        (
            0x4e41,
            "ADMIN_CMD, no size",
            Errno(libc::ENOTTY),
            Errno(libc::ENOTTY),
        ),
        (
            0x8048_4e41,
            "ADMIN_CMD, read only",
            Errno(libc::ENOTTY),
            Errno(libc::ENOTTY),
        ),
        (
            0xc048_4e44,
            "RESET with a size",
            Errno(libc::ENOTTY),
            Errno(libc::ENOTTY),
        ),
        (0x4e99, "'N' 0x99", Errno(libc::ENOTTY), Errno(libc::ENOTTY)),
        (
            0xc048_4f41,
            "type 'O'",
            Errno(libc::ENOTTY),
            Errno(libc::ENOTTY),
        ),
        (0, "0", Errno(libc::ENOTTY), Errno(libc::ENOTTY)),
        (
            0xffff_ffff,
            "0xffffffff",
            Errno(libc::ENOTTY),
            Errno(libc::ENOTTY),
        ),
        (BLKGETSIZE64, "BLKGETSIZE64", Errno(libc::ENOTTY), Output),
    ]
}

/// An address with nothing mapped: a page mapped and unmapped again.
fn unmapped_page() -> Result<u64, String> {
    // SAFETY: an anonymous mapping of one page, unmapped at once; only its address is kept.
    unsafe {
        let p = libc::mmap(
            std::ptr::null_mut(),
            4096,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
            -1,
            0,
        );
        if p == libc::MAP_FAILED {
            return Err("mmap failed".into());
        }
        libc::munmap(p, 4096);
        Ok(p as u64)
    }
}

fn ioctls(env: &Env) -> Result<Vec<Report>, String> {
    with_loaded(env, |_pf| {
        let ctrl = fs::File::open("/dev/rnvme0").map_err(|e| format!("/dev/rnvme0: {e}"))?;
        let disk = fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open("/dev/rnvme0n1")
            .map_err(|e| format!("/dev/rnvme0n1: {e}"))?;
        let bad_args: Vec<(&str, u64)> = vec![
            ("NULL", 0),
            ("address 0x10", 0x10),
            ("an unmapped page", unmapped_page()?),
            ("a kernel address", 0xffff_8880_0000_0000),
        ];
        let mut c = Campaign::start("ioctls")?;
        for (req, name, on_ctrl, on_disk) in table() {
            for (dev, fd, want) in [
                ("/dev/rnvme0", ctrl.as_raw_fd(), on_ctrl),
                ("/dev/rnvme0n1", disk.as_raw_fd(), on_disk),
            ] {
                // Every bad pointer.
                for (what, addr) in &bad_args {
                    let got = nvme_ioctl::ioctl(fd, req, *addr as *mut u8);
                    c.count(&got);
                    let ok = match want {
                        Want::Errno(e) => got == Err(e),
                        Want::NoArg => got.is_ok(),
                        Want::Command(_) | Want::Output => got == Err(libc::EFAULT),
                    };
                    ensure(ok, || {
                        format!("{dev}: {name} with {what}: got {got:?}, want {want:?}")
                    })?;
                }
                // A zeroed structure as big as the largest argument.
                let mut zero = [0u8; 80];
                let got = nvme_ioctl::ioctl(fd, req, zero.as_mut_ptr());
                c.count(&got);
                let ok = match want {
                    Want::Errno(e) => got == Err(e),
                    Want::NoArg | Want::Output => got.is_ok(),
                    Want::Command(r) => got == r,
                };
                ensure(ok, || {
                    format!("{dev}: {name} with a zeroed structure: got {got:?}, want {want:?}")
                })?;
                // Unprivileged, with a well-formed Identify Controller where a command is
                // read.
                let mut id = vec![0u8; 4096];
                let mut cmd = Cmd::new(0x06, 0, &mut id, 1);
                let got = errno_unprivileged(fd, req, &mut cmd.0)?;
                c.count(&got.map_or(Ok(()), Err));
                let want_unpriv = match want {
                    Want::Errno(e) => Some(e),
                    _ if privileged(req) => Some(libc::EACCES),
                    _ => None,
                };
                ensure(got == want_unpriv, || {
                    format!("{dev}: {name} unprivileged: got {got:?}, want {want_unpriv:?}")
                })?;
            }
        }
        c.finish()?;
        // The controller and the disk still work.
        let mut id = vec![0u8; 4096];
        let got = Cmd::new(0x06, 0, &mut id, 1).send(ctrl.as_raw_fd(), ADMIN_CMD);
        ensure(got == Ok(0) && id[4..24].starts_with(b"RNVME0001"), || {
            format!("Identify after the campaign: {got:?}")
        })?;
        drop(disk);
        let data = pattern(64 << 10, 0x10c7);
        let mut d = Direct::open()?;
        d.write_at(4 << 20, &data)?;
        ensure(d.read_at(4 << 20, data.len())? == data, || {
            "the disk does not read back after the campaign".into()
        })
    })
}
