// SPDX-License-Identifier: GPL-2.0

//! Little-endian fields in byte buffers: a bounds-checked [`Reader`] and [`Writer`].
//!
//! Structures that cross a trust boundary (a migration stream from userspace, controller
//! state from the device) are decoded with these instead of indexing, so that a short
//! buffer is an error value, never a panic.

/// The data ended before a field: `at` is the offset of the field that did not fit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Truncated {
    /// Offset (from the start of the reader's buffer) of the field that did not fit.
    pub at: usize,
}

/// Reads little-endian fields from the front of a byte slice.
///
/// # Invariants
///
/// `pos <= buf.len()`.
#[derive(Clone, Debug)]
pub struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    /// A reader at the start of `buf`.
    pub fn new(buf: &'a [u8]) -> Self {
        // INVARIANT: 0 <= len.
        Self { buf, pos: 0 }
    }

    /// Offset of the next field.
    pub fn pos(&self) -> usize {
        self.pos
    }

    /// Bytes left.
    pub fn remaining(&self) -> usize {
        self.buf.len() - self.pos
    }

    /// The next `n` bytes.
    pub fn bytes(&mut self, n: usize) -> Result<&'a [u8], Truncated> {
        let end = self
            .pos
            .checked_add(n)
            .filter(|end| *end <= self.buf.len())
            .ok_or(Truncated { at: self.pos })?;
        let out = &self.buf[self.pos..end];
        // INVARIANT: `end <= buf.len()` was checked.
        self.pos = end;
        Ok(out)
    }

    /// The next `N` bytes as an array.
    pub fn array<const N: usize>(&mut self) -> Result<[u8; N], Truncated> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.bytes(N)?);
        Ok(out)
    }

    /// Skips `n` bytes.
    pub fn skip(&mut self, n: usize) -> Result<(), Truncated> {
        self.bytes(n).map(|_| ())
    }

    /// A byte.
    pub fn u8(&mut self) -> Result<u8, Truncated> {
        Ok(self.array::<1>()?[0])
    }

    /// A little-endian `u16`.
    pub fn u16(&mut self) -> Result<u16, Truncated> {
        Ok(u16::from_le_bytes(self.array()?))
    }

    /// A little-endian `u32`.
    pub fn u32(&mut self) -> Result<u32, Truncated> {
        Ok(u32::from_le_bytes(self.array()?))
    }

    /// A little-endian `u64`.
    pub fn u64(&mut self) -> Result<u64, Truncated> {
        Ok(u64::from_le_bytes(self.array()?))
    }
}

/// The buffer had no room for a field.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NoRoom;

/// Writes little-endian fields to the front of a byte slice.
///
/// # Invariants
///
/// `pos <= buf.len()`.
#[derive(Debug)]
pub struct Writer<'a> {
    buf: &'a mut [u8],
    pos: usize,
}

impl<'a> Writer<'a> {
    /// A writer at the start of `buf`.
    pub fn new(buf: &'a mut [u8]) -> Self {
        // INVARIANT: 0 <= len.
        Self { buf, pos: 0 }
    }

    /// Bytes written so far.
    pub fn pos(&self) -> usize {
        self.pos
    }

    /// Writes `data`.
    pub fn bytes(&mut self, data: &[u8]) -> Result<(), NoRoom> {
        let end = self
            .pos
            .checked_add(data.len())
            .filter(|end| *end <= self.buf.len())
            .ok_or(NoRoom)?;
        self.buf[self.pos..end].copy_from_slice(data);
        // INVARIANT: `end <= buf.len()` was checked.
        self.pos = end;
        Ok(())
    }

    /// Writes `n` zero bytes.
    pub fn zeros(&mut self, n: usize) -> Result<(), NoRoom> {
        let end = self
            .pos
            .checked_add(n)
            .filter(|end| *end <= self.buf.len())
            .ok_or(NoRoom)?;
        self.buf[self.pos..end].fill(0);
        // INVARIANT: `end <= buf.len()` was checked.
        self.pos = end;
        Ok(())
    }

    /// Writes a byte.
    pub fn u8(&mut self, v: u8) -> Result<(), NoRoom> {
        self.bytes(&[v])
    }

    /// Writes a little-endian `u16`.
    pub fn u16(&mut self, v: u16) -> Result<(), NoRoom> {
        self.bytes(&v.to_le_bytes())
    }

    /// Writes a little-endian `u32`.
    pub fn u32(&mut self, v: u32) -> Result<(), NoRoom> {
        self.bytes(&v.to_le_bytes())
    }

    /// Writes a little-endian `u64`.
    pub fn u64(&mut self, v: u64) -> Result<(), NoRoom> {
        self.bytes(&v.to_le_bytes())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_fields_in_order_and_stops_at_the_end() {
        let b = [1u8, 0x34, 0x12, 0x78, 0x56, 0x34, 0x12, 9];
        let mut r = Reader::new(&b);
        assert_eq!(r.u8(), Ok(1));
        assert_eq!(r.u16(), Ok(0x1234));
        assert_eq!(r.u32(), Ok(0x1234_5678));
        assert_eq!(r.remaining(), 1);
        assert_eq!(r.u16(), Err(Truncated { at: 7 }));
        // A failed read consumes nothing.
        assert_eq!(r.u8(), Ok(9));
        assert_eq!(r.u8(), Err(Truncated { at: 8 }));
    }

    #[test]
    fn huge_lengths_do_not_overflow() {
        let b = [0u8; 4];
        let mut r = Reader::new(&b);
        r.skip(2).unwrap();
        assert_eq!(r.bytes(usize::MAX), Err(Truncated { at: 2 }));
    }

    #[test]
    fn writes_fields_and_refuses_overflow() {
        let mut b = [0xffu8; 8];
        let mut w = Writer::new(&mut b);
        w.u16(0xabcd).unwrap();
        w.zeros(2).unwrap();
        w.u32(7).unwrap();
        assert_eq!(w.u8(1), Err(NoRoom));
        assert_eq!(w.pos(), 8);
        assert_eq!(b, [0xcd, 0xab, 0, 0, 7, 0, 0, 0]);
    }
}
