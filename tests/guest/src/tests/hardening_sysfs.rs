// SPDX-License-Identifier: GPL-2.0

//! Every sysfs attribute the driver creates against the table of hostile values
//! ([`hostile_values`]): the writable ones (`mode` of a VF, `sriov_vf_mode` of the PF) must
//! refuse each with `EINVAL` and change nothing; the read-only ones of the `nvme` class (`nvme_class=on`) must refuse
//! every write and read back as before. Afterwards the VF still switches and its data
//! reads back.

use std::{
    fs,
    io::Write,
    path::{Path, PathBuf},
};

use crate::fixture::{check_mode, mode_path, set_mode, with_vfs};
use crate::{
    disk::{pattern, Direct},
    harness::{ensure, wait_until, Env, Report, Test},
    module::{self, RNVME},
    tests::{
        hardening::{hostile_values, write_once, Campaign},
        vfio::wait_vf_disk,
    },
};

/// The sysfs campaign.
pub fn tests() -> Vec<Test> {
    vec![
        Test {
            name: "hardening/sysfs-attributes-hostile-values",
            groups: &["hardening"],
            run: writable_attributes,
        },
        Test {
            name: "hardening/sysfs-read-only-attributes",
            groups: &["hardening"],
            run: read_only_attributes,
        },
    ]
}

/// What a hostile write to a writable attribute must get: an empty write never reaches
/// the driver (sysfs returns 0); anything else, also more than a page (of which sysfs
/// passes the first page on), is `EINVAL` from the driver.
fn expected(bytes: &[u8]) -> Result<(), i32> {
    if bytes.is_empty() {
        Ok(())
    } else {
        Err(libc::EINVAL)
    }
}

fn writable_attributes(env: &Env) -> Result<Vec<Report>, String> {
    with_vfs(env, 1, true, |pf, vfs| {
        let vf = &vfs[0];
        let disk = wait_vf_disk(vf)?;
        let data = pattern(64 << 10, 0x5f5f5);
        Direct::open_path(&disk)?.write_at(0, &data)?;
        let mut c = Campaign::start("sysfs attributes")?;
        let pf_attr = pf.dir().join("sriov_vf_mode");
        for path in [mode_path(vf), pf_attr.clone()] {
            let before = fs::read(&path).map_err(|e| format!("{}: {e}", path.display()))?;
            for (what, bytes) in hostile_values(&["nvme", "vfio"]) {
                let got = write_once(&path, &bytes);
                c.count(&got);
                let want = expected(&bytes);
                ensure(got == want, || {
                    format!("{what} > {}: got {got:?}, want {want:?}", path.display())
                })?;
                let after = fs::read(&path).map_err(|e| format!("{}: {e}", path.display()))?;
                ensure(after == before, || {
                    format!("{what} > {}: it shows {after:?} now", path.display())
                })?;
                check_mode(vf, "nvme")?;
            }
            // A valid word split over two write(2) calls on one open file is two writes
            // of garbage: each refused.
            let mut f = fs::OpenOptions::new()
                .write(true)
                .open(&path)
                .map_err(|e| format!("{}: {e}", path.display()))?;
            for half in [&b"vf"[..], b"io\n"] {
                let got = f.write(half).map(|_| ()).map_err(|e| e.raw_os_error());
                c.count(&got);
                ensure(got == Err(Some(libc::EINVAL)), || {
                    format!("split write {half:?}: got {got:?}, want EINVAL")
                })?;
            }
            check_mode(vf, "nvme")?;
        }
        c.finish()?;
        // Nothing changed: the PF still starts VFs as disks, and the VF switches both ways
        // with its data.
        let shown = fs::read_to_string(&pf_attr).map_err(|e| format!("sriov_vf_mode: {e}"))?;
        ensure(shown == "[nvme] vfio\n", || {
            format!("sriov_vf_mode shows {shown:?}")
        })?;
        ensure(
            Direct::open_path(&disk)?.read_at(0, data.len())? == data,
            || "the VF disk's data changed during the campaign".into(),
        )?;
        set_mode(vf, "vfio")?;
        check_mode(vf, "vfio")?;
        set_mode(vf, "nvme")?;
        let disk = wait_vf_disk(vf)?;
        ensure(
            Direct::open_path(&disk)?.read_at(0, data.len())? == data,
            || "the VF disk's data changed across the switch after the campaign".into(),
        )
    })
}

/// The attributes of the `nvme` class the driver creates (`kapi/glue/nvme_class.c`), all
/// read-only: the controller's and its disk's `nsid`.
const CLASS_ATTRS: &[&str] = &[
    "model",
    "serial",
    "firmware_rev",
    "subsysnqn",
    "address",
    "cntlid",
    "queue_count",
    "sqsize",
    "transport",
    "state",
    "numa_node",
    "cntrltype",
    "nvme0n1/nsid",
];

fn read_only_attributes(env: &Env) -> Result<Vec<Report>, String> {
    module::ensure_unloaded(RNVME)?;
    if module::is_loaded("nvme") {
        module::modprobe_remove(&env.modroot, "nvme")?;
    }
    module::insmod_with(&env.module, &["nvme_class=on"])?;
    let result = (|| {
        let ctrl = Path::new("/sys/class/nvme/nvme0");
        ensure(
            wait_until(std::time::Duration::from_secs(30), || {
                ctrl.join("nvme0n1/nsid").exists()
            }),
            || "nvme_class=on gave no /sys/class/nvme/nvme0/nvme0n1".into(),
        )?;
        let mut c = Campaign::start("read-only sysfs attributes")?;
        let values = hostile_values(&["live", "1"]);
        for name in CLASS_ATTRS {
            let path: PathBuf = ctrl.join(name);
            let before = fs::read(&path).map_err(|e| format!("{}: {e}", path.display()))?;
            for (what, bytes) in &values {
                let got = write_once(&path, bytes);
                c.count(&got);
                // Not even an empty write: a read-only attribute does not open for writing.
                ensure(got == Err(libc::EACCES), || {
                    format!("{what} > {}: got {got:?}, want EACCES", path.display())
                })?;
            }
            let after = fs::read(&path).map_err(|e| format!("{}: {e}", path.display()))?;
            ensure(after == before, || {
                format!("{}: {before:?} became {after:?}", path.display())
            })?;
        }
        c.finish()?;
        // The disk still works.
        let data = pattern(4096, 0x5ead);
        let mut d = Direct::open_path("/dev/nvme0n1")?;
        d.write_at(1 << 20, &data)?;
        ensure(d.read_at(1 << 20, 4096)? == data, || {
            "nvme0n1 does not read back after the campaign".into()
        })
    })();
    module::rmmod(RNVME)?;
    result.map(|()| vec![])
}
