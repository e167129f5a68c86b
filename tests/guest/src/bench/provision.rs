// SPDX-License-Identifier: GPL-2.0

//! `--bench provision`: how long it takes to turn every VF the device offers into a usable
//! VFIO device, in one VM boot:
//!
//! * (a) rnvme: `echo vfio > sriov_vf_mode; echo N > sriov_numvfs`. The one write gives
//!   every secondary controller its resources, enables the VFs and registers each as a
//!   VFIO device without a block probe.
//! * (b) the stock flow: the PF runs the C nvme driver. Set-up: the secondary controllers
//!   get the same resources (Virtualization Management through the admin passthrough
//!   ioctl nvme-cli uses), the VFs are enabled without autoprobe and brought online.
//!   Then, VF by VF, the C driver probes it (until its controller is live), it is
//!   unbound, `driver_override` is set to `vfio-pci` and it is bound to vfio-pci.
//!
//! Both start with the PF bound and no VFs and end with every VF a usable VFIO device
//! (bound, `/dev/vfio/devices/vfio<N>` and its group's device file exist); afterwards every
//! VF's device file is opened to check. Both totals include creating the VFs' PCI devices
//! and assigning resources. Prints per-VF times for both, the single-switch latencies,
//! and last `provision speedup: X.X` (stock total / rnvme total).

use std::{
    fs,
    os::fd::AsRawFd,
    path::Path,
    time::{Duration, Instant},
};

use super::median;
use crate::{
    harness::{poll_until, Env},
    kmsg,
    module::{self, sysfs_read, sysfs_write, RNVME},
    nvme_ioctl::{Cmd, ADMIN_CMD},
    pci::{self, Function},
    sriov::{list_secondary_on, set_numvfs, vfs, Secondary},
    vfio_client::cdev,
};

/// The fewest VFs the benchmark accepts (the bar).
const MIN_VFS: u16 = 32;
/// VFs of the warm-up round.
const WARM_UP_VFS: u16 = 8;
/// Samples of the single-VF switch.
const SWITCH_SAMPLES: usize = 5;
/// The C driver's controller device for the PF.
const C_CHARDEV: &str = "/dev/nvme0";
/// The rnvme controller device for the PF.
const RNVME_CHARDEV: &str = "/dev/rnvme0";
/// The vfio-mode driver.
const RNVME_VFIO: &str = "rnvme-vfio";
/// How long any single step may take.
const STEP_TIMEOUT: Duration = Duration::from_secs(30);

/// Runs the benchmark.
pub fn run(env: &Env) -> Result<(), String> {
    module::ensure_unloaded(RNVME)?;
    let pf = pci::nvme_pf()?;
    let total: u16 = sysfs_read(&pf.dir().join("sriov_totalvfs"))?
        .parse()
        .map_err(|e| format!("sriov_totalvfs: {e}"))?;
    if total < MIN_VFS {
        return Err(format!(
            "the device offers {total} VFs; the benchmark needs at least {MIN_VFS}"
        ));
    }
    // TCG translates kernel code the first time it runs: a warm-up round of both flows
    // keeps that cost out of whichever flow would otherwise run first.
    println!("warm-up: {WARM_UP_VFS} VFs each way (not counted)");
    let (_, resources, _) = rnvme_flow(env, &pf, WARM_UP_VFS, false)?;
    stock_flow(env, &pf, &resources, false)?;

    println!("provisioning {total} VFs each way");
    let (direct, resources, switch_direct) = rnvme_flow(env, &pf, total, true)?;
    let (setup, stock, switch_stock) = stock_flow(env, &pf, &resources, true)?;

    let direct_ms = direct.as_secs_f64() * 1e3;
    let vf_sum: f64 = stock.iter().map(StockVf::total_ms).sum();
    let stock_ms = setup + vf_sum;
    let n = f64::from(total);
    println!(
        "(a) rnvme sriov_vf_mode=vfio: {total} VFs in {direct_ms:.0} ms, {:.2} ms per VF",
        direct_ms / n
    );
    println!(
        "(b) stock: set-up {setup:.0} ms + C nvme probe, unbind, driver_override vfio-pci, \
         bind {vf_sum:.0} ms = {total} VFs in {stock_ms:.0} ms, {:.2} ms per VF",
        stock_ms / n
    );
    let (sd, ss) = (median(&switch_direct), median(&switch_stock));
    println!(
        "single VF switch (median of {SWITCH_SAMPLES}): echo vfio > mode {sd:.2} ms; \
         stock unbind nvme + driver_override + bind vfio-pci {ss:.2} ms (ratio {:.1})",
        ss / sd
    );
    println!("provision speedup: {:.1}", stock_ms / direct_ms);
    Ok(())
}

