//! SentencePiece-style BPE (Llama 2, Gemma): spaces become `▁`, the text starts as one
//! symbol per character, and the adjacent pair whose concatenation is the token with the
//! highest score merges first (the leftmost among equals). What never became a token is
//! written as byte-fallback tokens `<0xNN>`. A heap with lazy invalidation keeps a text of
//! n characters O(n log n).
//!
//! llama.cpp merges over the whole text at once. Every merged symbol is a token, so two
//! neighbouring characters that appear side by side in no token are never joined: the text
//! is cut there into pieces that merge independently, with the same result and small
//! heaps.

use std::collections::BinaryHeap;

use rustc_hash::FxHashSet;

use super::byte_tokens::{ByteTokens, MissingByte};
use super::vocab::{TokenId, Vocab};
use crate::error::{Error, Result};
use crate::host_memory;

/// `▁` (U+2581), SentencePiece's visible space.
pub const SPACE_MARK: &str = "\u{2581}";

/// What SentencePiece merging needs beyond the vocabulary.
#[derive(Debug, Clone)]
pub struct SpmModel {
    /// The byte-fallback token of every byte, where the vocabulary has one.
    byte_tokens: ByteTokens,
    /// Every pair of characters that stand side by side in some token.
    joinable: FxHashSet<u64>,
}

fn char_pair(a: char, b: char) -> u64 {
    (u64::from(a) << 32) | u64::from(b)
}

impl SpmModel {
    pub fn new(vocab: &Vocab) -> SpmModel {
        // `<0xNN>` for each byte, else the one-byte text itself (llama.cpp's order).
        let byte_tokens = ByteTokens::new(|b| {
            let name = format!("<0x{b:02X}>");
            vocab.id_of(name.as_bytes()).or_else(|| vocab.id_of(&[b]))
        });
        let mut joinable = FxHashSet::default();
        for (_, text, _) in vocab.iter() {
            let mut chars = text.chars();
            if let Some(mut prev) = chars.next() {
                for c in chars {
                    joinable.insert(char_pair(prev, c));
                    prev = c;
                }
            }
        }
        SpmModel {
            byte_tokens,
            joinable,
        }
    }
}

/// A stretch of the caller's text between special tokens, as SentencePiece receives it.
#[derive(Debug, Clone, Copy)]
pub struct Stretch<'a> {
    pub text: &'a str,
    /// Where `text` starts in the caller's text.
    pub offset: usize,
    /// Whether a space goes before it (`add_space_prefix`).
    pub space_prefix: bool,
}

impl Stretch<'_> {
    /// The error for `missing`, a byte of the escaped character at `escaped_at`. Escaping
    /// maps each character to one (a space to `▁`) after the optional prefix, so walking
    /// both texts together finds the caller's character.
    fn unwritable(&self, escaped_at: usize, missing: MissingByte) -> Error {
        let mut at = if self.space_prefix {
            SPACE_MARK.len()
        } else {
            0
        };
        for (start, c) in self.text.char_indices() {
            if at == escaped_at {
                if c == ' ' {
                    break;
                }
                return missing.in_text(c, self.offset + start);
            }
            at += if c == ' ' {
                SPACE_MARK.len()
            } else {
                c.len_utf8()
            };
        }
        // A space or the prefix: the vocabulary cannot write any space.
        no_space_mark(missing)
    }
}

/// The error for a vocabulary that has neither a token for `▁` nor one of its bytes.
pub fn no_space_mark(missing: MissingByte) -> Error {
    Error::InvalidVocab(format!(
        "no token for the space mark {SPACE_MARK} (U+2581), nor for its byte 0x{:02X}",
        missing.byte()
    ))
}

/// A character of the escaped text that is no token and lacks a byte-fallback token.
struct Unwritable {
    /// Where the character starts in the piece being merged.
    at: usize,
    missing: MissingByte,
}

/// Reusable buffers for one text after another.
#[derive(Debug, Default)]
pub struct SpmScratch {
    /// Byte start of each symbol in the escaped text, and its length (0 once merged away).
    start: Vec<usize>,
    len: Vec<usize>,
    next: Vec<usize>,
    prev: Vec<usize>,
    heap: BinaryHeap<Candidate>,
    escaped: String,
}

