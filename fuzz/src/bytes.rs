//! Fuzzer bytes read as small numbers, and the inverse writer for seeds. Reading never
//! fails: past the end every read gives 0, so any input is a valid program.

/// Reads numbers from fuzzer bytes, front to back.
pub struct ByteReader<'a> {
    rest: &'a [u8],
}

/// A wide integer's tag below this is a small value (`tag - SMALL_BIAS`); from it on, four
/// little-endian bytes follow.
const WIDE_TAG: u8 = 0xF0;
/// Small values run from `-SMALL_BIAS` to `WIDE_TAG - 1 - SMALL_BIAS`: the ranges where
/// sequence ids and positions are interesting, one byte each.
const SMALL_BIAS: i32 = 16;
/// Before an index: four little-endian bytes of any `i32` follow.
const ESCAPE: u8 = 0xFF;

impl<'a> ByteReader<'a> {
    pub fn new(bytes: &'a [u8]) -> ByteReader<'a> {
        ByteReader { rest: bytes }
    }

    pub fn is_empty(&self) -> bool {
        self.rest.is_empty()
    }

    pub fn u8(&mut self) -> u8 {
        match self.rest.split_first() {
            Some((&b, rest)) => {
                self.rest = rest;
                b
            }
            None => 0,
        }
    }

    /// A value in `0..n` (`n > 0`).
    pub fn below(&mut self, n: usize) -> usize {
        usize::from(self.u8()) % n
    }

    /// Mostly small (one byte), sometimes any `i32` (five bytes): see [`WIDE_TAG`].
    pub fn i32_wide(&mut self) -> i32 {
        let tag = self.u8();
        if tag < WIDE_TAG {
            return i32::from(tag) - SMALL_BIAS;
        }
        self.raw_i32()
    }

    /// An index into `0..n`, or (after the escape byte 0xFF) any `i32`: mostly in range,
    /// sometimes not, so both the accepted and the refused paths run.
    pub fn index(&mut self, n: usize) -> i32 {
        match self.u8() {
            ESCAPE => self.raw_i32(),
            b => (usize::from(b) % n) as i32,
        }
    }

    fn raw_i32(&mut self) -> i32 {
        let mut raw = [0u8; 4];
        for b in &mut raw {
            *b = self.u8();
        }
        i32::from_le_bytes(raw)
    }

    /// The bytes up to (not including) the first `separator`, or all that is left.
    pub fn until(&mut self, separator: u8) -> &'a [u8] {
        let end = self
            .rest
            .iter()
            .position(|&b| b == separator)
            .unwrap_or(self.rest.len());
        let (field, rest) = self.rest.split_at(end);
        self.rest = rest.get(1..).unwrap_or_default();
        field
    }

    /// Everything left.
    pub fn rest(&mut self) -> &'a [u8] {
        std::mem::take(&mut self.rest)
    }
}

/// Writes what [`ByteReader`] reads back: the seeds' encoder.
#[derive(Default)]
pub struct ByteWriter {
    pub bytes: Vec<u8>,
}

impl ByteWriter {
    pub fn u8(&mut self, v: u8) -> &mut Self {
        self.bytes.push(v);
        self
    }

    pub fn i32_wide(&mut self, v: i32) -> &mut Self {
        let small = v
            .checked_add(SMALL_BIAS)
            .and_then(|b| u8::try_from(b).ok())
            .filter(|&b| b < WIDE_TAG);
        match small {
            Some(b) => self.u8(b),
            None => {
                self.bytes.push(WIDE_TAG);
                self.bytes.extend_from_slice(&v.to_le_bytes());
                self
            }
        }
    }

    /// `v` as [`ByteReader::index`] reads it back for any `n > v`.
    pub fn index(&mut self, v: i32) -> &mut Self {
        match u8::try_from(v) {
            Ok(b) if b != ESCAPE => self.u8(b),
            _ => {
                self.bytes.push(ESCAPE);
                self.bytes.extend_from_slice(&v.to_le_bytes());
                self
            }
        }
    }

    pub fn field(&mut self, text: &[u8], separator: u8) -> &mut Self {
        self.bytes.extend_from_slice(text);
        self.bytes.push(separator);
        self
    }

    pub fn raw(&mut self, bytes: &[u8]) -> &mut Self {
        self.bytes.extend_from_slice(bytes);
        self
    }
}
