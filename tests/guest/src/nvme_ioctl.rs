// SPDX-License-Identifier: GPL-2.0

//! Raw NVMe ioctls (`<linux/nvme_ioctl.h>`) for tests that go below nvme-cli: hostile
//! arguments, exact errno values, unprivileged callers.

/// `NVME_IOCTL_ID`.
pub const ID: libc::c_ulong = 0x4e40;
/// `NVME_IOCTL_ADMIN_CMD`.
pub const ADMIN_CMD: libc::c_ulong = 0xc048_4e41;
/// `NVME_IOCTL_IO_CMD`.
pub const IO_CMD: libc::c_ulong = 0xc048_4e43;
/// `NVME_IOCTL_IO64_CMD`.
pub const IO64_CMD: libc::c_ulong = 0xc050_4e48;

/// A `struct nvme_passthru_cmd64` image (its first 72 bytes are `struct nvme_passthru_cmd`).
#[derive(Clone, Copy)]
pub struct Cmd(pub [u8; 80]);

impl Cmd {
    /// A command with `opcode`, namespace `nsid`, data buffer `buf` and CDW10.
    pub fn new(opcode: u8, nsid: u32, buf: &mut [u8], cdw10: u32) -> Self {
        Self::raw(
            opcode,
            nsid,
            buf.as_mut_ptr() as u64,
            buf.len() as u32,
            cdw10,
        )
    }

    /// A command with an arbitrary (possibly bad) data address and length.
    pub fn raw(opcode: u8, nsid: u32, addr: u64, len: u32, cdw10: u32) -> Self {
        let mut b = [0u8; 80];
        b[0] = opcode;
        b[4..8].copy_from_slice(&nsid.to_le_bytes());
        b[24..32].copy_from_slice(&addr.to_le_bytes());
        b[36..40].copy_from_slice(&len.to_le_bytes());
        b[40..44].copy_from_slice(&cdw10.to_le_bytes());
        Self(b)
    }

    /// Sets command dword `n` (10 to 15).
    pub fn cdw(mut self, n: usize, value: u32) -> Self {
        let at = 40 + (n - 10) * 4;
        self.0[at..at + 4].copy_from_slice(&value.to_le_bytes());
        self
    }

    /// Sets byte `at` of the structure (to build malformed commands).
    pub fn byte(mut self, at: usize, value: u8) -> Self {
        self.0[at] = value;
        self
    }

    /// Issues this command with ioctl `req` on `fd`.
    pub fn send(&mut self, fd: i32, req: libc::c_ulong) -> Result<i32, i32> {
        ioctl(fd, req, self.0.as_mut_ptr())
    }

    /// The `result` field (completion dword 0) the kernel wrote back after [`Self::send`].
    pub fn result(&self) -> u32 {
        u32::from_le_bytes([self.0[68], self.0[69], self.0[70], self.0[71]])
    }
}

/// Issues an ioctl; returns its return value or the errno.
pub fn ioctl(fd: i32, req: libc::c_ulong, arg: *mut u8) -> Result<i32, i32> {
    // SAFETY: the caller passes a pointer that is valid for the ioctl, or deliberately not
    // (the kernel must then fail with EFAULT).
    let rc = unsafe { libc::ioctl(fd, req, arg) };
    if rc < 0 {
        Err(std::io::Error::last_os_error().raw_os_error().unwrap_or(0))
    } else {
        Ok(rc)
    }
}

/// Runs `ioctl(fd, req, arg)` in a child process that gave up root (uid 65534, no
/// capabilities); returns the errno it got, or `None` if the ioctl succeeded.
pub fn errno_unprivileged(
    fd: i32,
    req: libc::c_ulong,
    arg: &mut [u8],
) -> Result<Option<i32>, String> {
    // SAFETY: fork in a single-threaded test process; the child only calls
    // async-signal-safe functions before _exit.
    let pid = unsafe { libc::fork() };
    if pid < 0 {
        return Err("fork failed".into());
    }
    if pid == 0 {
        // SAFETY: plain system calls in the child; exit codes: 0 success, 1 + errno (< 254)
        // failure, 255 setresuid failed.
        let code = unsafe {
            if libc::setresuid(65534, 65534, 65534) != 0 {
                255
            } else if libc::ioctl(fd, req, arg.as_mut_ptr()) < 0 {
                (1 + *libc::__errno_location()).min(254)
            } else {
                0
            }
        };
        // SAFETY: terminating the child.
        unsafe { libc::_exit(code) };
    }
    let mut status = 0;
    // SAFETY: waiting for the child forked above.
    unsafe { libc::waitpid(pid, &mut status, 0) };
    if !libc::WIFEXITED(status) {
        return Err(format!("child died (status {status})"));
    }
    match libc::WEXITSTATUS(status) {
        0 => Ok(None),
        255 => Err("setresuid failed".into()),
        code => Ok(Some(code - 1)),
    }
}
