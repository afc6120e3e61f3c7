//! Token ids to bytes, as llama.cpp's `llama_token_to_piece` and `llama_detokenize`.

use super::Tokenizer;
use super::decode::clean_spaces;
use super::vocab::TokenId;
use crate::error::{Error, Result};

impl Tokenizer {
    /// The bytes of one token. Control and unknown tokens give their text only when
    /// `render_special`, and nothing otherwise. A piece may be part of a UTF-8 character.
    pub fn token_to_piece(&self, id: TokenId, render_special: bool) -> Result<&[u8]> {
        let piece = self.pieces.get(id).ok_or_else(|| self.out_of_range(id))?;
        let hidden = self
            .vocab
            .token_type(id)
            .is_some_and(|t| t.is_hidden_unless_special());
        Ok(if hidden && !render_special {
            &[]
        } else {
            piece
        })
    }

    /// The bytes of a token sequence. `remove_special` drops the BOS/EOS that tokenizing
    /// adds; `render_special` writes control tokens' text. When the vocabulary adds a
    /// space prefix, the first token's leading space is dropped (unless a BOS came
    /// first, as in llama.cpp). The result may end inside a UTF-8 character.
    pub fn detokenize(
        &self,
        ids: &[TokenId],
        remove_special: bool,
        render_special: bool,
    ) -> Result<Vec<u8>> {
        let specials = self.vocab.specials;
        let mut ids = ids;
        let mut strip_space = self.add_space_prefix;
        if remove_special && self.add_bos {
            if let (Some(&first), Some(bos)) = (ids.first(), specials.bos) {
                if first == bos {
                    strip_space = false;
                    ids = &ids[1..];
                }
            }
        }
        if remove_special && self.add_eos {
            if let (Some(&last), Some(eos)) = (ids.last(), specials.eos) {
                if last == eos {
                    ids = &ids[..ids.len() - 1];
                }
            }
        }
        let mut out = Vec::new();
        for &id in ids {
            let mut piece = self.token_to_piece(id, render_special)?;
            if strip_space {
                piece = piece.strip_prefix(b" ").unwrap_or(piece);
                strip_space = false;
            }
            out.extend_from_slice(piece);
        }
        if self.clean_spaces {
            clean_spaces(&mut out);
        }
        Ok(out)
    }

    /// Like [`detokenize`](Self::detokenize), as text: bytes that do not form UTF-8
    /// become U+FFFD.
    pub fn detokenize_lossy(
        &self,
        ids: &[TokenId],
        remove_special: bool,
        render_special: bool,
    ) -> Result<String> {
        let bytes = self.detokenize(ids, remove_special, render_special)?;
        Ok(String::from_utf8(bytes)
            .unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned()))
    }

    fn out_of_range(&self, id: TokenId) -> Error {
        Error::InvalidArgument(format!(
            "token id {id} is outside the vocabulary of {} tokens",
            self.vocab.len()
        ))
    }
}
