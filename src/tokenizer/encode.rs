//! Text to token ids: special tokens are cut out first, then each stretch of plain text
//! goes through the vocabulary's algorithm, with BOS/EOS around it when asked.

use super::bpe::{BpeScratch, MergeTable};
use super::gemma4::Gemma4Scratch;
use super::pretokenize::{CodepointText, PreTokenizer};
use super::special::{ControlText, Fragment};
use super::spm::{self, SpmModel, SpmScratch, Stretch};
use super::token_type::TokenType;
use super::vocab::TokenId;
use super::{Algorithm, Tokenizer};
use crate::error::{Error, Result};
use crate::host_memory::{self, reserve};
use rustc_hash::FxHashMap;
use std::ops::Range;

/// Longer words are rare enough not to be worth remembering.
const MAX_CACHED_WORD: usize = 64;

/// What the byte-level form of a word is called in an out-of-memory error.
const BYTE_LEVEL: &str = "a word's byte-level characters";

/// The word cache stops growing at this many tokens (1 MiB of them, beside a map entry of
/// a few dozen bytes a word), so that a long text of distinct words costs a bounded amount
/// of memory beside its own tokens.
const MAX_CACHED_TOKENS: usize = 1 << 18;

impl Tokenizer {
    /// The tokens of `text`. `add_special` adds BOS/EOS as the vocabulary says;
    /// `parse_special` turns control tokens written in the text (`<|im_start|>`) into
    /// their ids (user-defined tokens are always matched, as in llama.cpp). Text with a
    /// byte the vocabulary has no token for is refused ([`Error::NoTokenForByte`]).
    pub fn tokenize(
        &self,
        text: &str,
        add_special: bool,
        parse_special: bool,
    ) -> Result<Vec<TokenId>> {
        let control = if parse_special {
            ControlText::Parsed
        } else {
            ControlText::Plain
        };
        self.tokenize_controlled(text, add_special, control)
    }

    /// Like [`tokenize`](Self::tokenize) with `parse_special` on everywhere except in the
    /// byte ranges `plain` (sorted, disjoint): text somebody else wrote inside markup, as a
    /// chat message inside its template, whose control-token text stays text.
    pub fn tokenize_with_plain_ranges(
        &self,
        text: &str,
        add_special: bool,
        plain: &[Range<usize>],
    ) -> Result<Vec<TokenId>> {
        if plain.windows(2).any(|w| w[0].end > w[1].start)
            || plain.iter().any(|r| r.start > r.end || r.end > text.len())
        {
            return Err(Error::InvalidArgument(
                "plain ranges must be sorted, disjoint and inside the text".into(),
            ));
        }
        self.tokenize_controlled(text, add_special, ControlText::ParsedOutside(plain))
    }

    /// Whether cutting `text` at byte `at` would split a control token written there.
    pub fn control_text_crosses(&self, text: &str, at: usize) -> bool {
        self.specials.control_text_crosses(text.as_bytes(), at)
    }

    /// `text` with every control token written in it taken out (user-defined tokens stay).
    pub fn without_control_text(&self, text: &str) -> String {
        let mut fragments = Vec::new();
        self.specials
            .partition(text.as_bytes(), ControlText::Parsed, &mut fragments);
        let mut out = String::with_capacity(text.len());
        for fragment in fragments {
            match fragment {
                Fragment::Text { start, end } => out += text.get(start..end).unwrap_or_default(),
                Fragment::Token(id) if !self.is_control(id) => {
                    out += self.vocab.text(id).unwrap_or_default();
                }
                Fragment::Token(_) => {}
            }
        }
        out
    }

    /// Whether `id` is a control token (matched in text only with special parsing).
    pub fn is_control(&self, id: TokenId) -> bool {
        self.vocab
            .token_type(id)
            .is_some_and(|t| t.is_matched_in_text() && t != TokenType::UserDefined)
    }

    fn tokenize_controlled(
        &self,
        text: &str,
        add_special: bool,
        control: ControlText<'_>,
    ) -> Result<Vec<TokenId>> {
        // Room for a token a byte and the added ones, made fallibly: as nearly every token
        // covers a byte at least, the vector does not grow in practice, and a long text on
        // a host short of memory is an `OutOfMemory` error, not an abort. Shrunk to fit at
        // the end, so the tokens a caller keeps take what they need.
        let mut out = Vec::new();
        reserve(&mut out, text.len().saturating_add(4), "the tokens")?;
        let (before, after) = if add_special {
            self.added_around()?
        } else {
            (None, None)
        };
        out.extend(before);
        let mut fragments = Vec::new();
        self.specials
            .partition(text.as_bytes(), control, &mut fragments);
        self.specials
            .strip_beside_tokens(text.as_bytes(), &mut fragments);
        match &self.algorithm {
            Algorithm::Bpe { merges, pre } => {
                encode_bpe(text, &fragments, merges, pre, self, &mut out)?;
            }
            Algorithm::Spm { model } => {
                encode_spm(text, &fragments, model, self, &mut out)?;
            }
            Algorithm::WordPiece { model } => {
                let mut word = String::new();
                each_stretch(text, &fragments, &mut out, |stretch, _, out| {
                    model.encode(stretch, &mut word, out)
                })?;
            }
            Algorithm::Gemma4 { model } => {
                let mut scratch = Gemma4Scratch::default();
                each_stretch(text, &fragments, &mut out, |stretch, offset, out| {
                    model.encode(&self.vocab, stretch, offset, &mut scratch, out)
                })?;
            }
        }
        out.extend(after);
        out.shrink_to_fit();
        Ok(out)
    }

