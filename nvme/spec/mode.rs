// SPDX-License-Identifier: GPL-2.0

//! The two lives of a function, as the `mode` and `sriov_vf_mode` sysfs attributes spell
//! them: `nvme` (a block device of this driver) or `vfio` (a VFIO device for a VMM).
//!
//! Pure logic, compiled by the module and by the host tests.

use core::fmt;

/// What a function is used as.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Mode {
    /// Block mode: the driver runs the controller and adds a disk per namespace.
    #[default]
    Nvme,
    /// VFIO mode: the function is a VFIO device; the driver never touches the controller.
    Vfio,
}

/// Every mode, in the order the attributes list them.
pub const MODES: [Mode; 2] = [Mode::Nvme, Mode::Vfio];

impl Mode {
    /// The attribute's word for the mode.
    pub const fn name(self) -> &'static str {
        match self {
            Mode::Nvme => "nvme",
            Mode::Vfio => "vfio",
        }
    }

    /// Parses a sysfs write: exactly a mode's name, optionally followed by one newline
    /// (what `echo` adds). Anything else (other words, case, spaces, NUL bytes, an empty
    /// write) is `None`.
    pub fn parse(input: &[u8]) -> Option<Mode> {
        let word = input.strip_suffix(b"\n").unwrap_or(input);
        MODES.into_iter().find(|m| m.name().as_bytes() == word)
    }
}

/// Formats the choices with `current` in brackets, like the block layer's `scheduler`
/// attribute: `[nvme] vfio` followed by a newline.
pub fn show_choices(current: Mode, out: &mut impl fmt::Write) -> fmt::Result {
    for (i, m) in MODES.into_iter().enumerate() {
        if i > 0 {
            out.write_str(" ")?;
        }
        if m == current {
            write!(out, "[{}]", m.name())?;
        } else {
            out.write_str(m.name())?;
        }
    }
    out.write_str("\n")
}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::*;
    use std::string::String;

    #[test]
    fn parses_names_with_an_optional_newline() {
        assert_eq!(Mode::parse(b"nvme"), Some(Mode::Nvme));
        assert_eq!(Mode::parse(b"vfio\n"), Some(Mode::Vfio));
        assert_eq!(Mode::parse(b"nvme\n"), Some(Mode::Nvme));
    }

    #[test]
    fn rejects_everything_else() {
        for bad in [
            &b""[..],
            b"\n",
            b"vfio\n\n",
            b"VFIO",
            b" vfio",
            b"vfio ",
            b"vfio\0",
            b"vfi",
            b"vfio-pci",
            b"nvmevfio",
            b"\xff\xfe",
        ] {
            assert_eq!(Mode::parse(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn shows_the_current_mode_in_brackets() {
        let mut s = String::new();
        show_choices(Mode::Nvme, &mut s).unwrap();
        assert_eq!(s, "[nvme] vfio\n");
        let mut s = String::new();
        show_choices(Mode::Vfio, &mut s).unwrap();
        assert_eq!(s, "nvme [vfio]\n");
    }

    #[test]
    fn default_is_block_mode() {
        assert_eq!(Mode::default(), Mode::Nvme);
    }
}
