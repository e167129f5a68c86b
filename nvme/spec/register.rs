// SPDX-License-Identifier: GPL-2.0

//! Typed MMIO register definitions, in the shape of nova-core's `register!` macro.
//!
//! A register is a `#[repr(transparent)]` newtype over its raw value (`u32` or `u64`) with a
//! getter per field, an explicitly named `set_*` builder per writable field, its byte `OFFSET`
//! in the register block, and `read`/`write`/`alter` over anything that implements
//! [`RegisterIo`]. The kernel layer implements [`RegisterIo`] for `kapi::io::Io`; host tests
//! implement it for plain memory.
//!
//! # Examples
//!
//! ```
//! # #[macro_use] extern crate rnvme_spec;
//! use rnvme_spec::spec::ctrl_regs::Cc;
//! let cc = Cc::default().set_en(true).set_iosqes(6).set_iocqes(4);
//! assert_eq!(cc.0, 0x0046_0001);
//! assert!(cc.en());
//! ```

/// Access to a block of little-endian MMIO registers by byte offset.
///
/// Implementations check `offset` against the size of the block (at build time for the
/// kernel's `Io<SIZE>`).
pub trait RegisterIo {
    /// Reads the 32-bit register at `offset`.
    fn read_u32(&self, offset: usize) -> u32;
    /// Reads the 64-bit register at `offset`.
    fn read_u64(&self, offset: usize) -> u64;
    /// Writes the 32-bit register at `offset`.
    fn write_u32(&self, value: u32, offset: usize);
    /// Writes the 64-bit register at `offset`.
    fn write_u64(&self, value: u64, offset: usize);
}

/// The raw width of a register: `u32` or `u64`.
pub trait RawRegister: Copy {
    /// Reads a value of this width at `offset`.
    fn read_from<I: RegisterIo + ?Sized>(io: &I, offset: usize) -> Self;
    /// Writes `self` at `offset`.
    fn write_to<I: RegisterIo + ?Sized>(self, io: &I, offset: usize);
    /// Widens the value to 64 bits.
    fn to_u64(self) -> u64;
    /// Narrows a 64-bit value to this width (upper bits are dropped).
    fn from_u64(v: u64) -> Self;
}

impl RawRegister for u32 {
    #[inline(always)]
    fn read_from<I: RegisterIo + ?Sized>(io: &I, offset: usize) -> Self {
        io.read_u32(offset)
    }
    #[inline(always)]
    fn write_to<I: RegisterIo + ?Sized>(self, io: &I, offset: usize) {
        io.write_u32(self, offset)
    }
    #[inline(always)]
    fn to_u64(self) -> u64 {
        u64::from(self)
    }
    #[inline(always)]
    fn from_u64(v: u64) -> Self {
        v as u32
    }
}

impl RawRegister for u64 {
    #[inline(always)]
    fn read_from<I: RegisterIo + ?Sized>(io: &I, offset: usize) -> Self {
        io.read_u64(offset)
    }
    #[inline(always)]
    fn write_to<I: RegisterIo + ?Sized>(self, io: &I, offset: usize) {
        io.write_u64(self, offset)
    }
    #[inline(always)]
    fn to_u64(self) -> u64 {
        self
    }
    #[inline(always)]
    fn from_u64(v: u64) -> Self {
        v
    }
}

/// A type a register field decodes to: an unsigned integer or `bool`.
pub trait FieldValue: Copy {
    /// Converts the field's bits (already shifted down and masked) into the value.
    fn from_bits(bits: u64) -> Self;
    /// Converts the value into field bits (not yet masked or shifted).
    fn into_bits(self) -> u64;
}

macro_rules! impl_field_value {
    ($($t:ty),*) => {$(
        impl FieldValue for $t {
            #[inline(always)]
            fn from_bits(bits: u64) -> Self {
                bits as $t
            }
            #[inline(always)]
            fn into_bits(self) -> u64 {
                self as u64
            }
        }
    )*};
}
impl_field_value!(u8, u16, u32, u64);