/// A pair that may be merged; the heap's maximum is the best score, then the leftmost.
/// Kept to 16 bytes: the heap holds one per adjacent pair of a whole text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct Candidate {
    /// The score's bits mapped so that integer order is float order (high half), then
    /// the left symbol's index reversed so that the leftmost wins a tie (low half).
    key: u64,
    /// Bytes the pair spans when queued. The right symbol is the left one's successor
    /// when popped; a different sum means one side changed since.
    size: u32,
}

impl Candidate {
    fn left(self) -> usize {
        (u32::MAX - self.key as u32) as usize
    }
}

const NONE: usize = usize::MAX;

/// Order-preserving map of a non-NaN `f32` to `u32` (-0.0 and 0.0 compare equal).
fn score_key(score: f32) -> u32 {
    let score = if score == 0.0 { 0.0 } else { score };
    let bits = score.to_bits();
    if bits & 0x8000_0000 != 0 {
        !bits
    } else {
        bits | 0x8000_0000
    }
}

/// Appends the tokens of `stretch` to `out`, its spaces escaped as `▁`.
pub fn encode(
    vocab: &Vocab,
    model: &SpmModel,
    stretch: Stretch<'_>,
    scratch: &mut SpmScratch,
    out: &mut Vec<TokenId>,
) -> Result<()> {
    let s = scratch;
    s.escaped.clear();
    // Each space becomes the three bytes of `▁`, as may the prefix.
    let spaces = stretch.text.bytes().filter(|&b| b == b' ').count();
    let escaped_len = stretch.text.len() + 2 * spaces + SPACE_MARK.len();
    host_memory::reserve_text(
        &mut s.escaped,
        escaped_len,
        "the text with its spaces escaped",
    )?;
    if stretch.space_prefix {
        s.escaped.push_str(SPACE_MARK);
    }
    for (i, part) in stretch.text.split(' ').enumerate() {
        if i > 0 {
            s.escaped.push_str(SPACE_MARK);
        }
        s.escaped.push_str(part);
    }
    let escaped = std::mem::take(&mut s.escaped);
    let result = encode_pieces(vocab, model, &escaped, stretch, s, out);
    s.escaped = escaped;
    result
}

/// Cuts the escaped text between characters that no token joins and merges each piece.
fn encode_pieces(
    vocab: &Vocab,
    model: &SpmModel,
    escaped: &str,
    stretch: Stretch<'_>,
    s: &mut SpmScratch,
    out: &mut Vec<TokenId>,
) -> Result<()> {
    let mut emit = |start: usize, end: usize| {
        let piece = &escaped[start..end];
        let n = char_count(piece)?;
        s.reserve_merge(n)?;
        merge(vocab, piece, n, s)?;
        emit_merged(vocab, model, piece, n, s, out)
            .map_err(|u| stretch.unwritable(start + u.at, u.missing))
    };
    let mut piece_start = 0;
    let mut prev: Option<char> = None;
    for (offset, c) in escaped.char_indices() {
        if let Some(p) = prev {
            if !model.joinable.contains(&char_pair(p, c)) {
                emit(piece_start, offset)?;
                piece_start = offset;
            }
        }
        prev = Some(c);
    }
    emit(piece_start, escaped.len())
}

/// The characters in `piece`, whose symbols and byte offsets must fit 32 bits.
fn char_count(piece: &str) -> Result<usize> {
    let n = piece.chars().count();
    if n >= u32::MAX as usize || piece.len() >= u32::MAX as usize {
        return Err(Error::InvalidArgument(format!(
            "a stretch of text without special tokens of {} bytes is over the 4 GiB limit",
            piece.len()
        )));
    }
    Ok(n)
}

