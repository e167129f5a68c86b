// SPDX-License-Identifier: GPL-2.0

//! I/O passthrough: NVMe I/O commands from userspace through a disk (`/dev/rnvme0n1`) and
//! through the controller device (`/dev/rnvme0`), raw and through nvme-cli, and the errors
//! hostile ones get.

use std::{fs, os::fd::AsRawFd};

use crate::fixture::with_loaded;
use crate::{
    disk::{pattern, Direct, DISK},
    harness::{ensure, Env, Report, Test},
    module,
    nvme_ioctl::{errno_unprivileged, Cmd, ID, IO64_CMD, IO_CMD},
};

/// The controller device.
const CHARDEV: &str = "/dev/rnvme0";

/// NVM command set opcodes.
const FLUSH: u8 = 0x00;
const WRITE: u8 = 0x01;
const READ: u8 = 0x02;

/// Namespace 1 of the test device: 512-byte blocks, 524288 of them.
const LBA: usize = 512;
const NS_BLOCKS: u32 = 524_288;

/// The passthrough tests.
pub fn tests() -> Vec<Test> {
    vec![
        Test {
            name: "passthru/io-commands-read-back",
            groups: &["passthru", "block", "chardev"],
            run: io_commands_read_back,
        },
        Test {
            name: "passthru/hostile-io-commands",
            groups: &["passthru", "block", "chardev"],
            run: hostile_io_commands,
        },
    ]
}

/// A Read or Write of `buf` at block `slba` of namespace 1.
fn rw(opcode: u8, slba: u32, buf: &mut [u8]) -> Cmd {
    let blocks = (buf.len() / LBA) as u32;
    Cmd::new(opcode, 1, buf, slba).cdw(12, blocks - 1)
}

fn open_rw(path: &str) -> Result<fs::File, String> {
    fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
        .map_err(|e| format!("open {path}: {e}"))
}

/// Loads the driver, opens the disk (raw and `O_DIRECT`) and the controller device, and
/// runs `f` with the disk's and the controller's file descriptors; unloads afterwards.
fn with_devices(
    env: &Env,
    f: impl FnOnce(i32, i32, &mut Direct) -> Result<(), String>,
) -> Result<Vec<Report>, String> {
    with_loaded(env, |_| {
        let disk = open_rw(DISK)?;
        let ctrl = open_rw(CHARDEV)?;
        let mut direct = Direct::open()?;
        f(disk.as_raw_fd(), ctrl.as_raw_fd(), &mut direct)
    })
}

fn io_commands_read_back(env: &Env) -> Result<Vec<Report>, String> {
    with_devices(env, |dfd, cfd, direct| {
        let nsid = crate::nvme_ioctl::ioctl(dfd, ID, std::ptr::null_mut());
        ensure(nsid == Ok(1), || format!("NVME_IOCTL_ID: {nsid:?}"))?;

        // A 16 KiB Write through the disk (a PRP list), read back with O_DIRECT.
        let data = pattern(16 << 10, 0x10c0);
        let mut buf = data.clone();
        let got = rw(WRITE, 2048, &mut buf).send(dfd, IO_CMD);
        ensure(got == Ok(0), || format!("write through the disk: {got:?}"))?;
        ensure(
            direct.read_at(2048 * LBA as u64, data.len())? == data,
            || "data written by NVME_IOCTL_IO_CMD reads back differently".into(),
        )?;

        // Data written with O_DIRECT, read by a 64-bit Read through the controller device.
        let data = pattern(8 << 10, 0x10c1);
        direct.write_at(4096 * LBA as u64, &data)?;
        let mut buf = vec![0u8; data.len()];
        let got = rw(READ, 4096, &mut buf).send(cfd, IO64_CMD);
        ensure(got == Ok(0), || {
            format!("read through the controller: {got:?}")
        })?;
        ensure(buf == data, || {
            "NVME_IOCTL_IO64_CMD read returned other data".into()
        })?;

        // A command without data.
        let got = Cmd::raw(FLUSH, 1, 0, 0, 0).send(dfd, IO_CMD);
        ensure(got == Ok(0), || format!("flush: {got:?}"))?;

        // An NVMe error comes back as a positive status: a Read past the last block (LBA
        // Out of Range, 0x80).
        let mut buf = vec![0u8; LBA];
        let got = rw(READ, NS_BLOCKS, &mut buf).send(dfd, IO_CMD);
        ensure(matches!(got, Ok(s) if s & 0xff == 0x80), || {
            format!("read past the end: got {got:?}, want status 0x80")
        })?;

        // nvme-cli: write and read through the disk with its own I/O commands.
        let data = pattern(4096, 0x10c2);
        let (wfile, rfile) = ("/tmp/passthru-in", "/tmp/passthru-out");
        fs::write(wfile, &data).map_err(|e| format!("{wfile}: {e}"))?;
        let common = ["-s", "8192", "-c", "7", "-z", "4096"];
        let mut args = vec!["write", DISK];
        args.extend_from_slice(&common);
        args.extend_from_slice(&["-d", wfile]);
        module::run("nvme", &args)?;
        let mut args = vec!["read", DISK];
        args.extend_from_slice(&common);
        args.extend_from_slice(&["-d", rfile]);
        module::run("nvme", &args)?;
        let back = fs::read(rfile).map_err(|e| format!("{rfile}: {e}"))?;
        ensure(back == data, || {
            "nvme read returned other data than nvme write wrote".into()
        })?;
        ensure(direct.read_at(8192 * LBA as u64, 4096)? == data, || {
            "nvme write's data reads back differently through the disk".into()
        })?;

        // Identify Namespace through the disk (NVME_IOCTL_ID, then admin passthrough) is
        // the same as through the controller.
        let by_disk = module::run("nvme", &["id-ns", DISK, "-o", "json"])?;
        let by_ctrl = module::run("nvme", &["id-ns", CHARDEV, "-n", "1", "-o", "json"])?;
        ensure(by_disk == by_ctrl && !by_disk.is_empty(), || {
            "id-ns through the disk differs from id-ns through the controller".into()
        })
    })
}

