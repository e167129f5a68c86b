// SPDX-License-Identifier: GPL-2.0

//! PCI functions as sysfs shows them.

use std::{fs, path::PathBuf};

/// The sysfs directory of PCI functions.
pub const DEVICES: &str = "/sys/bus/pci/devices";

/// PCI class code of an NVMe controller.
pub const CLASS_NVME: u32 = 0x01_08_02;

/// A PCI function by its BDF (`0000:01:00.0`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Function {
    /// Domain:bus:device.function.
    pub bdf: String,
}

impl Function {
    /// The function's sysfs directory.
    pub fn dir(&self) -> PathBuf {
        PathBuf::from(DEVICES).join(&self.bdf)
    }

    /// Reads a hexadecimal sysfs attribute such as `vendor` or `class`.
    pub fn hex_attr(&self, name: &str) -> Result<u32, String> {
        let path = self.dir().join(name);
        let text = fs::read_to_string(&path).map_err(|e| format!("{}: {e}", path.display()))?;
        let text = text.trim();
        u32::from_str_radix(text.trim_start_matches("0x"), 16)
            .map_err(|e| format!("{}: {text:?}: {e}", path.display()))
    }

    /// Name of the bound driver, if any.
    pub fn driver(&self) -> Option<String> {
        fs::read_link(self.dir().join("driver"))
            .ok()
            .and_then(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
    }

    /// Unbinds this function from `driver` (through the driver's `unbind` file).
    pub fn unbind_from(&self, driver: &str) -> Result<(), String> {
        let path = PathBuf::from("/sys/bus/pci/drivers")
            .join(driver)
            .join("unbind");
        fs::write(&path, &self.bdf)
            .map_err(|e| format!("write {} to {}: {e}", self.bdf, path.display()))
    }

    /// Whether this function is an SR-IOV virtual function.
    pub fn is_virtfn(&self) -> bool {
        self.dir().join("physfn").exists()
    }
}

/// Every NVMe function (class 01:08:02), sorted by BDF.
pub fn nvme_functions() -> Result<Vec<Function>, String> {
    let mut out = Vec::new();
    let entries = fs::read_dir(DEVICES).map_err(|e| format!("{DEVICES}: {e}"))?;
    for entry in entries {
        let entry = entry.map_err(|e| e.to_string())?;
        let f = Function {
            bdf: entry.file_name().to_string_lossy().into_owned(),
        };
        if f.hex_attr("class")? == CLASS_NVME {
            out.push(f);
        }
    }
    out.sort_by(|a, b| a.bdf.cmp(&b.bdf));
    Ok(out)
}

/// The (first) NVMe physical function.
pub fn nvme_pf() -> Result<Function, String> {
    nvme_functions()?
        .into_iter()
        .find(|f| !f.is_virtfn())
        .ok_or_else(|| "no NVMe physical function in the VM".to_string())
}
