// SPDX-License-Identifier: GPL-2.0

//! Shared fixtures of the scenario tests: the module loaded fresh around a test, VFs
//! enabled (with the shared namespace on VF 1), and a VF's `mode` read, set and checked.

use std::{fs, path::PathBuf};

use crate::{
    harness::{ensure, Env, Report},
    module::{self, RNVME},
    pci::{self, Function},
    sriov::{scid_of, set_numvfs, vfs, write_attr, CHARDEV},
};

/// The vfio-mode driver.
pub const RNVME_VFIO: &str = "rnvme-vfio";

/// The namespace the tests give a VF.
pub const NSID: u32 = 2;

/// Loads rnvme (after unloading anything bound to the PF) and returns the PF.
pub fn load_fresh(env: &Env) -> Result<pci::Function, String> {
    module::ensure_unloaded(RNVME)?;
    if module::is_loaded("nvme") {
        module::modprobe_remove(&env.modroot, "nvme")?;
    }
    let pf = pci::nvme_pf()?;
    module::insmod(&env.module)?;
    Ok(pf)
}

/// Loads the rnvme module fresh, runs `f` with the PF it bound, and unloads the module
/// whatever `f` returned; a test that passes reports nothing more.
pub fn with_loaded(
    env: &Env,
    f: impl FnOnce(&pci::Function) -> Result<(), String>,
) -> Result<Vec<Report>, String> {
    let pf = load_fresh(env)?;
    let result = f(&pf);
    module::rmmod(RNVME)?;
    result.map(|()| vec![])
}

pub fn mode_path(vf: &Function) -> PathBuf {
    vf.dir().join("mode")
}

pub fn read_mode(vf: &Function) -> Result<String, String> {
    let p = mode_path(vf);
    fs::read_to_string(&p).map_err(|e| format!("{}: {e}", p.display()))
}

/// Writes `mode` to the VF's `mode` attribute.
pub fn set_mode(vf: &Function, mode: &str) -> Result<(), String> {
    write_attr(&mode_path(vf), mode)
        .map_err(|e| format!("echo {mode} > {}/mode: errno {e}", vf.bdf))
}

/// Checks the VF is in `mode`: the attribute and the bound driver agree.
pub fn check_mode(vf: &Function, mode: &str) -> Result<(), String> {
    let (want_show, want_driver) = match mode {
        "nvme" => ("[nvme] vfio\n", RNVME),
        _ => ("nvme [vfio]\n", RNVME_VFIO),
    };
    let shown = read_mode(vf)?;
    let driver = vf.driver();
    ensure(
        shown == want_show && driver.as_deref() == Some(want_driver),
        || {
            format!(
                "{}: mode shows {shown:?}, bound to {driver:?}; want {mode}",
                vf.bdf
            )
        },
    )
}

/// Runs `f` with the module loaded and `n` VFs enabled (namespace 2 attached to VF 1 when
/// `attach`); afterwards puts every VF back in block mode, detaches and disables.
pub fn with_vfs(
    env: &Env,
    n: u16,
    attach: bool,
    f: impl FnOnce(&Function, &[Function]) -> Result<(), String>,
) -> Result<Vec<Report>, String> {
    with_loaded(env, |pf| {
        set_numvfs(pf, n)?;
        let vfs = vfs(pf)?;
        ensure(vfs.len() == usize::from(n), || {
            format!("{} VFs, want {n}", vfs.len())
        })?;
        let ns = NSID.to_string();
        let c = scid_of(1)?;
        if attach {
            module::run("nvme", &["attach-ns", CHARDEV, "-n", &ns, "-c", &c])?;
        }
        let result = f(pf, &vfs);
        for vf in &vfs {
            let _ = set_mode(vf, "nvme");
        }
        let _ = write_attr(&pf.dir().join("sriov_vf_mode"), "nvme");
        if attach {
            module::run("nvme", &["detach-ns", CHARDEV, "-n", &ns, "-c", &c])?;
        }
        result.and(set_numvfs(pf, 0))
    })
}
