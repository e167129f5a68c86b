// SPDX-License-Identifier: GPL-2.0

//! An NVMe controller behind a PCI function: its register BAR and identity.

use kernel::prelude::*;

use crate::{
    driver::BAR0_NAME,
    kapi::{
        device::{dev_err, dev_info, Core},
        pci,
    },
    spec::regs::{Cap, Csts, Vs, REGS_SIZE},
};

/// A controller whose BAR0 is mapped.
///
/// # Invariants
///
/// The PCI function's memory space is enabled while the `Controller` exists; `shutdown`
/// disables it.
pub(crate) struct Controller {
    bar: pci::Bar<REGS_SIZE>,
}

impl Controller {
    /// Enables the function, maps BAR0 and reads the controller's capabilities.
    pub(crate) fn new(pdev: &pci::Device<Core>) -> Result<Self> {
        pdev.enable_device_mem()?;
        let bar = match pdev.iomap_region_sized::<REGS_SIZE>(0, BAR0_NAME) {
            Ok(bar) => bar,
            Err(e) => {
                dev_err!(pdev, "cannot map BAR0: {:?}\n", e);
                pdev.disable_device();
                return Err(e);
            }
        };

        let cap = Cap::read(&*bar);
        let vs = Vs::read(&*bar);
        let csts = Csts::read(&*bar);
        if csts.is_all_ones() {
            dev_err!(
                pdev,
                "controller registers read all ones: function not responding\n"
            );
            drop(bar);
            pdev.disable_device();
            return Err(ENODEV);
        }

        dev_info!(
            pdev,
            "NVMe {} controller {:04x}:{:04x} rev {:02x}, VS {}, CAP {:#018x}: MQES {}, DSTRD {} bytes, TO {} ms, MPSMIN {} bytes, CSS {:#x}, CSTS {:#x}\n",
            if pdev.is_virtfn() { "VF" } else { "PF" },
            pdev.vendor_id(),
            pdev.device_id(),
            pdev.revision_id(),
            vs,
            cap.0,
            cap.max_queue_entries(),
            cap.doorbell_stride(),
            cap.timeout_ms(),
            cap.min_page_size(),
            cap.css(),
            csts.0,
        );

        // INVARIANT: the function was enabled above.
        Ok(Self { bar })
    }

    /// Current controller status.
    pub(crate) fn status(&self) -> Csts {
        Csts::read(&*self.bar)
    }

    /// Quiesces the function at unbind: disables its memory space. The BAR mapping is
    /// released when the `Controller` is dropped.
    pub(crate) fn shutdown(&self, pdev: &pci::Device<Core>) {
        pdev.disable_device();
    }
}
