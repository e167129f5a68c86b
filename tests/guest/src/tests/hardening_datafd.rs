// SPDX-License-Identifier: GPL-2.0

//! The VFIO migration data fd against hostile calls, on a saving fd (PRE_COPY, then
//! STOP_COPY) and a resuming fd: positioned reads and writes and seeks (`ESPIPE`: a stream),
//! the wrong direction (`EBADF`), bad and half-mapped buffers (`EFAULT`, and nothing of the
//! stream consumed or taken), too much at once (`EFBIG`), unknown ioctls (`ENOTTY`), a bad
//! `VFIO_MIG_GET_PRECOPY_INFO` argument (`EFAULT`, `EINVAL`), `mmap` (`ENODEV`). The
//! stream that went through all of that is then complete and loads: the destination runs
//! the source's controller and reads what the source wrote. An unprivileged holder of the fd
//! may use it (the fd is the capability, as for every VFIO fd).

use std::{fs::File, os::fd::AsRawFd};

use crate::{
    disk::pattern,
    harness::{ensure, Env, Report, Test},
    kmsg,
    nvme_ioctl::errno_unprivileged,
    tests::{
        hardening::Campaign,
        migration::{open_pair, with_vf_pair},
    },
    vfio_migration::{precopy_info, read_all, set_state, state, write_all, ReadEnd, State},
};

/// The data fd campaign.
pub fn tests() -> Vec<Test> {
    vec![Test {
        name: "hardening/migration-data-fd-hostile-calls",
        groups: &["hardening", "migration"],
        run: data_fd,
    }]
}

/// `VFIO_MIG_GET_PRECOPY_INFO`.
const PRECOPY_INFO: libc::c_ulong = ((b';' as libc::c_ulong) << 8) | 121;

fn errno() -> i32 {
    std::io::Error::last_os_error().raw_os_error().unwrap_or(0)
}

/// A syscall's result: its non-negative return, or the errno.
fn sys(r: isize) -> Result<isize, i32> {
    if r < 0 {
        Err(errno())
    } else {
        Ok(r)
    }
}

