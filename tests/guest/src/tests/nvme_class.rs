// SPDX-License-Identifier: GPL-2.0

//! `nvme list` on rnvme: with `nvme_class=on` the module holds `/sys/class/nvme`, names its
//! devices `nvme<N>` and `nvme<N>n<nsid>`, and libnvme lists them with the values the C
//! driver shows for the same device; nvme-core is refused meanwhile; bad values of the
//! parameter are refused at load; `auto` leaves the class to a loaded nvme-core.

use std::{fs, path::Path, thread, time::Duration};

use serde_json::Value;

use crate::fixture::load_fresh;
use crate::{
    disk::{pattern, Direct},
    harness::{ensure, wait_until, Env, Report, Test},
    kmsg,
    module::{self, RNVME},
    pci::{self, Function},
    sriov::{list_secondary_on, set_numvfs, vfs},
};

/// How long a probe may take to show its devices (TCG, and the C driver probes
/// asynchronously).
const SETTLE: Duration = Duration::from_secs(30);

/// The class directory libnvme scans.
const CLASS: &str = "/sys/class/nvme";

/// The fields of `nvme list -o json` that do not depend on the driver.
const FIELDS: [&str; 9] = [
    "NameSpace",
    "DevicePath",
    "Firmware",
    "ModelNumber",
    "SerialNumber",
    "UsedBytes",
    "MaximumLBA",
    "PhysicalSize",
    "SectorSize",
];

/// The nvme-class tests.
pub fn tests() -> Vec<Test> {
    vec![
        Test {
            name: "nvme-class/list-matches-c-driver",
            groups: &["nvme-class", "chardev"],
            run: list_matches_c_driver,
        },
        Test {
            name: "nvme-class/list-with-vfs",
            groups: &["nvme-class", "sriov"],
            run: list_with_vfs,
        },
        Test {
            name: "nvme-class/bad-values-and-nvme-core",
            groups: &["nvme-class"],
            run: bad_values_and_nvme_core,
        },
    ]
}

/// `nvme list -o json`'s devices, each reduced to [`FIELDS`], sorted by device path.
fn list_json() -> Result<Vec<Vec<(String, Value)>>, String> {
    let out = module::run("nvme", &["list", "-o", "json"])?;
    let v: Value =
        serde_json::from_str(&out).map_err(|e| format!("nvme list json: {e}: {out:.300}"))?;
    let devices = v["Devices"]
        .as_array()
        .ok_or_else(|| format!("no Devices in {out:.300}"))?;
    let mut list: Vec<Vec<(String, Value)>> = devices
        .iter()
        .map(|d| {
            FIELDS
                .iter()
                .map(|f| (f.to_string(), d[*f].clone()))
                .collect()
        })
        .collect();
    list.sort_by_key(|d| d[1].1.to_string());
    Ok(list)
}

/// Loads the C driver, waits for its disk `disk`, and returns `nvme list -o json`.
fn c_driver_list(env: &Env, disk: &str) -> Result<Vec<Vec<(String, Value)>>, String> {
    module::ensure_unloaded(RNVME)?;
    module::modprobe(&env.modroot, "nvme")?;
    let listed = wait_until(SETTLE, || Path::new(disk).exists()).then(list_json);
    let removed = module::modprobe_remove(&env.modroot, "nvme")
        .and_then(|()| module::ensure_unloaded("nvme_core"));
    let list = listed.ok_or_else(|| format!("the C driver showed no {disk}"))??;
    removed?;
    Ok(list)
}

/// Loads rnvme with `nvme_class=on` (plus `params`) and waits for the PF's disk.
fn load_with_class(env: &Env, params: &[&str]) -> Result<Function, String> {
    module::ensure_unloaded(RNVME)?;
    let pf = pci::nvme_pf()?;
    let mut all = vec!["nvme_class=on"];
    all.extend_from_slice(params);
    module::insmod_with(&env.module, &all)?;
    ensure(
        wait_until(SETTLE, || Path::new("/dev/nvme0n1").exists()),
        || "rnvme with nvme_class=on created no /dev/nvme0n1".into(),
    )?;
    Ok(pf)
}

fn attr(path: impl AsRef<Path>) -> Result<String, String> {
    module::sysfs_read(path.as_ref())
}

fn list_matches_c_driver(env: &Env) -> Result<Vec<Report>, String> {
    let c_list = c_driver_list(env, "/dev/nvme0n1")?;
    let pf = load_with_class(env, &[])?;
    let result = check_rnvme_list(env, &pf, &c_list);
    module::rmmod(RNVME)?;
    ensure(!Path::new(CLASS).exists(), || {
        format!("{CLASS} is left after rmmod")
    })?;
    result.map(|()| vec![])
}

