// SPDX-License-Identifier: GPL-2.0

//! PCI error recovery (AER) under the block driver, with errors injected through
//! `/dev/aer_inject` at the PF (the emulated controller has an AER capability with
//! `x-aer=on`): a non-fatal error needs no reset and loses nothing; a fatal one freezes
//! every function below the root port, whose secondary bus is reset, and the driver's
//! `error_detected`/`slot_reset`/`resume` bring the PF and its VFs back while fio verifies.

use std::time::Duration;

use crate::fixture::{check_mode, load_fresh, set_mode, with_vfs};
use crate::{
    aer,
    disk::{pattern, Direct, DISK},
    harness::{ensure, wait_until, Env, Report, Test},
    kmsg,
    module::{self, RNVME},
    tests::{
        recovery_reset::vfio_queue_works,
        vfio::{wait_vf_disk, FioVerify},
    },
};

/// The AER tests.
pub fn tests() -> Vec<Test> {
    vec![
        Test {
            name: "recovery/aer-non-fatal-error",
            groups: &["recovery", "block"],
            run: non_fatal,
        },
        Test {
            name: "recovery/aer-fatal-error-with-vfs-under-fio",
            groups: &["recovery", "vfio"],
            run: fatal_with_vfs,
        },
    ]
}

/// How long the AER core may take to report and recover (TCG).
const SETTLE: Duration = Duration::from_secs(60);

/// Waits until the log since `mark` holds `n` lines with `needle`.
fn wait_logged(mark: u64, needle: &str, n: usize) -> Result<(), String> {
    ensure(
        wait_until(SETTLE, || {
            kmsg::count_since(mark, needle).is_ok_and(|c| c >= n)
        }),
        || format!("the log shows fewer than {n} \"{needle}\""),
    )
}

/// An uncorrectable non-fatal error (Unsupported Request) at the PF: the driver is told
/// (channel `Normal`), asks for no reset, and its disk goes on with its data.
fn non_fatal(env: &Env) -> Result<Vec<Report>, String> {
    let pf = load_fresh(env)?;
    let result = (|| {
        let data = pattern(64 << 10, 0xae1);
        Direct::open()?.write_at(3 << 20, &data)?;
        let mark = kmsg::mark()?;
        aer::inject_uncorrectable(&pf.bdf, aer::UNC_UNSUPPORTED_REQUEST)?;
        wait_logged(mark, "PCI error recovery done, controller Live", 1)?;
        ensure(
            kmsg::count_since(mark, "PCI error detected, channel Normal")? == 1,
            || "the driver was not told of the non-fatal error".into(),
        )?;
        ensure(
            kmsg::count_since(mark, "resetting controller")? == 0,
            || "a non-fatal error reset the controller".into(),
        )?;
        let back = Direct::open()?.read_at(3 << 20, data.len())?;
        ensure(back == data, || {
            "the data reads back differently after the error".into()
        })
    })();
    module::rmmod(RNVME)?;
    result.map(|()| vec![])
}

/// fio writing and verifying the PF's disk during the fatal error.
const AER_VERIFY: FioVerify = FioVerify {
    name: "aer",
    iodepth: 16,
    size: "16M",
    output: "--output=/dev/null",
};

/// A fatal error (Malformed TLP) at the PF while fio verifies the PF's disk, with VF 1 in
/// block mode holding data and VF 2 in vfio mode: the PF and VF 1 are taken out of
/// service, the link is reset, both restart (`Recovered`), fio's checksums hold, VF 1's
/// data reads back, and VF 2 works through VFIO and switches back to block mode.
fn fatal_with_vfs(env: &Env) -> Result<Vec<Report>, String> {
    with_vfs(env, 2, true, |pf, vfs| {
        let (vf1, vf2) = (&vfs[0], &vfs[1]);
        let vf_disk = wait_vf_disk(vf1)?;
        let data = pattern(64 << 10, 0xfa7a1);
        Direct::open_path(&vf_disk)?.write_at(1 << 20, &data)?;
        set_mode(vf2, "vfio")?;
        check_mode(vf2, "vfio")?;
        let fio = AER_VERIFY.spawn(DISK, SETTLE)?;
        let mark = kmsg::mark()?;
        let injected = aer::inject_uncorrectable(&pf.bdf, aer::UNC_MALFORMED_TLP);
        let recovered = injected
            .clone()
            .and_then(|()| wait_logged(mark, "PCI error recovery done", 2));
        let started = fio.started;
        // fio must end on its own: a stalled one fails the test instead of hanging it.
        let finished = fio.finish(SETTLE, "across the fatal error");
        injected?;
        recovered?;
        ensure(started, || "fio never did any I/O".into())?;
        finished?;
        ensure(
            kmsg::count_since(mark, "PCI error detected, channel Frozen")? == 2,
            || "the PF and VF 1 were not both told of the frozen link".into(),
        )?;
        ensure(
            kmsg::count_since(mark, "restarting after the link reset")? == 2,
            || "the PF and VF 1 were not both restarted after the link reset".into(),
        )?;
        ensure(
            kmsg::count_since(mark, "PCI error recovery done, controller Live")? == 2,
            || "the PF and VF 1 did not both recover".into(),
        )?;
        let back = Direct::open_path(&vf_disk)?.read_at(1 << 20, data.len())?;
        ensure(back == data, || {
            "VF 1's data reads back differently after the error".into()
        })?;
        module::run(
            "fio",
            &AER_VERIFY
                .args(DISK, true)
                .iter()
                .map(String::as_str)
                .collect::<Vec<_>>(),
        )?;
        vfio_queue_works(vf2)?;
        set_mode(vf2, "nvme")?;
        check_mode(vf2, "nvme")
    })
}