/// Addresses that fault: none, low, unmapped, the kernel's; and two pages of which the
/// second is unmapped.
struct BadBuffers {
    bad: Vec<(&'static str, usize)>,
    half: usize,
}

impl BadBuffers {
    fn new() -> Result<Self, String> {
        // SAFETY: anonymous mappings; parts are unmapped again and only addresses kept.
        let (unmapped, half) = unsafe {
            let map = |n| {
                libc::mmap(
                    std::ptr::null_mut(),
                    n,
                    libc::PROT_READ | libc::PROT_WRITE,
                    libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                    -1,
                    0,
                )
            };
            let a = map(4096);
            let b = map(8192);
            if a == libc::MAP_FAILED || b == libc::MAP_FAILED {
                return Err("mmap failed".into());
            }
            libc::munmap(a, 4096);
            libc::munmap(b.cast::<u8>().add(4096).cast(), 4096);
            (a as usize, b as usize)
        };
        Ok(Self {
            bad: vec![
                ("NULL", 0),
                ("address 0x10", 0x10),
                ("an unmapped page", unmapped),
                ("a kernel address", 0xffff_8880_0000_0000),
            ],
            half,
        })
    }
}

impl BadBuffers {
    /// 16 mapped bytes followed by an unmapped page: any transfer of more faults halfway.
    fn half_mapped(&self) -> *mut libc::c_void {
        (self.half + 4096 - 16) as *mut libc::c_void
    }
}

fn data_fd(env: &Env) -> Result<Vec<Report>, String> {
    with_vf_pair(env, |_pf, vf1, vf2| {
        let mark = kmsg::mark()?;
        let (mut a, mut b) = open_pair(vf1, vf2)?;
        let lba = a.lba_size(2)?;
        let written = pattern(4096, 0xfd);
        a.write_page(2, 4096 * 50, lba, &written)?;
        let bufs = BadBuffers::new()?;
        let mut c = Campaign::start("migration data fd")?;
        let mut check = |what: &str, got: Result<isize, i32>, want: Result<isize, i32>| {
            c.count(&got);
            ensure(got == want, || {
                format!("{what}: got {got:?}, want {want:?}")
            })
        };

        // The saving fd in PRE_COPY.
        let mut out = set_state(&a, State::PreCopy)
            .map_err(|e| format!("PRE_COPY: {e}"))?
            .ok_or("no saving fd")?;
        let (initial, _) = precopy_info(&out).map_err(|e| format!("precopy info: {e}"))?;
        let fd = out.as_raw_fd();
        let mut buf = vec![0u8; 8192];
        let p = buf.as_mut_ptr().cast::<libc::c_void>();
        // SAFETY (all calls below): plain system calls on an fd this process owns; every
        // buffer is either `buf` (valid for its length) or deliberately invalid, which the
        // kernel must refuse with EFAULT without touching memory.
        unsafe {
            // A negative offset is refused before the fd is looked at.
            for (off, want) in [(0, libc::ESPIPE), (100, libc::ESPIPE), (-1, libc::EINVAL)] {
                check(
                    &format!("pread at {off}"),
                    sys(libc::pread(fd, p, 16, off)),
                    Err(want),
                )?;
            }
            let iov = libc::iovec {
                iov_base: p,
                iov_len: 16,
            };
            check(
                "preadv at 0",
                sys(libc::preadv(fd, &iov, 1, 0)),
                Err(libc::ESPIPE),
            )?;
            for whence in [libc::SEEK_SET, libc::SEEK_CUR, libc::SEEK_END] {
                check(
                    &format!("lseek whence {whence}"),
                    sys(libc::lseek(fd, 0, whence) as isize),
                    Err(libc::ESPIPE),
                )?;
            }
            check(
                "write to the saving fd",
                sys(libc::write(fd, p, 16)),
                Err(libc::EBADF),
            )?;
            for (what, addr) in &bufs.bad {
                check(
                    &format!("read into {what}"),
                    sys(libc::read(fd, *addr as *mut libc::c_void, 16)),
                    Err(libc::EFAULT),
                )?;
            }
            check(
                "read into a half-mapped buffer",
                sys(libc::read(fd, bufs.half_mapped(), 8192)),
                Err(libc::EFAULT),
            )?;
            check("read of 0 bytes", sys(libc::read(fd, p, 0)), Ok(0))?;
            for req in [0x3b99, 0, PRECOPY_INFO + 1, 0xc018_3b79] {
                check(
                    &format!("ioctl {req:#x}"),
                    sys(libc::ioctl(fd, req, p) as isize),
                    Err(libc::ENOTTY),
                )?;
            }
            check(
                "precopy info at NULL",
                sys(libc::ioctl(fd, PRECOPY_INFO, 0usize) as isize),
                Err(libc::EFAULT),
            )?;
            let mut info = [8u64, 0, 0];
            check(
                "precopy info with argsz 8",
                sys(libc::ioctl(fd, PRECOPY_INFO, info.as_mut_ptr()) as isize),
                Err(libc::EINVAL),
            )?;
            let m = libc::mmap(
                std::ptr::null_mut(),
                4096,
                libc::PROT_READ,
                libc::MAP_SHARED,
                fd,
                0,
            );
            check(
                "mmap",
                if m == libc::MAP_FAILED {
                    Err(errno())
                } else {
                    libc::munmap(m, 4096);
                    Ok(0)
                },
                Err(libc::ENODEV),
            )?;
        }
        // The fd is the capability: an unprivileged holder reads the precopy info.
        let mut info = [24u8; 24];
        info[1..].fill(0);
        let got = errno_unprivileged(fd, PRECOPY_INFO, &mut info)?;
        check("precopy info unprivileged", got.map_or(Ok(0), Err), Ok(0))?;
        // Nothing was consumed: the whole compatibility section is still there.
        let (compat, end) = read_all(&mut out, 100).map_err(|e| format!("PRE_COPY read: {e}"))?;
        ensure(
            compat.len() as u64 == initial && end == ReadEnd::Temporary,
            || {
                format!(
                    "after the hostile calls PRE_COPY read {} bytes ending {end:?}, want {initial}",
                    compat.len()
                )
            },
        )?;

        // The resuming fd.
        let mut into = set_state(&b, State::Resuming)
            .map_err(|e| format!("RESUMING: {e}"))?
            .ok_or("no resuming fd")?;
        let fd = into.as_raw_fd();
        let src = compat.as_ptr().cast::<libc::c_void>();
        // SAFETY: as above.
        unsafe {
            check(
                "pwrite at 0",
                sys(libc::pwrite(fd, src, 16, 0)),
                Err(libc::ESPIPE),
            )?;
            let iov = libc::iovec {
                iov_base: src.cast_mut(),
                iov_len: 16,
            };
            check(
                "pwritev at 0",
                sys(libc::pwritev(fd, &iov, 1, 0)),
                Err(libc::ESPIPE),
            )?;
            check(
                "lseek",
                sys(libc::lseek(fd, 0, libc::SEEK_SET) as isize),
                Err(libc::ESPIPE),
            )?;
            check(
                "read from the resuming fd",
                sys(libc::read(fd, p, 16)),
                Err(libc::EBADF),
            )?;
            for (what, addr) in &bufs.bad {
                check(
                    &format!("write from {what}"),
                    sys(libc::write(fd, *addr as *const libc::c_void, 16)),
                    Err(libc::EFAULT),
                )?;
            }
            check(
                "write from a half-mapped buffer",
                sys(libc::write(fd, bufs.half_mapped(), 8192)),
                Err(libc::EFAULT),
            )?;
            check(
                "write of 1 GiB",
                sys(libc::write(fd, src, 1 << 30)),
                Err(libc::EFBIG),
            )?;
            check("write of 0 bytes", sys(libc::write(fd, src, 0)), Ok(0))?;
            let mut info = [24u64, 0, 0];
            check(
                "precopy info on the resuming fd",
                sys(libc::ioctl(fd, PRECOPY_INFO, info.as_mut_ptr()) as isize),
                Err(libc::EINVAL),
            )?;
            check(
                "ioctl 0x3b99",
                sys(libc::ioctl(fd, 0x3b99, p) as isize),
                Err(libc::ENOTTY),
            )?;
        }
        let (tried, errors) = (c.tried, c.errors);
        c.finish()?;
        ensure(errors + 3 == tried, || {
            format!(
                "{errors} of {tried} calls failed; all but the two empty ones and the \
                 unprivileged precopy info must"
            )
        })?;

        // The stream through those fds is whole: the destination takes it and runs.
        write_all(&mut into, &compat, 7).map_err(|e| format!("compat write: {e}"))?;
        set_state(&a, State::StopCopy).map_err(|e| format!("STOP_COPY: {e}"))?;
        let (rest, end) = read_all(&mut out, 4096).map_err(|e| format!("STOP_COPY read: {e}"))?;
        ensure(end == ReadEnd::End, || {
            format!("STOP_COPY read ended {end:?}")
        })?;
        write_all(&mut into, &rest, 1000).map_err(|e| format!("state write: {e}"))?;
        set_state(&b, State::Stop).map_err(|e| format!("RESUMING -> STOP: {e}"))?;
        set_state(&b, State::Running).map_err(|e| format!("STOP -> RUNNING: {e}"))?;
        drop::<File>(into);
        set_state(&a, State::Stop).map_err(|e| format!("source STOP: {e}"))?;
        drop::<File>(out);
        let st = state(&b).map_err(|e| e.to_string())?;
        ensure(st == State::Running, || format!("destination in {st:?}"))?;
        b.adopt_queues(&a);
        ensure(b.read_page(2, 4096 * 50, lba)? == written, || {
            "the destination does not read what the source wrote".into()
        })?;
        let log = kmsg::since(mark)?;
        ensure(
            log.iter().any(|l| l.contains("controller state loaded")),
            || "no controller state loaded".into(),
        )
    })
}