impl SpmScratch {
    /// Empties the merge's buffers and makes room, fallibly, for a piece of `n` characters:
    /// a long piece (a hostile text's run of joinable characters) fails as out of memory,
    /// not an abort. The heap of candidates grows fallibly as they are pushed.
    fn reserve_merge(&mut self, n: usize) -> Result<()> {
        const WHAT: &str = "a piece's SentencePiece merge";
        self.start.clear();
        self.len.clear();
        self.next.clear();
        self.prev.clear();
        self.heap.clear();
        host_memory::reserve(&mut self.start, n, WHAT)?;
        host_memory::reserve(&mut self.len, n, WHAT)?;
        host_memory::reserve(&mut self.next, n, WHAT)?;
        host_memory::reserve(&mut self.prev, n, WHAT)
    }
}

/// Merges `text` of `n` characters (fewer than 2^32, in fewer than 4 GiB) in the scratch
/// buffers, which are empty and have room for them (`reserve_merge`).
fn merge(vocab: &Vocab, text: &str, n: usize, s: &mut SpmScratch) -> Result<()> {
    for (i, (offset, c)) in text.char_indices().enumerate() {
        s.start.push(offset);
        s.len.push(c.len_utf8());
        s.prev.push(if i == 0 { NONE } else { i - 1 });
        s.next.push(if i + 1 == n { NONE } else { i + 1 });
    }
    let raw = text.as_bytes();
    for i in 1..n {
        push_candidate(vocab, raw, s, i - 1, i)?;
    }
    while let Some(c) = s.heap.pop() {
        let left = c.left();
        let right = s.next[left];
        if s.len[left] == 0 || right == NONE || s.len[left] + s.len[right] != c.size as usize {
            continue;
        }
        s.len[left] += s.len[right];
        s.len[right] = 0;
        let after = s.next[right];
        s.next[left] = after;
        if after != NONE {
            s.prev[after] = left;
        }
        if s.prev[left] != NONE {
            push_candidate(vocab, raw, s, s.prev[left], left)?;
        }
        if after != NONE {
            push_candidate(vocab, raw, s, left, after)?;
        }
    }
    Ok(())
}

/// Appends the tokens of `text` as [`merge`] left its `n` characters.
fn emit_merged(
    vocab: &Vocab,
    model: &SpmModel,
    text: &str,
    n: usize,
    s: &SpmScratch,
    out: &mut Vec<TokenId>,
) -> Result<(), Unwritable> {
    let mut i = if n == 0 { NONE } else { 0 };
    while i != NONE {
        let start = s.start[i];
        let symbol = &text[start..start + s.len[i]];
        match vocab.id_of(symbol.as_bytes()) {
            Some(id) => out.push(id),
            None => {
                for (k, c) in symbol.char_indices() {
                    model
                        .byte_tokens
                        .each_of(c, |id| out.push(id))
                        .map_err(|missing| Unwritable {
                            at: start + k,
                            missing,
                        })?;
                }
            }
        }
        i = s.next[i];
    }
    Ok(())
}

fn push_candidate(
    vocab: &Vocab,
    raw: &[u8],
    s: &mut SpmScratch,
    left: usize,
    right: usize,
) -> Result<()> {
    let start = s.start[left];
    let size = s.len[left] + s.len[right];
    // Adjacent live symbols are contiguous in the text, so the pair is one slice.
    let Some(token) = vocab.id_of(&raw[start..start + size]) else {
        return Ok(());
    };
    let score = vocab.score(token).unwrap_or(0.0);
    // Both fit in 32 bits: the text is shorter than 4 GiB (checked above).
    let candidate = Candidate {
        key: (u64::from(score_key(score)) << 32) | u64::from(u32::MAX - left as u32),
        size: size as u32,
    };
    host_memory::push_heap(&mut s.heap, candidate, "a piece's SentencePiece merge")
}

#[cfg(test)]
mod tests {
    use super::score_key;

    #[test]
    fn score_order_is_float_order() {
        let xs = [-1000.0f32, -2.5, -0.0, 0.0, 1e-9, 3.0, f32::INFINITY];
        for w in xs.windows(2) {
            assert!(score_key(w[0]) <= score_key(w[1]), "{w:?}");
        }
        assert_eq!(score_key(-0.0), score_key(0.0));
        assert!(score_key(f32::NEG_INFINITY) < score_key(-1e30));
    }
}