fn check_rnvme_list(
    env: &Env,
    pf: &Function,
    c_list: &[Vec<(String, Value)>],
) -> Result<(), String> {
    let ours = list_json()?;
    ensure(!ours.is_empty() && ours == c_list, || {
        format!("nvme list -o json: rnvme {ours:?}, C driver {c_list:?}")
    })?;
    // The plain listing names the disk, its serial and model.
    let text = module::run("nvme", &["list"])?;
    let serial = attr(format!("{CLASS}/nvme0/serial"))?;
    let model = attr(format!("{CLASS}/nvme0/model"))?;
    ensure(
        text.lines()
            .any(|l| l.starts_with("/dev/nvme0n1") && l.contains(&serial) && l.contains(&model)),
        || format!("nvme list does not show /dev/nvme0n1 with {serial:?} {model:?}: {text}"),
    )?;
    // What libnvme reads, and where it looks.
    let ctrl = Path::new(CLASS).join("nvme0");
    for (name, want) in [
        ("transport", "pcie"),
        ("address", pf.bdf.as_str()),
        ("state", "live"),
        ("cntrltype", "io"),
    ] {
        let got = attr(ctrl.join(name))?;
        ensure(got == want, || {
            format!("nvme0/{name} is {got:?}, want {want:?}")
        })?;
    }
    for name in [
        "firmware_rev",
        "cntlid",
        "subsysnqn",
        "numa_node",
        "queue_count",
        "sqsize",
    ] {
        ensure(!attr(ctrl.join(name))?.is_empty(), || {
            format!("nvme0/{name} is empty")
        })?;
    }
    ensure(ctrl.join("nvme0n1").is_dir(), || {
        "the disk is not below the controller's class device".into()
    })?;
    ensure(attr(ctrl.join("nvme0n1/nsid"))? == "1", || {
        "nvme0n1/nsid is not 1".into()
    })?;
    let subsys = Path::new("/sys/class/nvme-subsystem/nvme-subsys0");
    ensure(subsys.join("nvme0").exists(), || {
        "nvme-subsys0 has no link to nvme0".into()
    })?;
    ensure(
        attr(subsys.join("subsysnqn"))? == attr(ctrl.join("subsysnqn"))?,
        || "subsystem and controller NQNs differ".into(),
    )?;
    // The controller device takes admin commands; the disk does I/O.
    module::run("nvme", &["id-ctrl", "/dev/nvme0"])?;
    let data = pattern(8192, 0xc1a55);
    let mut disk = Direct::open_path("/dev/nvme0n1")?;
    disk.write_at(1 << 20, &data)?;
    ensure(disk.read_at(1 << 20, data.len())? == data, || {
        "/dev/nvme0n1 read back differently".into()
    })?;
    drop(disk);

    // nvme-core cannot load while rnvme holds its class, and says why.
    let mark = kmsg::mark()?;
    let loaded = module::modprobe(&env.modroot, "nvme");
    let log = kmsg::since(mark)?;
    if loaded.is_ok() {
        let _ = module::modprobe_remove(&env.modroot, "nvme");
    }
    ensure(loaded.is_err() && !module::is_loaded("nvme_core"), || {
        "nvme-core loaded while rnvme holds /sys/class/nvme".into()
    })?;
    ensure(
        log.iter().any(|l| l.contains("refusing to load nvme_core")),
        || format!("no refusal message in {log:?}"),
    )?;
    ensure(attr(ctrl.join("state"))? == "live", || {
        "the controller is not live after the refused nvme-core".into()
    })
}

/// The class device of the controller of function `f`.
fn ctrl_of(f: &Function) -> Option<String> {
    fs::read_dir(CLASS)
        .ok()?
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .find(|n| {
            attr(Path::new(CLASS).join(n).join("address"))
                .ok()
                .as_deref()
                == Some(&f.bdf)
        })
}

fn list_with_vfs(env: &Env) -> Result<Vec<Report>, String> {
    let pf = load_with_class(env, &[])?;
    let result = vfs_listed(&pf);
    // Detach namespace 2 again (QEMU aborts on detaching it where it is not attached).
    if let Ok(secondaries) = list_secondary_on("/dev/nvme0") {
        if let Some(s) = secondaries.iter().find(|s| s.vfn == 1) {
            if vfs(&pf)
                .ok()
                .and_then(|v| v.first().and_then(ctrl_of))
                .is_some_and(|c| Path::new(&format!("/dev/{c}n2")).exists())
            {
                let c = s.scid.to_string();
                let _ = module::run("nvme", &["detach-ns", "/dev/nvme0", "-n", "2", "-c", &c]);
            }
        }
    }
    let disabled = set_numvfs(&pf, 0);
    module::rmmod(RNVME)?;
    result.and(disabled).map(|()| vec![])
}

