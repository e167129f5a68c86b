// SPDX-License-Identifier: GPL-2.0

//! Device dirty tracking (`VFIO_DEVICE_FEATURE_DMA_LOGGING_*`) of a VF in vfio mode.
//!
//! The test device does not track the memory a secondary controller writes yet
//! (`Documentation/lm-device.rst`, "Tracking (provisional)"), so the driver registers no
//! logging operations: every logging request is `ENOTTY`, which is why QEMU needs
//! `enable-migration=on` to migrate a VM with the VF and then counts every guest page
//! dirty. This test holds that behaviour until tracking exists; with tracking, it is what a
//! device without the capability must still show.

use crate::{
    harness::{ensure, Env, Report, Test},
    tests::migration::{open_pair, with_vf_pair},
    vfio_client::IOVA,
    vfio_dirty::{probe, report, start, stop, Range},
    vfio_migration::{flags, STOP_COPY},
};

/// The dirty tracking tests.
pub fn tests() -> Vec<Test> {
    vec![Test {
        name: "dirty-tracking/not-offered-without-device-support",
        groups: &["dirty-tracking", "migration"],
        run: not_offered,
    }]
}

/// `Ok` if `r` failed with `ENOTTY`, else what it did instead.
fn enotty<T: std::fmt::Debug>(what: &str, r: std::io::Result<T>) -> Result<(), String> {
    match r {
        Err(e) if e.raw_os_error() == Some(libc::ENOTTY) => Ok(()),
        other => Err(format!("{what}: {other:?}, want ENOTTY")),
    }
}

fn not_offered(env: &Env) -> Result<Vec<Report>, String> {
    with_vf_pair(env, |_pf, vf1, vf2| {
        let (a, b) = open_pair(vf1, vf2)?;
        for (c, vf) in [(&a, vf1), (&b, vf2)] {
            // It migrates (STOP_COPY), but cannot say which pages its DMA wrote.
            let f = flags(c).map_err(|e| format!("{}: migration flags: {e}", vf.bdf))?;
            ensure(f & STOP_COPY != 0, || {
                format!("{}: migration flags {f:#x} lack STOP_COPY", vf.bdf)
            })?;
            enotty(&format!("{}: probe", vf.bdf), probe(c))?;
            let range = Range {
                iova: IOVA,
                length: 0x20000,
            };
            enotty(&format!("{}: start", vf.bdf), start(c, 4096, &[range]))?;
            enotty(
                &format!("{}: report", vf.bdf),
                report(c, IOVA, 0x20000, 4096),
            )?;
            enotty(&format!("{}: stop", vf.bdf), stop(c))?;
        }
        Ok(())
    })
}
