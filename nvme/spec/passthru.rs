// SPDX-License-Identifier: GPL-2.0

//! The NVMe passthrough ioctl ABI (`include/uapi/linux/nvme_ioctl.h`): decoding and
//! validating what userspace (nvme-cli, libnvme) hands the driver.
//!
//! Everything here is untrusted input: every field is checked before a command is built.

use super::command::{admin, Command};

/// `_IOC` number type of the NVMe ioctls (`'N'`).
pub const IOCTL_TYPE: u32 = b'N' as u32;

/// `struct nvme_passthru_cmd` (= `struct nvme_admin_cmd`): 72 bytes.
pub const PASSTHRU_SIZE: usize = 72;
/// `struct nvme_passthru_cmd64`: 80 bytes.
pub const PASSTHRU64_SIZE: usize = 80;

/// The NVMe ioctls of controller character devices and namespace disks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ioctl {
    /// `NVME_IOCTL_ADMIN_CMD`: 32-bit result.
    AdminCmd,
    /// `NVME_IOCTL_ADMIN64_CMD`: 64-bit result.
    Admin64Cmd,
    /// `NVME_IOCTL_IO_CMD`: an I/O command, 32-bit result.
    IoCmd,
    /// `NVME_IOCTL_IO64_CMD`: an I/O command, 64-bit result.
    Io64Cmd,
    /// `NVME_IOCTL_ID`: the namespace ID of a disk.
    Id,
    /// `NVME_IOCTL_RESET`: reset the controller.
    Reset,
    /// `NVME_IOCTL_RESCAN`: rescan the namespaces.
    Rescan,
}

const IOC_NRBITS: u32 = 8;
const IOC_TYPEBITS: u32 = 8;
const IOC_SIZEBITS: u32 = 14;
const IOC_NRSHIFT: u32 = 0;
const IOC_TYPESHIFT: u32 = IOC_NRSHIFT + IOC_NRBITS;
const IOC_SIZESHIFT: u32 = IOC_TYPESHIFT + IOC_TYPEBITS;
const IOC_DIRSHIFT: u32 = IOC_SIZESHIFT + IOC_SIZEBITS;
const IOC_NONE: u32 = 0;
const IOC_WRITE: u32 = 1;
const IOC_READ: u32 = 2;

/// Builds an ioctl number like the C `_IOC` macro.
pub const fn ioc(dir: u32, nr: u32, size: u32) -> u32 {
    (dir << IOC_DIRSHIFT)
        | (IOCTL_TYPE << IOC_TYPESHIFT)
        | (nr << IOC_NRSHIFT)
        | (size << IOC_SIZESHIFT)
}

/// `NVME_IOCTL_ID`.
pub const NVME_IOCTL_ID: u32 = ioc(IOC_NONE, 0x40, 0);
/// `NVME_IOCTL_ADMIN_CMD`.
pub const NVME_IOCTL_ADMIN_CMD: u32 = ioc(IOC_READ | IOC_WRITE, 0x41, PASSTHRU_SIZE as u32);
/// `NVME_IOCTL_IO_CMD`.
pub const NVME_IOCTL_IO_CMD: u32 = ioc(IOC_READ | IOC_WRITE, 0x43, PASSTHRU_SIZE as u32);
/// `NVME_IOCTL_RESET`.
pub const NVME_IOCTL_RESET: u32 = ioc(IOC_NONE, 0x44, 0);
/// `NVME_IOCTL_RESCAN`.
pub const NVME_IOCTL_RESCAN: u32 = ioc(IOC_NONE, 0x46, 0);
/// `NVME_IOCTL_ADMIN64_CMD`.
pub const NVME_IOCTL_ADMIN64_CMD: u32 = ioc(IOC_READ | IOC_WRITE, 0x47, PASSTHRU64_SIZE as u32);
/// `NVME_IOCTL_IO64_CMD`.
pub const NVME_IOCTL_IO64_CMD: u32 = ioc(IOC_READ | IOC_WRITE, 0x48, PASSTHRU64_SIZE as u32);

impl Ioctl {
    /// Decodes an ioctl number; `None` for anything that is not an NVMe ioctl.
    pub fn from_cmd(cmd: u32) -> Option<Self> {
        match cmd {
            NVME_IOCTL_ADMIN_CMD => Some(Self::AdminCmd),
            NVME_IOCTL_ADMIN64_CMD => Some(Self::Admin64Cmd),
            NVME_IOCTL_IO_CMD => Some(Self::IoCmd),
            NVME_IOCTL_IO64_CMD => Some(Self::Io64Cmd),
            NVME_IOCTL_ID => Some(Self::Id),
            NVME_IOCTL_RESET => Some(Self::Reset),
            NVME_IOCTL_RESCAN => Some(Self::Rescan),
            _ => None,
        }
    }

    /// Size of the argument structure.
    pub fn arg_size(self) -> usize {
        match self {
            Self::AdminCmd | Self::IoCmd => PASSTHRU_SIZE,
            Self::Admin64Cmd | Self::Io64Cmd => PASSTHRU64_SIZE,
            Self::Id | Self::Reset | Self::Rescan => 0,
        }
    }

