//! From token ids back to bytes: each token's piece, computed once when the tokenizer is
//! built, and the joining rules of llama.cpp's `llama_detokenize`.

use super::byte_level::char_to_byte;
use super::spm::SPACE_MARK;
use super::token_type::TokenType;
use super::vocab::{TokenId, Vocab};
use crate::error::{Error, Result};

/// How a vocabulary writes text into its tokens.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TextEncoding {
    /// GPT-2 byte-level characters.
    ByteLevel,
    /// Raw UTF-8 with `▁` for spaces (SentencePiece).
    SpaceMarked,
}

/// The bytes every token stands for. Control and unknown tokens hold their text, written
/// only when special tokens are rendered.
#[derive(Debug, Clone)]
pub struct Pieces {
    bytes: Vec<u8>,
    /// `bytes[ends[i - 1]..ends[i]]` is token i's piece.
    ends: Vec<usize>,
}

impl Pieces {
    pub fn new(vocab: &Vocab, encoding: TextEncoding) -> Result<Pieces> {
        let mut bytes = Vec::new();
        let mut ends = Vec::with_capacity(vocab.len());
        for (id, text, ty) in vocab.iter() {
            match ty {
                TokenType::Control | TokenType::Unknown | TokenType::UserDefined => {
                    bytes.extend_from_slice(text.as_bytes());
                }
                TokenType::Normal => match encoding {
                    // Straight into `bytes`: `str::replace` would allocate once a token.
                    TextEncoding::SpaceMarked => {
                        for (i, part) in text.split(SPACE_MARK).enumerate() {
                            if i > 0 {
                                bytes.push(b' ');
                            }
                            bytes.extend_from_slice(part.as_bytes());
                        }
                    }
                    TextEncoding::ByteLevel => decode_byte_level(text, &mut bytes),
                },
                TokenType::Byte => bytes.push(byte_token_value(id, text)?),
                TokenType::Unused | TokenType::Undefined => {}
            }
            ends.push(bytes.len());
        }
        Ok(Pieces { bytes, ends })
    }

    /// The piece of `id`; `None` when `id` is not in the vocabulary.
    pub fn get(&self, id: TokenId) -> Option<&[u8]> {
        let i = id as usize;
        let end = *self.ends.get(i)?;
        let start = if i == 0 { 0 } else { self.ends[i - 1] };
        Some(&self.bytes[start..end])
    }
}

/// A byte-level token's bytes. A character outside the byte alphabet is written as
/// llama.cpp writes it: `[UNK_BYTE_0x<its UTF-8 in hex><the token text>]`.
fn decode_byte_level(text: &str, out: &mut Vec<u8>) {
    for c in text.chars() {
        match char_to_byte(c) {
            Some(b) => out.push(b),
            None => {
                let mut buf = [0u8; 4];
                let hex: String = c
                    .encode_utf8(&mut buf)
                    .bytes()
                    .map(|b| format!("{b:02x}"))
                    .collect();
                out.extend_from_slice(format!("[UNK_BYTE_0x{hex}{text}]").as_bytes());
            }
        }
    }
}

/// The byte a byte token `<0xNN>` stands for.
pub fn byte_token_value(id: TokenId, text: &str) -> Result<u8> {
    text.strip_prefix("<0x")
        .and_then(|rest| rest.strip_suffix('>'))
        .filter(|hex| hex.len() == 2 && hex.bytes().all(|b| b.is_ascii_hexdigit()))
        .and_then(|hex| u8::from_str_radix(hex, 16).ok())
        .ok_or_else(|| {
            Error::InvalidVocab(format!(
                "token {id} has the byte type but its text {text:?} is not <0xNN>"
            ))
        })
}

/// llama.cpp's `clean_up_tokenization_spaces`: drops the space before `?!.,`, around a
/// lone apostrophe, and before the contractions `'s`, `'m`, `'re`, `'ve`.
pub fn clean_spaces(text: &mut Vec<u8>) {
    // " ?", " !", " .", " ,"
    let mut out: Vec<u8> = Vec::with_capacity(text.len());
    for (i, &x) in text.iter().enumerate() {
        if i > 0 && text[i - 1] == b' ' && matches!(x, b'?' | b'!' | b'.' | b',') {
            out.pop();
        }
        out.push(x);
    }
    // " ' " becomes "'"
    // The dropped space after the apostrophe no longer counts as a space before the
    // next character (llama.cpp overwrites it with NUL).
    let src = std::mem::take(&mut out);
    let mut i = 0;
    let mut dropped = usize::MAX;
    while i < src.len() {
        let x = src[i];
        let space_before = i > 0 && src[i - 1] == b' ' && dropped != i - 1;
        if x == b'\'' && space_before && src.get(i + 1) == Some(&b' ') {
            out.pop();
            out.push(x);
            dropped = i + 1;
            i += 2;
            continue;
        }
        out.push(x);
        i += 1;
    }
    // " 's", " 'm", " 're", " 've"
    let src = std::mem::take(&mut out);
    for (i, &x) in src.iter().enumerate() {
        if i > 0 && src[i - 1] == b' ' && x == b'\'' {
            let x1 = src.get(i + 1).copied();
            let x2 = src.get(i + 2).copied();
            let drop = matches!(x1, Some(b's' | b'm'))
                || matches!((x1, x2), (Some(b'r' | b'v'), Some(b'e')));
            if drop {
                out.pop();
            }
        }
        out.push(x);
    }
    *text = out;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn byte_tokens() {
        assert_eq!(byte_token_value(0, "<0x0A>").ok(), Some(10));
        assert_eq!(byte_token_value(0, "<0xff>").ok(), Some(255));
        for bad in ["<0x-1>", "<0xZZ>", "<0x123>", "0x41", "<0x4>"] {
            assert!(matches!(
                byte_token_value(7, bad),
                Err(Error::InvalidVocab(m)) if m.contains("token 7")
            ));
        }
    }

    #[test]
    fn cleaning_spaces() {
        let mut t = b"Hi , you ' re here . it 's fine ' ok".to_vec();
        clean_spaces(&mut t);
        assert_eq!(String::from_utf8_lossy(&t), "Hi, you're here. it's fine'ok");
    }
}
