// SPDX-License-Identifier: GPL-2.0

//! PCIe AER error injection through the kernel's `/dev/aer_inject`
//! (`CONFIG_PCIEAER_INJECT`, drivers/pci/pcie/aer_inject.c).
//!
//! The kernel fakes the function's AER status registers and the root port's error source,
//! then raises the root port's AER interrupt: the AER core reports the error and runs the
//! PCI error recovery (the drivers' `error_detected`, `mmio_enabled`, `slot_reset`,
//! `resume`) as for a real one. The target function needs an AER capability, which the
//! test VM's emulated controller has with `x-aer=on` (qemu/patches/0006), and the root
//! port's AER service must be bound. Whether an uncorrectable error is fatal is decided by
//! the function's Uncorrectable Error Severity register, read at injection time; the
//! constants below assume QEMU's default (`PCI_ERR_UNC_SEVERITY_DEFAULT`,
//! hw/pci/pcie_aer.c).

// The recovery tests that use these helpers come later.
#![allow(dead_code)]

use std::fs::OpenOptions;
use std::io::Write;

/// The injection device.
pub const DEVICE: &str = "/dev/aer_inject";

/// Uncorrectable: Unsupported Request (bit 20). Non-fatal under QEMU's default severity.
pub const UNC_UNSUPPORTED_REQUEST: u32 = 1 << 20;
/// Uncorrectable: Malformed TLP (bit 18). Fatal under QEMU's default severity.
pub const UNC_MALFORMED_TLP: u32 = 1 << 18;
/// Correctable: Bad TLP (bit 6). Not masked by default.
pub const COR_BAD_TLP: u32 = 1 << 6;

/// A function's address as `/dev/aer_inject` takes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Bdf {
    pub domain: u32,
    pub bus: u8,
    pub dev: u8,
    pub func: u8,
}

/// Parses `dddd:bb:dd.f` (hexadecimal, as sysfs names functions).
pub fn parse_bdf(bdf: &str) -> Result<Bdf, String> {
    let bad = |why: &str| format!("bad PCI address {bdf:?}: {why} (want dddd:bb:dd.f)");
    let (domain, rest) = bdf.split_once(':').ok_or_else(|| bad("no domain"))?;
    let (bus, rest) = rest.split_once(':').ok_or_else(|| bad("no bus"))?;
    let (dev, func) = rest.split_once('.').ok_or_else(|| bad("no function"))?;
    let hex = |s: &str, what: &str, max: u32| {
        if s.is_empty() || s.len() > 8 {
            return Err(bad(what));
        }
        u32::from_str_radix(s, 16)
            .ok()
            .filter(|v| *v <= max)
            .ok_or_else(|| bad(what))
    };
    Ok(Bdf {
        domain: hex(domain, "domain", u32::MAX)?,
        bus: hex(bus, "bus", 0xff)? as u8,
        dev: hex(dev, "device", 0x1f)? as u8,
        func: hex(func, "function", 7)? as u8,
    })
}

/// `struct aer_error_inj` of Linux 6.12: three u8 (bus, dev, fn), one byte of padding,
/// then u32 uncor_status, cor_status, header_log0..3 and domain; 32 bytes, native endian.
pub fn encode(bdf: Bdf, uncor_status: u32, cor_status: u32) -> [u8; 32] {
    let mut b = [0u8; 32];
    b[0] = bdf.bus;
    b[1] = bdf.dev;
    b[2] = bdf.func;
    let words = [uncor_status, cor_status, 0, 0, 0, 0, bdf.domain];
    for (i, w) in words.iter().enumerate() {
        b[4 + 4 * i..8 + 4 * i].copy_from_slice(&w.to_ne_bytes());
    }
    b
}

/// Injects uncorrectable error(s) `status_bits` (e.g. [`UNC_UNSUPPORTED_REQUEST`]) into
/// function `bdf` (`0000:01:00.0`). Returns once the root port's AER interrupt has been
/// raised; the recovery runs afterwards in the AER core's thread.
pub fn inject_uncorrectable(bdf: &str, status_bits: u32) -> Result<(), String> {
    inject(bdf, status_bits, 0)
}

/// Injects correctable error(s) `status_bits` (e.g. [`COR_BAD_TLP`]) into `bdf`.
pub fn inject_correctable(bdf: &str, status_bits: u32) -> Result<(), String> {
    inject(bdf, 0, status_bits)
}

fn inject(bdf: &str, uncor_status: u32, cor_status: u32) -> Result<(), String> {
    if uncor_status == 0 && cor_status == 0 {
        return Err(format!("AER injection into {bdf}: no error bits given"));
    }
    let rec = encode(parse_bdf(bdf)?, uncor_status, cor_status);
    let what = format!("AER injection of {uncor_status:#010x}/{cor_status:#010x} (uncorrectable/correctable) into {bdf}");
    let mut f = OpenOptions::new().write(true).open(DEVICE).map_err(|e| {
        format!("{what}: cannot open {DEVICE}: {e} (is CONFIG_PCIEAER_INJECT in the kernel?)")
    })?;
    match f.write(&rec) {
        Ok(n) if n == rec.len() => Ok(()),
        Ok(n) => Err(format!("{what}: short write ({n} of {} bytes)", rec.len())),
        Err(e) => {
            let hint = match e.raw_os_error() {
                Some(libc::ENODEV) => {
                    " (no such function, no root port, or the root port's AER service is not bound)"
                }
                Some(libc::EPROTONOSUPPORT) => {
                    " (the function or its root port has no AER capability, or the AER service is not initialized)"
                }
                Some(libc::EINVAL) => " (the error is masked by the function's AER mask registers)",
                _ => "",
            };
            Err(format!("{what}: {e}{hint}; see the kernel log"))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_bdf() {
        assert_eq!(
            parse_bdf("0000:01:00.3").unwrap(),
            Bdf {
                domain: 0,
                bus: 1,
                dev: 0,
                func: 3
            }
        );
        assert_eq!(parse_bdf("10000:ff:1f.7").unwrap().domain, 0x10000);
        for bad in [
            "",
            "01:00.0",
            "0000:01:00",
            "0000:100:00.0",
            "0000:01:20.0",
            "0000:01:00.8",
            "0000:0g:00.0",
        ] {
            assert!(parse_bdf(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn encodes_the_kernel_layout() {
        let b = encode(
            parse_bdf("0001:02:03.4").unwrap(),
            UNC_MALFORMED_TLP,
            COR_BAD_TLP,
        );
        assert_eq!(&b[..4], &[2, 3, 4, 0]);
        assert_eq!(u32::from_ne_bytes(b[4..8].try_into().unwrap()), 1 << 18);
        assert_eq!(u32::from_ne_bytes(b[8..12].try_into().unwrap()), 1 << 6);
        assert!(b[12..28].iter().all(|&x| x == 0));
        assert_eq!(u32::from_ne_bytes(b[28..32].try_into().unwrap()), 1);
    }
}
