// SPDX-License-Identifier: GPL-2.0

//! Error recovery: a request whose completion is lost times out, the driver resets the
//! controller, requeues what was in flight, and no data is lost.

use std::{fs, path::Path};

use crate::{
    disk::{pattern, Direct},
    harness::{ensure, Env, Report, Test},
    kmsg,
    module::{self, RNVME},
    tests::smoke::load_fresh,
};

/// The recovery tests.
pub fn tests() -> Vec<Test> {
    vec![
        Test {
            name: "recovery/timeout-aborts-resets-and-requeues",
            groups: &["recovery", "block"],
            run: timeout_resets_and_requeues,
        },
        Test {
            name: "recovery/fio-verify-through-timeouts",
            groups: &["recovery", "block"],
            run: fio_through_timeouts,
        },
    ]
}

const FAIL_DIR: &str = "/sys/kernel/debug/fail_io_timeout";

/// Makes the next `times` completions of rnvme0n1 vanish (block layer fault injection),
/// with a short request timeout so that the test does not wait 30 s.
fn inject_lost_completions(times: u32) -> Result<(), String> {
    let w = |p: &str, v: &str| module::sysfs_write(Path::new(p), v);
    w("/sys/block/rnvme0n1/queue/io_timeout", "2000")?;
    w(&format!("{FAIL_DIR}/probability"), "100")?;
    w(&format!("{FAIL_DIR}/interval"), "1")?;
    w(&format!("{FAIL_DIR}/verbose"), "0")?;
    w(&format!("{FAIL_DIR}/times"), &times.to_string())?;
    w("/sys/block/rnvme0n1/io-timeout-fail", "1")
}

fn stop_injection() -> Result<(), String> {
    if Path::new("/sys/block/rnvme0n1/io-timeout-fail").exists() {
        module::sysfs_write(Path::new("/sys/block/rnvme0n1/io-timeout-fail"), "0")?;
    }
    module::sysfs_write(Path::new(&format!("{FAIL_DIR}/times")), "0")
}

/// Counts the log lines since `mark` that contain `needle`.
fn count_since(mark: u64, needle: &str) -> Result<usize, String> {
    Ok(kmsg::since(mark)?
        .iter()
        .filter(|l| l.contains(needle))
        .count())
}

fn timeout_resets_and_requeues(env: &Env) -> Result<Vec<Report>, String> {
    if !Path::new(FAIL_DIR).exists() {
        return Err(format!(
            "{FAIL_DIR} missing: kernel without CONFIG_FAIL_IO_TIMEOUT"
        ));
    }
    load_fresh(env)?;
    let mark = kmsg::mark()?;
    let result = (|| {
        let data = pattern(256 << 10, 4242);
        let mut disk = Direct::open()?;
        inject_lost_completions(1)?;
        // The write's completion is dropped; it times out and is aborted (the controller
        // finds nothing to abort), times out again, the controller is reset and the
        // write is dispatched again.
        disk.write_at(32 << 20, &data)?;
        stop_injection()?;
        let back = disk.read_at(32 << 20, 256 << 10)?;
        ensure(back == data, || {
            "data written across the reset reads back differently".into()
        })
    })();
    let _ = stop_injection();
    let timeouts = count_since(mark, "timed out");
    let aborts = count_since(mark, "abort of I/O tag");
    let again = count_since(mark, "timed out again after its abort");
    let resets = count_since(mark, "controller reset complete");
    module::rmmod(RNVME)?;
    result?;
    ensure(timeouts? >= 1, || "no request timed out".into())?;
    ensure(aborts? >= 1, || {
        "the timed-out request was not aborted first".into()
    })?;
    ensure(again? >= 1, || {
        "the reset did not wait for the aborted request's second timeout".into()
    })?;
    ensure(resets? >= 1, || "the controller was not reset".into())?;
    Ok(vec![])
}

fn fio_through_timeouts(env: &Env) -> Result<Vec<Report>, String> {
    if !Path::new(FAIL_DIR).exists() {
        return Err(format!(
            "{FAIL_DIR} missing: kernel without CONFIG_FAIL_IO_TIMEOUT"
        ));
    }
    load_fresh(env)?;
    let mark = kmsg::mark()?;
    inject_lost_completions(3)?;
    let fio = module::run(
        "fio",
        &[
            "--name=recovery",
            "--filename=/dev/rnvme0n1",
            "--direct=1",
            "--ioengine=libaio",
            "--rw=randwrite",
            "--bs=8k",
            "--iodepth=16",
            "--size=16M",
            "--verify=crc32c",
            "--verify_fatal=1",
            "--do_verify=1",
            "--output=/dev/null",
        ],
    );
    let _ = stop_injection();
    let resets = count_since(mark, "controller reset complete");
    let io_timeout = fs::read_to_string("/sys/block/rnvme0n1/queue/io_timeout");
    module::rmmod(RNVME)?;
    fio?;
    ensure(resets? >= 1, || "no controller reset happened".into())?;
    ensure(io_timeout.is_ok(), || {
        "disk vanished during the test".into()
    })?;
    Ok(vec![])
}