/// (a): every VF straight to vfio mode. Returns the time, the resources rnvme gave each
/// secondary controller (the stock flow gives the same) and the single-switch samples.
fn rnvme_flow(
    env: &Env,
    pf: &Function,
    total: u16,
    report: bool,
) -> Result<(Duration, Vec<Secondary>, Vec<f64>), String> {
    module::insmod(&env.module)?;
    wait_for(|| Path::new(RNVME_CHARDEV).exists(), "rnvme to bind the PF")?;
    sysfs_write(&pf.dir().join("sriov_vf_mode"), "vfio")?;
    let mark = kmsg::mark()?;
    let start = Instant::now();
    set_numvfs(pf, total)?;
    let all = vfs(pf)?;
    wait_for(
        || all.iter().all(|vf| vfio_ready(vf, RNVME_VFIO)),
        "every VF to become a VFIO device",
    )?;
    let elapsed = start.elapsed();
    check_opens(&all)?;
    if all.len() != usize::from(total) {
        return Err(format!("{} VFs appeared, not {total}", all.len()));
    }
    if report {
        print_direct_per_vf(mark, &all)?;
    }
    // The secondary controllers of the enabled VFs (the list has every VF's).
    let resources: Vec<Secondary> = list_secondary_on(RNVME_CHARDEV)?
        .into_iter()
        .filter(|s| (1..=u64::from(total)).contains(&s.vfn))
        .collect();

    // One VF back to block mode, then timed switches to vfio mode while it is idle.
    let vf = &all[0];
    let mode = vf.dir().join("mode");
    let mut samples = Vec::new();
    for _ in 0..SWITCH_SAMPLES {
        sysfs_write(&mode, "nvme")?;
        let t = Instant::now();
        sysfs_write(&mode, "vfio")?;
        samples.push(t.elapsed().as_secs_f64() * 1e3);
        if !vfio_ready(vf, RNVME_VFIO) {
            return Err(format!("{}: not a VFIO device after echo vfio", vf.bdf));
        }
    }
    set_numvfs(pf, 0)?;
    module::rmmod(RNVME)?;
    Ok((elapsed, resources, samples))
}

/// Prints when each VF became a VFIO device, from the kernel log: the interval since the
/// previous VF (for the first, since the enable began, which includes every VF's
/// resource assignment).
fn print_direct_per_vf(mark: u64, all: &[Function]) -> Result<(), String> {
    let records = kmsg::records_since(mark)?;
    let start = records
        .iter()
        .find(|r| r.text.contains("VF(s):"))
        .map(|r| r.usec)
        .ok_or("the kernel log has no start of the VF enable")?;
    let mut prev = start;
    for vf in all {
        let at = records
            .iter()
            .find(|r| r.text.starts_with(&format!("{RNVME_VFIO} {}: ", vf.bdf)))
            .map(|r| r.usec)
            .ok_or_else(|| format!("the kernel log has no vfio probe of {}", vf.bdf))?;
        println!(
            "(a) VF {}: VFIO device {:.2} ms after the previous one",
            vf.bdf,
            at.saturating_sub(prev) as f64 / 1e3
        );
        prev = at;
    }
    Ok(())
}

/// One VF's way through the stock flow, in milliseconds.
struct StockVf {
    probe: f64,
    unbind: f64,
    rebind: f64,
}

impl StockVf {
    fn total_ms(&self) -> f64 {
        self.probe + self.unbind + self.rebind
    }
}

/// (b): the stock flow. Returns the set-up time (ms), each VF's times and the
/// single-switch samples.
fn stock_flow(
    env: &Env,
    pf: &Function,
    resources: &[Secondary],
    report: bool,
) -> Result<(f64, Vec<StockVf>, Vec<f64>), String> {
    module::modprobe(&env.modroot, "nvme")?;
    wait_for(|| Path::new(C_CHARDEV).exists(), "nvme to bind the PF")?;
    // Resources first, as an operator's script would do them: offline and assign while
    // the VFs are off, enable them without autoprobe, then online. Autoprobe goes back on once every VF is online, so the C driver may bind them.
    let ctrl = fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(C_CHARDEV)
        .map_err(|e| format!("open {C_CHARDEV}: {e}"))?;
    let setup = Instant::now();
    for s in resources {
        virt_mgmt(&ctrl, s.scid, 7, 0, 0)?;
        virt_mgmt(&ctrl, s.scid, 8, 0, s.nvq)?;
        virt_mgmt(&ctrl, s.scid, 8, 1, s.nvi)?;
    }
    sysfs_write(&pf.dir().join("sriov_drivers_autoprobe"), "0")?;
    set_numvfs(pf, resources.len() as u16)?;
    for s in resources {
        virt_mgmt(&ctrl, s.scid, 9, 0, 0)?;
    }
    sysfs_write(&pf.dir().join("sriov_drivers_autoprobe"), "1")?;
    drop(ctrl);
    let setup = setup.elapsed().as_secs_f64() * 1e3;
    if report {
        println!(
            "(b) set-up (resources, enable, online) for {} VFs: {setup:.0} ms",
            resources.len()
        );
    }

    let all = vfs(pf)?;
    let mut out = Vec::new();
    for vf in &all {
        let t = stock_vf(vf)?;
        if report {
            println!(
                "(b) VF {}: C nvme probe {:.2} ms, unbind {:.2} ms, vfio-pci bind {:.2} ms",
                vf.bdf, t.probe, t.unbind, t.rebind
            );
        }
        out.push(t);
    }
    check_opens(&all)?;

    // The same single-VF switch as in (a): back to nvme (not timed), then to vfio-pci.
    let vf = &all[0];
    let mut samples = Vec::new();
    for _ in 0..SWITCH_SAMPLES {
        vf.unbind_from("vfio-pci")?;
        sysfs_write(&vf.dir().join("driver_override"), "\n")?;
        bind_c_nvme(vf)?;
        let t = Instant::now();
        vf.unbind_from("nvme")?;
        rebind_vfio_pci(vf)?;
        samples.push(t.elapsed().as_secs_f64() * 1e3);
    }

    for vf in &all {
        vf.unbind_from("vfio-pci")?;
        sysfs_write(&vf.dir().join("driver_override"), "\n")?;
    }
    set_numvfs(pf, 0)?;
    module::modprobe_remove(&env.modroot, "nvme")?;
    Ok((setup, out, samples))
}