    /// The tokens that `add_special` puts before and after the text. WordPiece always
    /// adds `[CLS]` and `[SEP]`, as llama.cpp does whatever the `add_*` flags say.
    fn added_around(&self) -> Result<(Option<TokenId>, Option<TokenId>)> {
        let specials = &self.vocab.specials;
        if let Algorithm::WordPiece { .. } = self.algorithm {
            return Ok((
                Some(self.required("CLS (BOS)", specials.bos)?),
                Some(self.required("SEP", specials.sep)?),
            ));
        }
        let bos = match self.add_bos {
            true => Some(self.required("BOS", specials.bos)?),
            false => None,
        };
        let eos = match self.add_eos {
            true => Some(self.required("EOS", specials.eos)?),
            false => None,
        };
        Ok((bos, eos))
    }

    /// Like [`tokenize`](Self::tokenize) for bytes from outside (the C ABI): text that is
    /// not UTF-8 is an error naming the offset of the first bad byte.
    pub fn tokenize_bytes(
        &self,
        bytes: &[u8],
        add_special: bool,
        parse_special: bool,
    ) -> Result<Vec<TokenId>> {
        let text = std::str::from_utf8(bytes).map_err(|e| {
            Error::InvalidArgument(format!(
                "text is not valid UTF-8: bad byte at offset {}",
                e.valid_up_to()
            ))
        })?;
        self.tokenize(text, add_special, parse_special)
    }

    fn required(&self, role: &str, id: Option<TokenId>) -> Result<TokenId> {
        id.ok_or_else(|| {
            Error::InvalidVocab(format!(
                "the vocabulary asks for a {role} token but has none"
            ))
        })
    }
}

fn encode_bpe(
    text: &str,
    fragments: &[Fragment],
    merges: &MergeTable,
    pre: &PreTokenizer,
    tokenizer: &Tokenizer,
    out: &mut Vec<TokenId>,
) -> Result<()> {
    let mut cps = CodepointText::default();
    let mut scratch = BpeScratch::default();
    let mut encoded = String::new();
    // Words repeat: each distinct word is merged once per call. The value is the range
    // of its tokens in `cached`.
    let mut cache: FxHashMap<&[u8], (u32, u32)> = FxHashMap::default();
    let mut cached: Vec<TokenId> = Vec::new();
    // The splits cannot be stopped early: after a failure the remaining words are skipped.
    let mut failure = None;
    for fragment in fragments {
        let (start, end) = match *fragment {
            Fragment::Token(id) => {
                out.push(id);
                continue;
            }
            Fragment::Text { start, end } => (start, end),
        };
        let piece = &text[start..end];
        cps.load(piece)?;
        pre.split(&cps, &mut |span| {
            if failure.is_some() {
                return;
            }
            let range = cps.byte_range(span);
            let word_offset = start + range.start;
            let word = &piece[range];
            if let Some(&(from, to)) = cache.get(word.as_bytes()) {
                out.extend_from_slice(&cached[from as usize..to as usize]);
                return;
            }
            if pre.ignore_merges {
                // A word that is a token as a whole is taken without merging.
                encoded.clear();
                // A byte is a character of one or two bytes.
                let room = host_memory::reserve_text(&mut encoded, 2 * word.len(), BYTE_LEVEL);
                if let Err(e) = room {
                    failure = Some(e);
                    return;
                }
                encoded.extend(word.bytes().map(super::byte_level::byte_to_char));
                if let Some(id) = tokenizer.vocab.id_of(encoded.as_bytes()) {
                    out.push(id);
                    return;
                }
            }
            let from = out.len();
            if let Err(e) = merges.encode_word(word, word_offset, &mut scratch, out) {
                failure = Some(e);
                return;
            }
            if word.len() > 1 && word.len() <= MAX_CACHED_WORD && cached.len() < MAX_CACHED_TOKENS {
                let start = cached.len() as u32;
                cached.extend_from_slice(&out[from..]);
                cache.insert(word.as_bytes(), (start, cached.len() as u32));
            }
        });
        if let Some(e) = failure {
            return Err(e);
        }
    }
    Ok(())
}

fn encode_spm(
    text: &str,
    fragments: &[Fragment],
    model: &SpmModel,
    tokenizer: &Tokenizer,
    out: &mut Vec<TokenId>,
) -> Result<()> {
    let mut scratch = SpmScratch::default();
    // A space prefix goes before text at the start and after each special token.
    let mut after_special = true;
    for fragment in fragments {
        match *fragment {
            Fragment::Token(id) => {
                out.push(id);
                after_special = true;
            }
            Fragment::Text { start, end } => {
                let stretch = Stretch {
                    text: &text[start..end],
                    offset: start,
                    space_prefix: tokenizer.add_space_prefix && after_special,
                };
                spm::encode(&tokenizer.vocab, model, stretch, &mut scratch, out)?;
                after_special = false;
            }
        }
    }
    Ok(())
}

/// Passes each stretch of text between special tokens, with its offset in `text`, to
/// `encode`, and special tokens straight to `out`.
fn each_stretch(
    text: &str,
    fragments: &[Fragment],
    out: &mut Vec<TokenId>,
    mut encode: impl FnMut(&str, usize, &mut Vec<TokenId>) -> Result<()>,
) -> Result<()> {
    for fragment in fragments {
        match *fragment {
            Fragment::Token(id) => out.push(id),
            Fragment::Text { start, end } => encode(&text[start..end], start, out)?,
        }
    }
    Ok(())
}
