// SPDX-License-Identifier: GPL-2.0

//! Poll queues (`rnvme.poll_queues`): polled I/O (io_uring with `IORING_SETUP_IOPOLL`, fio
//! `--hipri`) runs on queues without interrupts, data verified; the default has none.

use std::{fs, path::Path};

use crate::{
    harness::{ensure, Env, Report, Test},
    kmsg,
    module::{self, RNVME},
};

/// The disk under test.
const DISK: &str = "rnvme0n1";

/// The poll tests.
pub fn tests() -> Vec<Test> {
    vec![Test {
        name: "block/poll-queues-fio-hipri",
        groups: &["block", "poll"],
        run: poll_queues_fio_hipri,
    }]
}

/// The types of the disk's hardware contexts (debugfs `block/<disk>/hctx<N>/type`).
fn hctx_types() -> Result<Vec<String>, String> {
    let dir = format!("/sys/kernel/debug/block/{DISK}");
    let mut types = Vec::new();
    for e in fs::read_dir(&dir).map_err(|e| format!("{dir}: {e}"))? {
        let e = e.map_err(|e| e.to_string())?;
        if e.file_name().to_string_lossy().starts_with("hctx") {
            types.push(module::sysfs_read(&e.path().join("type"))?);
        }
    }
    types.sort();
    Ok(types)
}

/// Interrupts taken so far by rnvme's I/O queue vectors (the `rnvme` lines of
/// `/proc/interrupts`; the admin vector is `rnvme-admin`).
fn io_interrupts() -> Result<u64, String> {
    let text = fs::read_to_string("/proc/interrupts").map_err(|e| e.to_string())?;
    let cpus = text
        .lines()
        .next()
        .map_or(0, |l| l.split_whitespace().count());
    let mut total = 0;
    let mut lines = 0;
    for line in text
        .lines()
        .filter(|l| l.split_whitespace().last() == Some(RNVME))
    {
        let counts = line.split_whitespace().skip(1).take(cpus);
        total += counts.filter_map(|c| c.parse::<u64>().ok()).sum::<u64>();
        lines += 1;
    }
    ensure(lines > 0, || {
        "no rnvme I/O vector in /proc/interrupts".into()
    })?;
    Ok(total)
}

/// fio on the disk with io_uring, verified; `hipri` polls for completions.
fn fio(hipri: bool, rw: &str) -> Result<(), String> {
    let filename = format!("--filename=/dev/{DISK}");
    let mut argv = vec![
        "--name=poll",
        filename.as_str(),
        "--direct=1",
        "--ioengine=io_uring",
        "--size=16M",
        "--bsrange=4k-64k",
        "--iodepth=8",
        "--verify=crc32c",
        "--verify_fatal=1",
        "--do_verify=1",
        "--output-format=terse",
    ];
    argv.push(rw);
    if hipri {
        argv.push("--hipri");
    }
    module::run("fio", &argv).map(|_| ())
}

fn poll_queues_fio_hipri(env: &Env) -> Result<Vec<Report>, String> {
    let queue = Path::new("/sys/block").join(DISK).join("queue");
    // The default: no poll queues, so no polling.
    module::ensure_unloaded(RNVME)?;
    module::insmod(&env.module)?;
    let default = (module::sysfs_read(&queue.join("io_poll")), hctx_types());
    module::rmmod(RNVME)?;
    let (io_poll, types) = (default.0?, default.1?);
    ensure(io_poll == "0" && !types.iter().any(|t| t == "poll"), || {
        format!("default load: io_poll {io_poll}, hardware contexts {types:?}")
    })?;

    let mark = kmsg::mark()?;
    module::insmod_with(&env.module, &["poll_queues=1"])?;
    let result = polled_io(&queue, mark);
    module::rmmod(RNVME)?;
    result.map(|()| vec![])
}

fn polled_io(queue: &Path, mark: u64) -> Result<(), String> {
    let log = kmsg::since(mark)?;
    ensure(log.iter().any(|l| l.contains("(1 polled)")), || {
        format!("no polled queue in the probe log: {log:?}")
    })?;
    ensure(module::sysfs_read(&queue.join("io_poll"))? == "1", || {
        "io_poll is not 1 with a poll queue".into()
    })?;
    let types = hctx_types()?;
    ensure(types.iter().filter(|t| *t == "poll").count() == 1, || {
        format!("hardware contexts {types:?}, want one poll")
    })?;

    // Polled I/O completes without a single interrupt of the I/O vectors...
    let before = io_interrupts()?;
    fio(true, "--rw=randwrite")?;
    fio(true, "--rw=write")?;
    let polled = io_interrupts()? - before;
    ensure(polled == 0, || {
        format!("{polled} I/O interrupts during polled fio")
    })?;
    // ...while the same I/O without --hipri interrupts (the counter does count our I/O).
    let before = io_interrupts()?;
    fio(false, "--rw=randwrite")?;
    let irq = io_interrupts()? - before;
    ensure(irq > 0, || {
        "no I/O interrupt during interrupt-driven fio".into()
    })
}
