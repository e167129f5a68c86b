// SPDX-License-Identifier: GPL-2.0

//! The controller character device: nvme-cli works against it as against the C driver, and
//! hostile ioctls get errors.

use std::{fs, os::fd::AsRawFd, path::Path, thread, time::Duration};

use crate::{
    harness::{ensure, Env, Report, Test},
    module::{self, RNVME},
    tests::smoke::load_fresh,
};

/// The first controller's character device.
const CHARDEV: &str = "/dev/rnvme0";

/// The character device tests.
pub fn tests() -> Vec<Test> {
    vec![
        Test {
            name: "chardev/nvme-cli-matches-c-driver",
            groups: &["chardev", "smoke"],
            run: nvme_cli_matches_c_driver,
        },
        Test {
            name: "chardev/hostile-ioctls",
            groups: &["chardev"],
            run: hostile_ioctls,
        },
    ]
}

/// nvme-cli commands whose output must be identical through both drivers.
const SAME_OUTPUT: &[&[&str]] = &[
    &["id-ctrl", "-o", "json"],
    &["id-ns", "-n", "1", "-o", "json"],
    &["list-secondary", "-o", "json"],
    &["primary-ctrl-caps", "-o", "json"],
    &["id-ns", "-n", "1", "-o", "binary"],
];

fn nvme_cli(dev: &str, args: &[&str]) -> Result<String, String> {
    let mut argv = vec![args[0], dev];
    argv.extend_from_slice(&args[1..]);
    module::run("nvme", &argv)
}

fn nvme_cli_matches_c_driver(env: &Env) -> Result<Vec<Report>, String> {
    load_fresh(env)?;
    let ours: Vec<Result<String, String>> =
        SAME_OUTPUT.iter().map(|a| nvme_cli(CHARDEV, a)).collect();
    // A command that only has to succeed (its counters move).
    let smart = nvme_cli(CHARDEV, &["smart-log", "-o", "json"]);
    module::rmmod(RNVME)?;

    module::modprobe(&env.modroot, "nvme")?;
    let mut waited = 0;
    while !Path::new("/dev/nvme0").exists() && waited < 200 {
        thread::sleep(Duration::from_millis(50));
        waited += 1;
    }
    let theirs: Vec<Result<String, String>> = SAME_OUTPUT
        .iter()
        .map(|a| nvme_cli("/dev/nvme0", a))
        .collect();
    module::modprobe_remove(&env.modroot, "nvme")?;

    let mut reports = Vec::new();
    for ((args, o), t) in SAME_OUTPUT.iter().zip(ours).zip(theirs) {
        let name = format!("chardev/nvme-cli-matches-c-driver/{}", args.join("-"));
        let outcome = match (o, t) {
            (Ok(o), Ok(t)) if o == t && !o.is_empty() => crate::harness::Outcome::Pass,
            (Ok(o), Ok(t)) => crate::harness::Outcome::Fail(format!(
                "outputs differ ({} vs {} bytes)",
                o.len(),
                t.len()
            )),
            (Err(e), _) => crate::harness::Outcome::Fail(format!("rnvme: {e}")),
            (_, Err(e)) => crate::harness::Outcome::Fail(format!("C driver: {e}")),
        };
        reports.push(Report { name, outcome });
    }
    reports.push(Report {
        name: "chardev/nvme-cli-matches-c-driver/smart-log".into(),
        outcome: match smart {
            Ok(s) if s.contains("critical_warning") => crate::harness::Outcome::Pass,
            Ok(s) => crate::harness::Outcome::Fail(format!("unexpected output {s:?}")),
            Err(e) => crate::harness::Outcome::Fail(e),
        },
    });
    Ok(reports)
}

/// `NVME_IOCTL_ADMIN_CMD`.
const ADMIN_CMD: libc::c_ulong = 0xc048_4e41;

/// A `struct nvme_passthru_cmd` image.
fn passthru(opcode: u8, addr: u64, len: u32, cdw10: u32) -> [u8; 72] {
    let mut b = [0u8; 72];
    b[0] = opcode;
    b[24..32].copy_from_slice(&addr.to_le_bytes());
    b[36..40].copy_from_slice(&len.to_le_bytes());
    b[40..44].copy_from_slice(&cdw10.to_le_bytes());
    b
}

/// Issues an ioctl; returns its return value or the errno.
fn ioctl(fd: i32, req: libc::c_ulong, arg: *mut u8) -> Result<i32, i32> {
    // SAFETY: the caller passes a pointer that is valid for the ioctl, or deliberately not.
    let rc = unsafe { libc::ioctl(fd, req, arg) };
    if rc < 0 {
        Err(std::io::Error::last_os_error().raw_os_error().unwrap_or(0))
    } else {
        Ok(rc)
    }
}