    /// Byte offset and size of the `result` field written back to the user.
    pub fn result_field(self) -> Option<(usize, usize)> {
        match self {
            Self::AdminCmd | Self::IoCmd => Some((68, 4)),
            // `timeout_ms` at 64, `rsvd2` at 68, then the 64-bit result.
            Self::Admin64Cmd | Self::Io64Cmd => Some((72, 8)),
            Self::Id | Self::Reset | Self::Rescan => None,
        }
    }
}

/// Why a passthrough command is refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PassthruError {
    /// The structure is shorter than its type requires.
    Truncated,
    /// Reserved fields or flags are set, or metadata was given (not supported).
    Unsupported,
    /// The data length exceeds what the driver transfers.
    TooLong,
    /// A data length without a buffer, or a buffer without a data direction.
    BadBuffer,
}

/// Which way the data of a command moves, from the opcode's low two bits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DataDirection {
    /// No data transfer.
    None,
    /// Host to controller.
    ToDevice,
    /// Controller to host.
    FromDevice,
    /// Both directions (bidirectional commands).
    Both,
}

impl DataDirection {
    /// Decodes bits 1:0 of an opcode.
    pub fn of_opcode(opcode: u8) -> Self {
        match opcode & 0b11 {
            0b00 => Self::None,
            0b01 => Self::ToDevice,
            0b10 => Self::FromDevice,
            _ => Self::Both,
        }
    }

    /// Whether user data is copied to the device before the command.
    pub fn copies_in(self) -> bool {
        matches!(self, Self::ToDevice | Self::Both)
    }

    /// Whether device data is copied back to the user after the command.
    pub fn copies_out(self) -> bool {
        matches!(self, Self::FromDevice | Self::Both)
    }
}

/// A validated passthrough command.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Passthru {
    /// The command to send, without data pointer and command ID.
    pub cmd: Command,
    /// User address of the data buffer.
    pub addr: u64,
    /// Length of the data buffer.
    pub data_len: u32,
    /// Direction of the data.
    pub dir: DataDirection,
    /// Requested timeout in milliseconds (0: the driver's default).
    pub timeout_ms: u32,
}

fn u32_at(b: &[u8], o: usize) -> u32 {
    u32::from_le_bytes([b[o], b[o + 1], b[o + 2], b[o + 3]])
}

fn u64_at(b: &[u8], o: usize) -> u64 {
    u64::from(u32_at(b, o)) | (u64::from(u32_at(b, o + 4)) << 32)
}

impl Passthru {
    /// Decodes and validates `struct nvme_passthru_cmd` (or the 64-bit variant, whose
    /// leading fields are identical) from its bytes. `max_data` is the largest transfer the
    /// driver accepts.
    pub fn parse(b: &[u8], max_data: u32) -> Result<Self, PassthruError> {
        if b.len() < PASSTHRU_SIZE {
            return Err(PassthruError::Truncated);
        }
        let opcode = b[0];
        let flags = b[1];
        let rsvd1 = u16::from_le_bytes([b[2], b[3]]);
        let metadata = u64_at(b, 16);
        let metadata_len = u32_at(b, 32);
        if flags != 0 || rsvd1 != 0 || metadata != 0 || metadata_len != 0 {
            return Err(PassthruError::Unsupported);
        }
        let data_len = u32_at(b, 36);
        let addr = u64_at(b, 24);
        if data_len > max_data {
            return Err(PassthruError::TooLong);
        }
        let dir = DataDirection::of_opcode(opcode);
        if data_len != 0 && (addr == 0 || dir == DataDirection::None) {
            return Err(PassthruError::BadBuffer);
        }
        let mut cmd = Command::new(opcode).with_nsid(u32_at(b, 4));
        cmd.dw[2] = u32_at(b, 8);
        cmd.dw[3] = u32_at(b, 12);
        for (i, dw) in (10..16).zip((40..64).step_by(4)) {
            cmd = cmd.with_cdw(i, u32_at(b, dw));
        }
        Ok(Self {
            cmd,
            addr,
            data_len,
            dir: if data_len == 0 {
                DataDirection::None
            } else {
                dir
            },
            timeout_ms: u32_at(b, 64),
        })
    }
}

/// What an admin passthrough command does beyond its own data, as far as the driver must
/// act on it (the C driver's known command effects: NVMe Base Specification, Commands
/// Supported and Effects log, LBCC, NCC, NIC and CSE).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct AdminEffects {
    /// It changes the data or format of namespaces (CSE): no I/O may run meanwhile, and
    /// none may be issued with the old format after it.
    pub freeze_io: bool,
    /// It may change the namespace inventory or a namespace's size or format (NIC, NCC,
    /// LBCC): the driver rescans and revalidates its disks afterwards.
    pub rescan: bool,
}