impl FieldValue for bool {
    #[inline(always)]
    fn from_bits(bits: u64) -> Self {
        bits != 0
    }
    #[inline(always)]
    fn into_bits(self) -> u64 {
        u64::from(self)
    }
}

/// Returns the mask of a field spanning bits `hi..=lo`, not shifted.
///
/// # Examples
///
/// ```
/// assert_eq!(rnvme_spec::spec::register::field_mask(15, 0), 0xffff);
/// assert_eq!(rnvme_spec::spec::register::field_mask(63, 0), u64::MAX);
/// ```
pub const fn field_mask(hi: u32, lo: u32) -> u64 {
    let width = hi - lo + 1;
    if width >= 64 {
        u64::MAX
    } else {
        (1u64 << width) - 1
    }
}

/// Defines a typed register. See the [module documentation](self). Invoke it in a sibling
/// module of this one: it refers to its support code as `super::register`.
///
/// ```text
/// register!(
///     /// Controller Configuration.
///     Cc @ 0x14: u32 {
///         /// Enable.
///         0:0 en / set_en as bool;
///         /// I/O Submission Queue Entry Size (log2).
///         19:16 iosqes / set_iosqes as u8;
///         /// A read-only field has no setter.
///         31:24 ro_field as u8;
///     }
/// );
/// ```
macro_rules! register {
    (
        $(#[$meta:meta])*
        $name:ident @ $offset:literal : $raw:ty {
            $(
                $(#[$fmeta:meta])*
                $hi:literal : $lo:literal $get:ident $(/ $set:ident)? as $fty:ty;
            )*
        }
    ) => {
        $(#[$meta])*
        #[derive(Clone, Copy, PartialEq, Eq, Default)]
        #[repr(transparent)]
        pub struct $name(pub $raw);

        impl $name {
            /// Byte offset of the register in its register block.
            pub const OFFSET: usize = $offset;

            $(
                $(#[$fmeta])*
                #[inline(always)]
                pub fn $get(self) -> $fty {
                    const _: () = assert!($hi >= $lo && $hi < <$raw>::BITS);
                    let mask = super::register::field_mask($hi, $lo);
                    let raw = <$raw as super::register::RawRegister>::to_u64(self.0);
                    <$fty as super::register::FieldValue>::from_bits((raw >> $lo) & mask)
                }

                $(
                    #[doc = concat!("Returns a copy with the `", stringify!($get),
                                    "` field (bits ", stringify!($hi), ":", stringify!($lo),
                                    ") set to `value`; excess bits of `value` are dropped.")]
                    #[inline(always)]
                    #[must_use]
                    pub fn $set(self, value: $fty) -> Self {
                        let mask = super::register::field_mask($hi, $lo);
                        let bits = <$fty as super::register::FieldValue>::into_bits(value)
                            & mask;
                        let raw = <$raw as super::register::RawRegister>::to_u64(self.0);
                        let raw = (raw & !(mask << $lo)) | (bits << $lo);
                        Self(<$raw as super::register::RawRegister>::from_u64(raw))
                    }
                )?
            )*

            /// Reads the register from `io`.
            #[inline(always)]
            pub fn read<I: super::register::RegisterIo + ?Sized>(io: &I) -> Self {
                Self(<$raw as super::register::RawRegister>::read_from(io, $offset))
            }

            /// Writes the register to `io`.
            #[inline(always)]
            pub fn write<I: super::register::RegisterIo + ?Sized>(self, io: &I) {
                <$raw as super::register::RawRegister>::write_to(self.0, io, $offset)
            }

            /// Reads the register, applies `f` and writes the result back.
            #[inline(always)]
            pub fn alter<I, F>(io: &I, f: F)
            where
                I: super::register::RegisterIo + ?Sized,
                F: FnOnce(Self) -> Self,
            {
                f(Self::read(io)).write(io)
            }
        }

        impl core::fmt::Debug for $name {
            fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
                f.debug_struct(stringify!($name))
                    .field("raw", &format_args!("{:#x}", self.0))
                    $( .field(stringify!($get), &self.$get()) )*
                    .finish()
            }
        }
    };
}

// The macro names its support code `super::register`: it is invoked in a sibling module of
// this one (`ctrl_regs`), so that the same text works at both paths the files are compiled
// at (`rnvme_spec::spec` on the host, `crate::nvme::spec` in the module). The tests below
// invoke it one level down, where this alias gives the same name.
#[cfg(test)]
use super::register;

#[cfg(test)]
#[allow(dead_code)]
mod tests {
    use super::*;
    use core::cell::RefCell;

    /// 64 bytes of little-endian "MMIO" in host memory.
    struct FakeIo(RefCell<[u8; 64]>);

    impl RegisterIo for FakeIo {
        fn read_u32(&self, offset: usize) -> u32 {
            let b = self.0.borrow();
            u32::from_le_bytes([b[offset], b[offset + 1], b[offset + 2], b[offset + 3]])
        }
        fn read_u64(&self, offset: usize) -> u64 {
            u64::from(self.read_u32(offset)) | (u64::from(self.read_u32(offset + 4)) << 32)
        }
        fn write_u32(&self, value: u32, offset: usize) {
            self.0.borrow_mut()[offset..offset + 4].copy_from_slice(&value.to_le_bytes());
        }
        fn write_u64(&self, value: u64, offset: usize) {
            self.0.borrow_mut()[offset..offset + 8].copy_from_slice(&value.to_le_bytes());
        }
    }

    register!(
        /// A test register.
        Demo @ 0x10: u32 {
            /// Low bit.
            0:0 flag / set_flag as bool;
            /// A nibble.
            7:4 nib / set_nib as u8;
            /// The top byte, read-only.
            31:24 top as u8;
        }
    );

    register!(
        /// A 64-bit test register.
        Wide @ 0x20: u64 {
            /// Spans the 32-bit boundary.
            39:28 mid / set_mid as u16;
            /// The whole register.
            63:0 all as u64;
        }
    );

    #[test]
    fn field_masks() {
        assert_eq!(field_mask(0, 0), 1);
        assert_eq!(field_mask(7, 4), 0xf);
        assert_eq!(field_mask(31, 0), 0xffff_ffff);
        assert_eq!(field_mask(63, 0), u64::MAX);
    }

    #[test]
    fn setters_touch_only_their_field() {
        let d = Demo(0xff00_0000).set_nib(0xa).set_flag(true);
        assert_eq!(d.0, 0xff00_00a1);
        assert_eq!(d.top(), 0xff);
        // Excess bits are dropped, neighbours untouched.
        assert_eq!(d.set_nib(0x1f).0, 0xff00_00f1);
        assert!(!d.set_flag(false).flag());
    }

    #[test]
    fn wide_field_crosses_dword_boundary() {
        let w = Wide(0).set_mid(0xabc);
        assert_eq!(w.0, 0xabc << 28);
        assert_eq!(w.mid(), 0xabc);
        assert_eq!(w.all(), 0xabc << 28);
    }

    #[test]
    fn read_write_alter_use_the_offset() {
        let io = FakeIo(RefCell::new([0; 64]));
        Demo(0x1234_5678).write(&io);
        assert_eq!(io.read_u32(0x10), 0x1234_5678);
        Demo::alter(&io, |d| d.set_nib(0));
        assert_eq!(Demo::read(&io).0, 0x1234_5608);
        Wide(u64::MAX).write(&io);
        assert_eq!(io.read_u32(0x20), u32::MAX);
        assert_eq!(io.read_u32(0x24), u32::MAX);
        assert_eq!(io.read_u32(0x1c), 0);
    }

    #[test]
    fn debug_lists_fields() {
        let s = std::format!("{:?}", Demo(0x0100_0031));
        assert_eq!(s, "Demo { raw: 0x1000031, flag: true, nib: 3, top: 1 }");
    }
}
