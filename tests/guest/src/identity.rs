// SPDX-License-Identifier: GPL-2.0

//! The controller identity line the driver logs at probe.

/// What the driver reports about a controller at probe.
#[derive(Debug, PartialEq, Eq)]
pub struct Identity {
    /// `PF` or `VF`.
    pub kind: String,
    /// PCI vendor ID.
    pub vendor: u16,
    /// PCI device ID.
    pub device: u16,
    /// NVMe version, e.g. `1.4.0`.
    pub version: String,
    /// The CAP register.
    pub cap: u64,
}

/// Parses `rnvme <bdf>: NVMe <PF|VF> controller <vvvv>:<dddd> rev <rr>, VS <x.y.z>, CAP
/// 0x<cap>: ...` for function `bdf`.
pub fn parse(line: &str, bdf: &str) -> Option<Identity> {
    let rest = line.strip_prefix(&format!("rnvme {bdf}: NVMe "))?;
    let (kind, rest) = rest.split_once(" controller ")?;
    let (ids, rest) = rest.split_once(' ')?;
    let (vendor, device) = ids.split_once(':')?;
    let version = rest.split_once("VS ")?.1.split_once(',')?.0;
    let cap = rest.split_once("CAP 0x")?.1.split_once(':')?.0;
    Some(Identity {
        kind: kind.to_string(),
        vendor: u16::from_str_radix(vendor, 16).ok()?,
        device: u16::from_str_radix(device, 16).ok()?,
        version: version.to_string(),
        cap: u64::from_str_radix(cap, 16).ok()?,
    })
}

/// The newest identity line for `bdf` among `lines`.
pub fn latest(lines: &[String], bdf: &str) -> Option<Identity> {
    lines.iter().rev().find_map(|l| parse(l, bdf))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_probe_line() {
        let line = "rnvme 0000:01:00.0: NVMe PF controller 1b36:0010 rev 02, VS 1.4.0, \
                    CAP 0x004008200f0107ff: MQES 2048, DSTRD 4 bytes, TO 7500 ms";
        let id = parse(line, "0000:01:00.0").expect("identity");
        assert_eq!(id.kind, "PF");
        assert_eq!((id.vendor, id.device), (0x1b36, 0x0010));
        assert_eq!(id.version, "1.4.0");
        assert_eq!(id.cap, 0x0040_0820_0f01_07ff);
        assert!(parse(line, "0000:01:00.1").is_none());
        assert!(parse("rnvme 0000:01:00.0: unbound", "0000:01:00.0").is_none());
    }
}
