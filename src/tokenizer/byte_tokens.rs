//! The token of each byte value, where the vocabulary has one: byte-level BPE starts
//! merging from these, SentencePiece falls back to them for a character that is no token.
//! A byte without one cannot be written, and both algorithms refuse the text the same way:
//! `Error::NoTokenForByte`, naming the byte, its character and its offset in the caller's
//! text (llama.cpp drops it in BPE and throws in SentencePiece).

use super::vocab::TokenId;
use crate::error::Error;

#[derive(Debug, Clone)]
pub struct ByteTokens([Option<TokenId>; 256]);

/// A byte of one character that has no token: its value and its index in the character.
#[derive(Debug, Clone, Copy)]
pub struct MissingByte {
    byte: u8,
    index: usize,
}

impl ByteTokens {
    pub fn new(token_of: impl Fn(u8) -> Option<TokenId>) -> ByteTokens {
        ByteTokens(std::array::from_fn(|b| token_of(b as u8)))
    }

    /// Passes the token of each byte of `character` to `push`, in order, up to the first
    /// byte that has none.
    pub fn each_of(
        &self,
        character: char,
        mut push: impl FnMut(TokenId),
    ) -> Result<(), MissingByte> {
        let mut buf = [0u8; 4];
        for (index, &byte) in character
            .encode_utf8(&mut buf)
            .as_bytes()
            .iter()
            .enumerate()
        {
            match self.0[usize::from(byte)] {
                Some(id) => push(id),
                None => return Err(MissingByte { byte, index }),
            }
        }
        Ok(())
    }
}

impl MissingByte {
    pub fn byte(self) -> u8 {
        self.byte
    }

    /// The error for this byte of `character`, which starts at `offset` in the caller's
    /// text.
    pub fn in_text(self, character: char, offset: usize) -> Error {
        Error::NoTokenForByte {
            byte: self.byte,
            offset: offset + self.index,
            character,
        }
    }
}
