// SPDX-License-Identifier: GPL-2.0

//! The controller character device: nvme-cli works against it as against the C driver, and
//! hostile ioctls get errors.

use std::{fs, os::fd::AsRawFd, path::Path, thread, time::Duration};

use crate::fixture::{load_fresh, with_loaded};
use crate::{
    harness::{ensure, Env, Report, Test},
    module::{self, RNVME},
    nvme_ioctl::{self, errno_unprivileged, Cmd, ADMIN_CMD, ID},
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

fn hostile_ioctls(env: &Env) -> Result<Vec<Report>, String> {
    with_loaded(env, |_| {
        let f = fs::File::open(CHARDEV).map_err(|e| format!("{CHARDEV}: {e}"))?;
        let fd = f.as_raw_fd();
        let mut buf = vec![0u8; 4096];
        let good = |b: &mut Vec<u8>| Cmd::new(0x06, 0, b, 1);

        // A good Identify Controller works and fills the buffer.
        let mut cmd = good(&mut buf);
        ensure(cmd.send(fd, ADMIN_CMD) == Ok(0), || {
            "identify failed".into()
        })?;
        ensure(buf[4..24].starts_with(b"RNVME0001"), || {
            "identify returned no serial".into()
        })?;

        let addr = buf.as_mut_ptr() as u64;
        let cases: Vec<(&str, libc::c_ulong, Cmd, i32)> = vec![
            ("unknown ioctl", 0xc048_4e99, good(&mut buf), libc::ENOTTY),
            (
                "data beyond 64 KiB",
                ADMIN_CMD,
                Cmd::raw(0x06, 0, addr, 1 << 20, 1),
                libc::EINVAL,
            ),
            (
                "data length without buffer",
                ADMIN_CMD,
                Cmd::raw(0x06, 0, 0, 4096, 1),
                libc::EINVAL,
            ),
            (
                "bad data pointer",
                ADMIN_CMD,
                Cmd::raw(0x06, 0, 0x10, 4096, 1),
                libc::EFAULT,
            ),
            (
                "create I/O SQ from userspace",
                ADMIN_CMD,
                Cmd::raw(0x01, 0, 0, 0, 0),
                libc::EPERM,
            ),
            (
                "metadata",
                ADMIN_CMD,
                good(&mut buf).byte(32, 8),
                libc::EINVAL,
            ),
            (
                "namespace ID of a controller",
                ID,
                good(&mut buf),
                libc::ENOTTY,
            ),
        ];
        for (what, req, mut arg, errno) in cases {
            let got = arg.send(fd, req);
            ensure(got == Err(errno), || {
                format!("{what}: got {got:?}, want errno {errno}")
            })?;
        }
        // A bad pointer to the command structure itself.
        let got = nvme_ioctl::ioctl(fd, ADMIN_CMD, 8 as *mut u8);
        ensure(got == Err(libc::EFAULT), || {
            format!("bad argument pointer: got {got:?}")
        })?;
        // An NVMe error comes back as a positive status: Identify with a reserved CNS.
        let got = Cmd::new(0x06, 0, &mut buf, 0xff).send(fd, ADMIN_CMD);
        ensure(matches!(got, Ok(s) if s > 0), || {
            format!("reserved CNS: got {got:?}")
        })?;

        // Without CAP_SYS_ADMIN (a child that dropped root), admin commands are refused.
        let got = errno_unprivileged(fd, ADMIN_CMD, &mut good(&mut buf).0)?;
        ensure(got == Some(libc::EACCES), || {
            format!("unprivileged admin command: got {got:?}, want EACCES")
        })?;

        // The controller still works afterwards.
        ensure(good(&mut buf).send(fd, ADMIN_CMD) == Ok(0), || {
            "identify failed after the hostile ioctls".into()
        })
    })
}