/// The effects of admin opcode `opcode` the driver acts on.
pub fn admin_effects(opcode: u8) -> AdminEffects {
    match opcode {
        admin::FORMAT_NVM | admin::SANITIZE => AdminEffects {
            freeze_io: true,
            rescan: true,
        },
        admin::NS_MGMT | admin::NS_ATTACH => AdminEffects {
            freeze_io: false,
            rescan: true,
        },
        _ => AdminEffects::default(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn format_freezes_and_rescans_namespace_commands_rescan() {
        let format = admin_effects(0x80);
        assert!(format.freeze_io && format.rescan);
        assert!(admin_effects(0x84).freeze_io);
        for op in [0x0d, 0x15] {
            let e = admin_effects(op);
            assert!(e.rescan && !e.freeze_io, "{op:#x}");
        }
        // Identify, Get Log Page, Set Features: nothing to do.
        for op in [0x06, 0x02, 0x09] {
            assert_eq!(admin_effects(op), AdminEffects::default(), "{op:#x}");
        }
    }

    #[test]
    fn rescan_and_reset_numbers_match_the_uapi() {
        // _IO('N', 0x44) and _IO('N', 0x46) from <linux/nvme_ioctl.h>.
        assert_eq!(NVME_IOCTL_RESET, 0x4e44);
        assert_eq!(NVME_IOCTL_RESCAN, 0x4e46);
        assert_eq!(Ioctl::from_cmd(0x4e46), Some(Ioctl::Rescan));
        assert_eq!(Ioctl::Rescan.arg_size(), 0);
    }

    fn identify_arg(addr: u64, len: u32) -> [u8; PASSTHRU_SIZE] {
        let mut b = [0u8; PASSTHRU_SIZE];
        b[0] = 0x06;
        b[24..32].copy_from_slice(&addr.to_le_bytes());
        b[36..40].copy_from_slice(&len.to_le_bytes());
        b[40..44].copy_from_slice(&1u32.to_le_bytes());
        b
    }

    #[test]
    fn ioctl_numbers_match_the_uapi() {
        // Values of the C macros on x86_64.
        assert_eq!(NVME_IOCTL_ADMIN_CMD, 0xc048_4e41);
        assert_eq!(NVME_IOCTL_ADMIN64_CMD, 0xc050_4e47);
        assert_eq!(NVME_IOCTL_RESET, 0x0000_4e44);
        assert_eq!(Ioctl::from_cmd(0xc048_4e41), Some(Ioctl::AdminCmd));
        assert_eq!(Ioctl::from_cmd(0xc048_4e99), None);
        assert_eq!(Ioctl::Admin64Cmd.arg_size(), 80);
        assert_eq!(Ioctl::AdminCmd.result_field(), Some((68, 4)));
        assert_eq!(Ioctl::Admin64Cmd.result_field(), Some((72, 8)));
    }

    #[test]
    fn namespace_ioctl_numbers_match_the_uapi() {
        assert_eq!(NVME_IOCTL_ID, 0x0000_4e40);
        assert_eq!(NVME_IOCTL_IO_CMD, 0xc048_4e43);
        assert_eq!(NVME_IOCTL_IO64_CMD, 0xc050_4e48);
        assert_eq!(Ioctl::from_cmd(0xc050_4e48), Some(Ioctl::Io64Cmd));
        assert_eq!(Ioctl::IoCmd.result_field(), Some((68, 4)));
        assert_eq!(Ioctl::Io64Cmd.arg_size(), 80);
        assert_eq!(Ioctl::Id.result_field(), None);
    }

    #[test]
    fn identify_decodes() {
        let p = Passthru::parse(&identify_arg(0x7fff_0000, 4096), 65536).expect("valid");
        assert_eq!(p.cmd.opcode(), 0x06);
        assert_eq!(p.cmd.dw[10], 1);
        assert_eq!(p.dir, DataDirection::FromDevice);
        assert_eq!((p.addr, p.data_len), (0x7fff_0000, 4096));
    }

    #[test]
    fn hostile_arguments_are_refused() {
        assert_eq!(
            Passthru::parse(&[0u8; 71], 4096),
            Err(PassthruError::Truncated)
        );
        assert_eq!(
            Passthru::parse(&identify_arg(0x1000, 1 << 20), 65536),
            Err(PassthruError::TooLong)
        );
        assert_eq!(
            Passthru::parse(&identify_arg(0, 4096), 65536),
            Err(PassthruError::BadBuffer)
        );
        let mut meta = identify_arg(0x1000, 4096);
        meta[32] = 8;
        assert_eq!(
            Passthru::parse(&meta, 65536),
            Err(PassthruError::Unsupported)
        );
        let mut flags = identify_arg(0x1000, 4096);
        flags[1] = 1;
        assert_eq!(
            Passthru::parse(&flags, 65536),
            Err(PassthruError::Unsupported)
        );
        // Data with an opcode that moves none.
        let mut nodir = identify_arg(0x1000, 4096);
        nodir[0] = 0x08;
        assert_eq!(
            Passthru::parse(&nodir, 65536),
            Err(PassthruError::BadBuffer)
        );
    }

    #[test]
    fn no_data_means_no_direction() {
        let p = Passthru::parse(&identify_arg(0, 0), 65536).expect("valid");
        assert_eq!(p.dir, DataDirection::None);
        assert!(DataDirection::Both.copies_in() && DataDirection::Both.copies_out());
    }
}
