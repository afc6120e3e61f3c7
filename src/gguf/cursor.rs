//! A bounds-checked little-endian reader over the file's bytes. Every read either returns
//! bytes that are present or an error naming the field and the offset; nothing here can
//! panic or allocate.

use crate::error::{GgufError, GgufErrorKind};

pub(crate) struct Cursor<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Cursor<'a> {
    pub fn new(bytes: &'a [u8]) -> Self {
        Cursor { bytes, pos: 0 }
    }

    pub fn pos(&self) -> u64 {
        self.pos as u64
    }

    pub fn remaining(&self) -> u64 {
        (self.bytes.len() - self.pos) as u64
    }

    /// An error located at the cursor's current offset.
    pub fn error(&self, kind: GgufErrorKind) -> GgufError {
        GgufError {
            offset: self.pos(),
            kind,
        }
    }

    /// An error located at `offset`.
    pub fn error_at(offset: u64, kind: GgufErrorKind) -> GgufError {
        GgufError { offset, kind }
    }

    /// Takes `n` bytes, or fails without moving when fewer remain.
    pub fn take(&mut self, n: u64, field: &str) -> Result<&'a [u8], GgufError> {
        let available = self.remaining();
        if n > available {
            return Err(self.error(GgufErrorKind::Truncated {
                field: field.to_owned(),
                needed: n,
                available,
            }));
        }
        // `n <= remaining`, so it fits in usize and the slice is in bounds.
        let end = self.pos + n as usize;
        let taken = &self.bytes[self.pos..end];
        self.pos = end;
        Ok(taken)
    }

    fn array<const N: usize>(&mut self, field: &str) -> Result<[u8; N], GgufError> {
        let bytes = self.take(N as u64, field)?;
        let mut out = [0u8; N];
        out.copy_from_slice(bytes);
        Ok(out)
    }

    pub fn u32(&mut self, field: &str) -> Result<u32, GgufError> {
        self.array(field).map(u32::from_le_bytes)
    }

    pub fn u64(&mut self, field: &str) -> Result<u64, GgufError> {
        self.array(field).map(u64::from_le_bytes)
    }

    /// A GGUF string: u64 byte length, then UTF-8 bytes (no terminator). Lengths above
    /// `max_len` fail before anything is read.
    pub fn string(&mut self, field: &str, max_len: u64) -> Result<&'a str, GgufError> {
        let start = self.pos;
        let len = self.u64(field)?;
        if len > max_len {
            self.pos = start;
            return Err(self.error(GgufErrorKind::LimitExceeded {
                field: format!("{field}: string length"),
                value: len,
                limit: max_len,
            }));
        }
        let bytes = self.take(len, field).inspect_err(|_| self.pos = start)?;
        std::str::from_utf8(bytes).map_err(|_| {
            Self::error_at(
                start as u64,
                GgufErrorKind::InvalidUtf8 {
                    field: field.to_owned(),
                },
            )
        })
    }

    /// Moves forward to the next multiple of `alignment` (a power of two), or to the end
    /// when that lies past it.
    pub fn align_to(&mut self, alignment: u64) -> u64 {
        let aligned = self.pos().div_ceil(alignment).saturating_mul(alignment);
        self.pos = aligned.min(self.bytes.len() as u64) as usize;
        aligned
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_stop_at_the_end_without_moving() {
        let mut c = Cursor::new(&[1, 0, 0, 0, 9]);
        assert_eq!(c.u32("a").unwrap(), 1);
        let err = c.u32("b").unwrap_err();
        assert_eq!(err.offset, 4);
        assert!(matches!(
            err.kind,
            GgufErrorKind::Truncated {
                needed: 4,
                available: 1,
                ..
            }
        ));
        assert_eq!(c.remaining(), 1);
    }

    #[test]
    fn string_length_is_checked_before_reading() {
        let mut bytes = u64::MAX.to_le_bytes().to_vec();
        bytes.extend_from_slice(b"abc");
        let mut c = Cursor::new(&bytes);
        let err = c.string("s", u64::MAX).unwrap_err();
        assert!(matches!(err.kind, GgufErrorKind::Truncated { .. }));
        assert_eq!(c.pos(), 0);
        let err = c.string("s", 16).unwrap_err();
        assert!(matches!(err.kind, GgufErrorKind::LimitExceeded { .. }));
    }
}
