//! The tokenize target's input.
//!
//! Format: a byte choosing the vocabulary, a flags byte ([`Flags`]), the text up to the
//! first 0xFF byte (which UTF-8 never holds), then token ids to detokenize as
//! little-endian `u16` pairs (at most [`MAX_IDS`]; ids past the vocabulary are refused).

use crate::bytes::{ByteReader, ByteWriter};

const TEXT_END: u8 = 0xFF;
pub const MAX_IDS: usize = 256;

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Flags {
    /// `add_special`: BOS/EOS as the vocabulary says.
    pub add_special: bool,
    /// `parse_special`: control tokens written in the text become their ids.
    pub parse_special: bool,
    /// Detokenize with `remove_special`.
    pub remove_special: bool,
    /// Detokenize with `render_special`.
    pub render_special: bool,
    /// Make the text UTF-8 first (lossily) instead of passing its bytes on as they are.
    pub lossy: bool,
}

impl Flags {
    fn from_byte(byte: u8) -> Flags {
        let bit = |n: u8| byte & (1 << n) != 0;
        Flags {
            add_special: bit(0),
            parse_special: bit(1),
            remove_special: bit(2),
            render_special: bit(3),
            lossy: bit(4),
        }
    }

    fn to_byte(self) -> u8 {
        [
            self.add_special,
            self.parse_special,
            self.remove_special,
            self.render_special,
            self.lossy,
        ]
        .iter()
        .enumerate()
        .fold(0, |acc, (n, &on)| acc | (u8::from(on) << n))
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TokenizeInput<'a> {
    pub vocabulary: usize,
    pub flags: Flags,
    pub text: &'a [u8],
    pub ids: Vec<u32>,
}

/// Reads an input for `n_vocabularies` vocabularies.
pub fn parse(bytes: &[u8], n_vocabularies: usize) -> TokenizeInput<'_> {
    let mut r = ByteReader::new(bytes);
    let vocabulary = r.below(n_vocabularies);
    let flags = Flags::from_byte(r.u8());
    let text = r.until(TEXT_END);
    let ids = r
        .rest()
        .chunks_exact(2)
        .take(MAX_IDS)
        .map(|pair| u32::from(u16::from_le_bytes([pair[0], pair[1]])))
        .collect();
    TokenizeInput {
        vocabulary,
        flags,
        text,
        ids,
    }
}

/// The bytes [`parse`] reads back as `input` (whose text holds no 0xFF and whose ids fit
/// a `u16`).
pub fn encode(input: &TokenizeInput<'_>) -> Vec<u8> {
    let mut w = ByteWriter::default();
    w.u8(input.vocabulary as u8)
        .u8(input.flags.to_byte())
        .field(input.text, TEXT_END);
    for &id in &input.ids {
        w.raw(&(id as u16).to_le_bytes());
    }
    w.bytes
}