fn hostile_io_commands(env: &Env) -> Result<Vec<Report>, String> {
    with_devices(env, |dfd, cfd, direct| {
        let data = pattern(4096, 0x4057);
        direct.write_at(1 << 20, &data)?;

        let mut buf = vec![0u8; 4096];
        let addr = buf.as_mut_ptr() as u64;
        let mut big = vec![0u8; 256 << 10];
        let big_addr = big.as_mut_ptr() as u64;
        let cases: Vec<(&str, i32, libc::c_ulong, Cmd, i32)> = vec![
            (
                "another namespace through a disk",
                dfd,
                IO_CMD,
                Cmd::new(READ, 2, &mut buf, 0).cdw(12, 7),
                libc::EINVAL,
            ),
            (
                "a namespace without a disk through the controller",
                cfd,
                IO_CMD,
                Cmd::new(READ, 99, &mut buf, 0).cdw(12, 7),
                libc::EINVAL,
            ),
            (
                "a bidirectional opcode",
                dfd,
                IO_CMD,
                Cmd::new(0x03, 1, &mut buf, 0),
                libc::EINVAL,
            ),
            (
                "data beyond 512 KiB",
                dfd,
                IO_CMD,
                Cmd::raw(READ, 1, addr, 1 << 20, 0).cdw(12, 2047),
                libc::EINVAL,
            ),
            (
                "data beyond the disk's 128 KiB request limit",
                dfd,
                IO_CMD,
                Cmd::raw(READ, 1, big_addr, 256 << 10, 0).cdw(12, 511),
                libc::EINVAL,
            ),
            (
                "a bad pointer to write from",
                dfd,
                IO_CMD,
                Cmd::raw(WRITE, 1, 0x10, 4096, 2048).cdw(12, 7),
                libc::EFAULT,
            ),
            (
                "a bad pointer to read into",
                dfd,
                IO64_CMD,
                Cmd::raw(READ, 1, 0x10, 4096, 2048).cdw(12, 7),
                libc::EFAULT,
            ),
            (
                "metadata",
                dfd,
                IO_CMD,
                Cmd::new(READ, 1, &mut buf, 0).cdw(12, 7).byte(32, 8),
                libc::EINVAL,
            ),
            (
                "a controller reset through a disk",
                dfd,
                0x4e44,
                Cmd::raw(0, 0, 0, 0, 0),
                libc::ENOTTY,
            ),
        ];
        for (what, fd, req, mut cmd, errno) in cases {
            let got = cmd.send(fd, req);
            ensure(got == Err(errno), || {
                format!("{what}: got {got:?}, want errno {errno}")
            })?;
        }

        // Without CAP_SYS_ADMIN: no commands, but the namespace ID is public.
        let mut read = rw(READ, 2048, &mut buf);
        let got = errno_unprivileged(dfd, IO_CMD, &mut read.0)?;
        ensure(got == Some(libc::EACCES), || {
            format!("unprivileged I/O command: got {got:?}, want EACCES")
        })?;
        let got = errno_unprivileged(dfd, ID, &mut [0u8; 8])?;
        ensure(got.is_none(), || {
            format!("unprivileged NVME_IOCTL_ID failed with errno {got:?}")
        })?;

        // Nothing broke, and nothing was written: the data is intact and commands work.
        ensure(direct.read_at(1 << 20, 4096)? == data, || {
            "data changed after the hostile commands".into()
        })?;
        let got = rw(READ, 2048, &mut buf).send(dfd, IO_CMD);
        ensure(got == Ok(0) && buf == data, || {
            format!("read after the hostile commands: {got:?}")
        })
    })
}