fn hostile_ioctls(env: &Env) -> Result<Vec<Report>, String> {
    load_fresh(env)?;
    let result = (|| {
        let f = fs::File::open(CHARDEV).map_err(|e| format!("{CHARDEV}: {e}"))?;
        let fd = f.as_raw_fd();
        let mut buf = vec![0u8; 4096];
        let good = |b: &mut Vec<u8>| passthru(0x06, b.as_mut_ptr() as u64, 4096, 1);

        // A good Identify Controller works and fills the buffer.
        let mut cmd = good(&mut buf);
        ensure(ioctl(fd, ADMIN_CMD, cmd.as_mut_ptr()) == Ok(0), || {
            "identify failed".into()
        })?;
        ensure(buf[4..24].starts_with(b"RNVME0001"), || {
            "identify returned no serial".into()
        })?;

        let cases: Vec<(&str, libc::c_ulong, Vec<u8>, i32)> = vec![
            (
                "unknown ioctl",
                0xc048_4e99,
                good(&mut buf).to_vec(),
                libc::ENOTTY,
            ),
            (
                "data beyond 64 KiB",
                ADMIN_CMD,
                passthru(0x06, buf.as_mut_ptr() as u64, 1 << 20, 1).to_vec(),
                libc::EINVAL,
            ),
            (
                "data length without buffer",
                ADMIN_CMD,
                passthru(0x06, 0, 4096, 1).to_vec(),
                libc::EINVAL,
            ),
            (
                "bad data pointer",
                ADMIN_CMD,
                passthru(0x06, 0x10, 4096, 1).to_vec(),
                libc::EFAULT,
            ),
            (
                "create I/O SQ from userspace",
                ADMIN_CMD,
                passthru(0x01, 0, 0, 0).to_vec(),
                libc::EPERM,
            ),
            (
                "metadata",
                ADMIN_CMD,
                {
                    let mut c = good(&mut buf);
                    c[32] = 8;
                    c.to_vec()
                },
                libc::EINVAL,
            ),
        ];
        for (what, req, mut arg, errno) in cases {
            let got = ioctl(fd, req, arg.as_mut_ptr());
            ensure(got == Err(errno), || {
                format!("{what}: got {got:?}, want errno {errno}")
            })?;
        }
        // A bad pointer to the command structure itself.
        let got = ioctl(fd, ADMIN_CMD, 8 as *mut u8);
        ensure(got == Err(libc::EFAULT), || {
            format!("bad argument pointer: got {got:?}")
        })?;
        // An NVMe error comes back as a positive status: Identify with a reserved CNS.
        let mut bad_cns = passthru(0x06, buf.as_mut_ptr() as u64, 4096, 0xff);
        let got = ioctl(fd, ADMIN_CMD, bad_cns.as_mut_ptr());
        ensure(matches!(got, Ok(s) if s > 0), || {
            format!("reserved CNS: got {got:?}")
        })?;

        // Without CAP_SYS_ADMIN (a child that dropped root), admin commands are refused.
        // SAFETY: fork in a single-threaded test process; the child only calls
        // async-signal-safe functions before _exit.
        let pid = unsafe { libc::fork() };
        if pid == 0 {
            let mut cmd = good(&mut buf);
            // SAFETY: plain system calls in the child.
            let code = unsafe {
                if libc::setresuid(65534, 65534, 65534) != 0 {
                    2
                } else if libc::ioctl(fd, ADMIN_CMD, cmd.as_mut_ptr()) < 0
                    && *libc::__errno_location() == libc::EACCES
                {
                    0
                } else {
                    1
                }
            };
            // SAFETY: terminating the child.
            unsafe { libc::_exit(code) };
        }
        let mut status = 0;
        // SAFETY: waiting for the child forked above.
        unsafe { libc::waitpid(pid, &mut status, 0) };
        ensure(
            libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0,
            || {
                format!(
                    "unprivileged admin command not refused with EACCES (child status {status})"
                )
            },
        )?;

        // The controller still works afterwards.
        let mut cmd = good(&mut buf);
        ensure(ioctl(fd, ADMIN_CMD, cmd.as_mut_ptr()) == Ok(0), || {
            "identify failed after the hostile ioctls".into()
        })
    })();
    module::rmmod(RNVME)?;
    result.map(|()| vec![])
}
