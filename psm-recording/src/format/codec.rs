//! Little primitives: LEB128 varints, length-prefixed bytes and strings, and a bounded
//! decoder whose errors name the field and the offset.

use crate::error::{Place, RecordingError};

pub(crate) fn put_uvarint(buf: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        buf.push((v as u8) | 0x80);
        v >>= 7;
    }
    buf.push(v as u8);
}

pub(crate) fn put_bytes(buf: &mut Vec<u8>, b: &[u8]) {
    put_uvarint(buf, b.len() as u64);
    buf.extend_from_slice(b);
}

pub(crate) fn put_str(buf: &mut Vec<u8>, s: &str) {
    put_bytes(buf, s.as_bytes());
}

/// An optional u64 as `0` (none) or `v + 1`.
pub(crate) fn put_opt_u64(buf: &mut Vec<u8>, v: Option<u64>) {
    match v {
        None => buf.push(0),
        Some(v) => {
            buf.push(1);
            put_uvarint(buf, v);
        }
    }
}

/// A cursor over untrusted bytes. Every read is bounded by what is left.
pub(crate) struct Dec<'a> {
    buf: &'a [u8],
    pos: usize,
    place: Place,
    /// Offset of `buf[0]` in whatever the caller reports offsets in.
    base: u64,
}

impl<'a> Dec<'a> {
    pub(crate) fn new(buf: &'a [u8], place: Place, base: u64) -> Self {
        Self {
            buf,
            pos: 0,
            place,
            base,
        }
    }

    pub(crate) fn err(&self, what: &'static str, reason: impl Into<String>) -> RecordingError {
        RecordingError::malformed(
            self.place.clone(),
            what,
            self.base + self.pos as u64,
            reason,
        )
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.pos >= self.buf.len()
    }

    pub(crate) fn remaining(&self) -> usize {
        self.buf.len().saturating_sub(self.pos)
    }

    pub(crate) fn position(&self) -> usize {
        self.pos
    }

    pub(crate) fn u8(&mut self, what: &'static str) -> Result<u8, RecordingError> {
        let b = *self
            .buf
            .get(self.pos)
            .ok_or_else(|| self.err(what, "ends early"))?;
        self.pos += 1;
        Ok(b)
    }

    pub(crate) fn bool(&mut self, what: &'static str) -> Result<bool, RecordingError> {
        match self.u8(what)? {
            0 => Ok(false),
            1 => Ok(true),
            v => Err(self.err(what, format!("flag must be 0 or 1, found {v}"))),
        }
    }

    pub(crate) fn uvarint(&mut self, what: &'static str) -> Result<u64, RecordingError> {
        let mut v: u64 = 0;
        for i in 0..10 {
            let b = self.u8(what)?;
            let low = u64::from(b & 0x7f);
            if i == 9 && b > 1 {
                return Err(self.err(what, "varint overflows 64 bits"));
            }
            v |= low << (7 * i);
            if b & 0x80 == 0 {
                return Ok(v);
            }
        }
        Err(self.err(what, "varint longer than 10 bytes"))
    }

    pub(crate) fn u32v(&mut self, what: &'static str) -> Result<u32, RecordingError> {
        let v = self.uvarint(what)?;
        u32::try_from(v).map_err(|_| self.err(what, format!("{v} does not fit 32 bits")))
    }

    pub(crate) fn u16v(&mut self, what: &'static str) -> Result<u16, RecordingError> {
        let v = self.uvarint(what)?;
        u16::try_from(v).map_err(|_| self.err(what, format!("{v} does not fit 16 bits")))
    }

    pub(crate) fn opt_u64(&mut self, what: &'static str) -> Result<Option<u64>, RecordingError> {
        if self.bool(what)? {
            Ok(Some(self.uvarint(what)?))
        } else {
            Ok(None)
        }
    }

    pub(crate) fn take(
        &mut self,
        n: usize,
        what: &'static str,
    ) -> Result<&'a [u8], RecordingError> {
        if n > self.remaining() {
            return Err(self.err(
                what,
                format!("needs {n} bytes, only {} left", self.remaining()),
            ));
        }
        let s = &self.buf[self.pos..self.pos + n];
        self.pos += n;
        Ok(s)
    }

    pub(crate) fn array<const N: usize>(
        &mut self,
        what: &'static str,
    ) -> Result<[u8; N], RecordingError> {
        let s = self.take(N, what)?;
        let mut a = [0u8; N];
        a.copy_from_slice(s);
        Ok(a)
    }

    /// Length-prefixed bytes; the length is checked against what is left before slicing.
    pub(crate) fn bytes(&mut self, what: &'static str) -> Result<&'a [u8], RecordingError> {
        let len = self.uvarint(what)?;
        let len = usize::try_from(len)
            .ok()
            .filter(|l| *l <= self.remaining())
            .ok_or_else(|| {
                self.err(
                    what,
                    format!(
                        "length {len} is past the end ({} bytes left)",
                        self.remaining()
                    ),
                )
            })?;
        self.take(len, what)
    }

    pub(crate) fn str(&mut self, what: &'static str) -> Result<&'a str, RecordingError> {
        let start = self.pos;
        let b = self.bytes(what)?;
        std::str::from_utf8(b).map_err(|e| {
            RecordingError::malformed(
                self.place.clone(),
                what,
                self.base + start as u64,
                format!("not UTF-8: {e}"),
            )
        })
    }

    pub(crate) fn string(&mut self, what: &'static str) -> Result<String, RecordingError> {
        self.str(what).map(str::to_owned)
    }

    pub(crate) fn rest(&mut self) -> &'a [u8] {
        let s = &self.buf[self.pos.min(self.buf.len())..];
        self.pos = self.buf.len();
        s
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn varints_round_trip_and_reject_overflow() {
        for v in [0u64, 1, 127, 128, 300, u32::MAX as u64, u64::MAX] {
            let mut b = Vec::new();
            put_uvarint(&mut b, v);
            let mut d = Dec::new(&b, Place::Header, 0);
            assert_eq!(d.uvarint("v").unwrap(), v);
            assert!(d.is_empty());
        }
        let over = [0xffu8; 10];
        assert!(Dec::new(&over, Place::Header, 0).uvarint("v").is_err());
        let mut b = Vec::new();
        put_uvarint(&mut b, 1 << 40);
        let err = Dec::new(&b, Place::Chunk(3), 100)
            .bytes("data")
            .unwrap_err();
        assert!(err.to_string().contains("chunk 3"), "{err}");
        assert!(err.to_string().contains("past the end"), "{err}");
    }
}