/// Takes one VF through the stock flow.
fn stock_vf(vf: &Function) -> Result<StockVf, String> {
    let t = Instant::now();
    bind_c_nvme(vf)?;
    let probe = t.elapsed().as_secs_f64() * 1e3;
    let t = Instant::now();
    vf.unbind_from("nvme")?;
    let unbind_ms = t.elapsed().as_secs_f64() * 1e3;
    let t = Instant::now();
    rebind_vfio_pci(vf)?;
    Ok(StockVf {
        probe,
        unbind: unbind_ms,
        rebind: t.elapsed().as_secs_f64() * 1e3,
    })
}

/// Binds `vf` to the C nvme driver and waits until its controller is live.
fn bind_c_nvme(vf: &Function) -> Result<(), String> {
    sysfs_write(Path::new("/sys/bus/pci/drivers/nvme/bind"), &vf.bdf)?;
    wait_for(
        || c_ctrl_state(vf).as_deref() == Some("live"),
        "the C driver's VF controller to go live",
    )
}

/// The state of the C driver's controller on `vf` (`live` once probed).
fn c_ctrl_state(vf: &Function) -> Option<String> {
    let ctrl = fs::read_dir(vf.dir().join("nvme"))
        .ok()?
        .filter_map(|e| e.ok())
        .next()?
        .path();
    fs::read_to_string(ctrl.join("state"))
        .ok()
        .map(|s| s.trim().to_string())
}

/// Sets `driver_override` to vfio-pci and binds `vf` through `drivers_probe`.
fn rebind_vfio_pci(vf: &Function) -> Result<(), String> {
    sysfs_write(&vf.dir().join("driver_override"), "vfio-pci")?;
    sysfs_write(Path::new("/sys/bus/pci/drivers_probe"), &vf.bdf)?;
    if vfio_ready(vf, "vfio-pci") {
        Ok(())
    } else {
        Err(format!("{}: not a vfio-pci device after binding", vf.bdf))
    }
}

/// Whether `vf` is bound to `driver` with a registered VFIO device: its cdev and its
/// group's device file exist.
fn vfio_ready(vf: &Function, driver: &str) -> bool {
    vf.driver().as_deref() == Some(driver)
        && cdev(&vf.bdf).is_ok_and(|p| p.exists())
        && fs::read_link(vf.dir().join("iommu_group"))
            .ok()
            .and_then(|g| g.file_name().map(|n| Path::new("/dev/vfio").join(n)))
            .is_some_and(|p| p.exists())
}

/// Opens (and closes) every VF's VFIO device file: each must be a working VFIO device.
fn check_opens(all: &[Function]) -> Result<(), String> {
    for vf in all {
        let path = cdev(&vf.bdf)?;
        fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(&path)
            .map_err(|e| format!("open {}: {e}", path.display()))?;
    }
    Ok(())
}

/// Sends Virtualization Management (opcode 0x1c) through the C driver's PF controller,
/// with the admin passthrough ioctl nvme-cli uses (a process per command would cost the
/// setup minutes under TCG).
fn virt_mgmt(ctrl: &fs::File, scid: u64, act: u8, rt: u8, nr: u64) -> Result<(), String> {
    let cdw10 = u32::from(act) | u32::from(rt) << 8 | (scid as u32) << 16;
    let mut cmd = Cmd::raw(0x1c, 0, 0, 0, cdw10).cdw(11, nr as u32);
    match cmd.send(ctrl.as_raw_fd(), ADMIN_CMD) {
        Ok(0) => Ok(()),
        Ok(status) => Err(format!(
            "Virtualization Management act {act} rt {rt} on controller {scid}: NVMe status {status:#x}"
        )),
        Err(errno) => Err(format!(
            "Virtualization Management act {act} on controller {scid}: errno {errno}"
        )),
    }
}

/// Waits until `cond` holds, polling every 100 µs so the polling adds little to either
/// flow's times.
fn wait_for(cond: impl FnMut() -> bool, what: &str) -> Result<(), String> {
    if poll_until(STEP_TIMEOUT, Duration::from_micros(100), cond) {
        Ok(())
    } else {
        Err(format!("timed out waiting for {what}"))
    }
}
