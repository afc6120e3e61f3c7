//! Streaming detokenization: token pieces go in as they are generated, and only complete
//! UTF-8 characters come out, so a character split over several tokens is written once,
//! whole, when its last byte arrives.

use super::Tokenizer;
use super::vocab::TokenId;
use crate::error::Result;

/// Turns a stream of tokens into text. Bytes that can never become a valid character are
/// written as U+FFFD, so one bad token cannot stall the stream.
pub struct IncrementalDecoder<'t> {
    tokenizer: &'t Tokenizer,
    render_special: bool,
    pending: Vec<u8>,
}

impl<'t> IncrementalDecoder<'t> {
    /// `render_special`: write control tokens' text (`<|im_end|>`) instead of nothing.
    pub fn new(tokenizer: &'t Tokenizer, render_special: bool) -> IncrementalDecoder<'t> {
        IncrementalDecoder {
            tokenizer,
            render_special,
            pending: Vec::new(),
        }
    }

    /// Adds one token; returns the text that is now complete (often empty while a
    /// multi-byte character is still arriving).
    pub fn push(&mut self, id: TokenId) -> Result<String> {
        let piece = self.tokenizer.token_to_piece(id, self.render_special)?;
        self.pending.extend_from_slice(piece);
        Ok(self.take_complete())
    }

    /// Ends the stream: what is left of an unfinished character, as U+FFFD.
    pub fn finish(&mut self) -> String {
        let rest = String::from_utf8_lossy(&self.pending).into_owned();
        self.pending.clear();
        rest
    }

    /// Bytes held back because they may start a character.
    pub fn pending(&self) -> &[u8] {
        &self.pending
    }

    fn take_complete(&mut self) -> String {
        let mut out = String::new();
        loop {
            match std::str::from_utf8(&self.pending) {
                Ok(s) => {
                    out.push_str(s);
                    self.pending.clear();
                    return out;
                }
                Err(e) => {
                    let valid = e.valid_up_to();
                    // `valid` bytes were just checked to be UTF-8.
                    out.push_str(&String::from_utf8_lossy(&self.pending[..valid]));
                    match e.error_len() {
                        // Invalid whatever follows: replace it and go on.
                        Some(bad) => {
                            out.push(char::REPLACEMENT_CHARACTER);
                            self.pending.drain(..valid + bad);
                        }
                        // An unfinished character at the end: keep it for later.
                        None => {
                            self.pending.drain(..valid);
                            return out;
                        }
                    }
                }
            }
        }
    }
}
