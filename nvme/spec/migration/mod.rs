// SPDX-License-Identifier: GPL-2.0

//! Pure logic of VFIO live migration of a VF, compiled by the module and by the host tests
//! (crate `rnvme-spec`):
//!
//! - [`fsm`]: the VFIO migration states and what each arc does to the NVMe secondary
//!   controller;
//! - [`stream`]: the migration stream's sections, their framing and checksum
//!   ([`crc32c`]);
//! - [`compat`]: the compatibility section, and the check a destination makes;
//! - [`save`]: how reads of the saving data fd walk the stream;
//! - [`resume`]: everything the destination checks of an incoming stream.
//!
//! The stream format is documented in `Documentation/migration-stream.rst`.

pub mod compat;
pub mod crc32c;
pub mod fsm;
pub mod resume;
pub mod save;
pub mod stream;
