// SPDX-License-Identifier: GPL-2.0

//! SR-IOV as userspace drives it: `sriov_numvfs`, the VFs' sysfs links, the secondary
//! controllers through `nvme list-secondary`, and the VFs' disks.

use std::{
    fs,
    io::Write,
    path::{Path, PathBuf},
};

use crate::{module, pci::Function};

/// The PF's controller device.
pub const CHARDEV: &str = "/dev/rnvme0";

/// Writes `value` to a sysfs attribute; returns the errno of a failed write.
pub fn write_attr(path: &Path, value: &str) -> Result<(), i32> {
    let mut f = fs::OpenOptions::new()
        .write(true)
        .open(path)
        .map_err(|e| e.raw_os_error().unwrap_or(0))?;
    f.write_all(value.as_bytes())
        .map_err(|e| e.raw_os_error().unwrap_or(0))
}

pub fn numvfs_path(pf: &Function) -> PathBuf {
    pf.dir().join("sriov_numvfs")
}

pub fn set_numvfs(pf: &Function, n: u16) -> Result<(), String> {
    write_attr(&numvfs_path(pf), &n.to_string())
        .map_err(|errno| format!("echo {n} > sriov_numvfs: errno {errno}"))
}

pub fn numvfs(pf: &Function) -> Result<u16, String> {
    let p = numvfs_path(pf);
    fs::read_to_string(&p)
        .map_err(|e| format!("{}: {e}", p.display()))?
        .trim()
        .parse()
        .map_err(|e| format!("sriov_numvfs: {e}"))
}

/// The VFs of `pf`, in VF number order.
pub fn vfs(pf: &Function) -> Result<Vec<Function>, String> {
    let mut out = Vec::new();
    for i in 0.. {
        let link = pf.dir().join(format!("virtfn{i}"));
        let Ok(target) = fs::read_link(&link) else {
            break;
        };
        let bdf = target
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .ok_or_else(|| format!("{}: no target", link.display()))?;
        out.push(Function { bdf });
    }
    Ok(out)
}

/// A secondary controller as `nvme list-secondary` reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Secondary {
    /// Secondary controller ID.
    pub scid: u64,
    /// VF number (1-based).
    pub vfn: u64,
    /// Whether it is online.
    pub online: bool,
    /// Queue resources assigned.
    pub nvq: u64,
    /// Interrupt resources assigned.
    pub nvi: u64,
}

/// The secondary controllers, listed through the rnvme PF's controller device.
pub fn list_secondary() -> Result<Vec<Secondary>, String> {
    list_secondary_on(CHARDEV)
}

/// The secondary controllers, listed through the PF controller device `chardev`.
pub fn list_secondary_on(chardev: &str) -> Result<Vec<Secondary>, String> {
    let out = module::run("nvme", &["list-secondary", chardev, "-o", "json"])?;
    let v: serde_json::Value =
        serde_json::from_str(&out).map_err(|e| format!("list-secondary json: {e}"))?;
    let entries = v["secondary-controllers"]
        .as_array()
        .or_else(|| v["sc-entry"].as_array())
        .ok_or_else(|| format!("no secondary controller list in {out:.300}"))?;
    let field = |e: &serde_json::Value, names: &[&str]| {
        names
            .iter()
            .find_map(|n| e[*n].as_u64())
            .ok_or_else(|| format!("no {names:?} in {e}"))
    };
    entries
        .iter()
        .map(|e| {
            Ok(Secondary {
                scid: field(e, &["secondary-controller-identifier", "scid"])?,
                vfn: field(e, &["virtual-function-number", "vfn"])?,
                online: field(e, &["secondary-controller-state", "scs"])? & 1 == 1,
                nvq: field(e, &["num-virtual-queues", "nvq"])?,
                nvi: field(e, &["num-virtual-interrupts", "nvi"])?,
            })
        })
        .collect()
}

/// The secondary controller ID of VF `vfn` (1-based), as nvme-cli's `-c` takes it.
pub fn scid_of(vfn: u64) -> Result<String, String> {
    list_secondary()?
        .iter()
        .find(|s| s.vfn == vfn)
        .map(|s| s.scid.to_string())
        .ok_or_else(|| format!("no secondary controller for VF {vfn}"))
}

/// The disk of namespace `nsid` of VF `vf`, if it has one and its device node exists (a
/// new disk shows in sysfs a moment before devtmpfs has its node).
pub fn vf_disk(vf: &Function, nsid: &str) -> Option<String> {
    let block = vf.dir().join("block");
    fs::read_dir(block)
        .ok()?
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .find(|n| n.ends_with(&format!("n{nsid}")))
        .map(|n| format!("/dev/{n}"))
        .filter(|dev| Path::new(dev).exists())
}