fn vfs_listed(pf: &Function) -> Result<(), String> {
    set_numvfs(pf, 2)?;
    let vfs = vfs(pf)?;
    ensure(vfs.len() == 2, || format!("{} VFs, want 2", vfs.len()))?;
    ensure(
        wait_until(SETTLE, || vfs.iter().all(|v| ctrl_of(v).is_some())),
        || "a VF has no controller in /sys/class/nvme".into(),
    )?;
    let vf_ctrl = ctrl_of(&vfs[0]).ok_or("VF 1 has no class device")?;
    let secondaries = list_secondary_on("/dev/nvme0")?;
    let scid = secondaries
        .iter()
        .find(|s| s.vfn == 1)
        .ok_or("no secondary controller for VF 1")?
        .scid
        .to_string();
    module::run("nvme", &["attach-ns", "/dev/nvme0", "-n", "2", "-c", &scid])?;
    let vf_disk = format!("/dev/{vf_ctrl}n2");
    ensure(wait_until(SETTLE, || Path::new(&vf_disk).exists()), || {
        format!("{vf_disk} did not appear after attach-ns")
    })?;
    let list = list_json()?;
    let path_of = |d: &Vec<(String, Value)>| d[1].1.as_str().map(str::to_string);
    let paths: Vec<String> = list.iter().filter_map(path_of).collect();
    ensure(
        paths.contains(&"/dev/nvme0n1".to_string()) && paths.contains(&vf_disk),
        || format!("nvme list with VFs shows {paths:?}, want /dev/nvme0n1 and {vf_disk}"),
    )?;
    let vf_serial = attr(Path::new(CLASS).join(&vf_ctrl).join("serial"))?;
    let entry = list
        .iter()
        .find(|d| path_of(d).as_deref() == Some(vf_disk.as_str()))
        .ok_or("no list entry for the VF disk")?;
    ensure(entry[4].1.as_str() == Some(vf_serial.as_str()), || {
        format!(
            "the VF disk lists serial {:?}, its controller has {vf_serial:?}",
            entry[4].1
        )
    })?;
    // Every controller is listed: the PF's and both VFs'.
    let ctrls = fs::read_dir(CLASS).map_err(|e| e.to_string())?.count();
    ensure(ctrls == 3, || {
        format!("{ctrls} controllers in {CLASS}, want 3")
    })
}

fn bad_values_and_nvme_core(env: &Env) -> Result<Vec<Report>, String> {
    module::ensure_unloaded(RNVME)?;
    // Refused at load, with a message, and nothing stays loaded.
    for (param, needle) in [
        ("nvme_class=yes", "is not one of off, on, auto"),
        ("nvme_class=", "is not one of off, on, auto"),
        ("poll_queues=9", "poll_queues: 9 is more than 8"),
        ("poll_queues=-1", "is not a number"),
        ("sgls=2", "sgls: 2 is more than 1"),
    ] {
        let mark = kmsg::mark()?;
        let loaded = module::insmod_with(&env.module, &[param]);
        let log = kmsg::since(mark)?;
        if loaded.is_ok() {
            module::rmmod(RNVME)?;
        }
        ensure(loaded.is_err() && !module::is_loaded(RNVME), || {
            format!("insmod with {param} succeeded")
        })?;
        ensure(log.iter().any(|l| l.contains(needle)), || {
            format!("insmod with {param}: no {needle:?} in {log:?}")
        })?;
    }
    // With nvme-core loaded, `on` is refused and `auto` keeps rnvme's own names.
    module::modprobe(&env.modroot, "nvme_core")?;
    let result = with_nvme_core(env);
    module::ensure_unloaded(RNVME)?;
    module::ensure_unloaded("nvme_core")?;
    // And `off` (the default) keeps rnvme's names without touching the class.
    let pf = load_fresh(env)?;
    let off = ensure(
        Path::new("/dev/rnvme0n1").exists() && !Path::new(CLASS).exists(),
        || "the default load touched /sys/class/nvme or lacks /dev/rnvme0n1".into(),
    );
    module::rmmod(RNVME)?;
    let _ = pf;
    result.and(off).map(|()| vec![])
}

fn with_nvme_core(env: &Env) -> Result<(), String> {
    let mark = kmsg::mark()?;
    let on = module::insmod_with(&env.module, &["nvme_class=on"]);
    let log = kmsg::since(mark)?;
    if on.is_ok() {
        module::rmmod(RNVME)?;
    }
    ensure(on.is_err(), || {
        "nvme_class=on loaded next to nvme-core".into()
    })?;
    ensure(
        log.iter()
            .any(|l| l.contains("nvme-core is loaded and owns")),
        || format!("no explanation for the refused nvme_class=on in {log:?}"),
    )?;
    module::insmod_with(&env.module, &["nvme_class=auto"])?;
    ensure(
        wait_until(SETTLE, || Path::new("/dev/rnvme0n1").exists()),
        || "nvme_class=auto next to nvme-core has no /dev/rnvme0n1".into(),
    )?;
    thread::sleep(Duration::from_millis(10));
    ensure(!Path::new("/dev/nvme0n1").exists(), || {
        "nvme_class=auto next to nvme-core named a disk nvme0n1".into()
    })?;
    module::rmmod(RNVME)
}
