//! WordPiece (BERT, `tokenizer.ggml.model = bert`) as llama.cpp's WPM tokenizer does it.
//!
//! The text is normalized and cut into words: whitespace ends a word; NUL, U+FFFD and
//! control characters vanish; punctuation, ASCII symbols and CJK ideographs are words of
//! their own. With `strip_accents` each character first becomes the first code point of
//! its decomposition and marks vanish; with `lowercase` it is lowercased (both one code
//! point to one, as llama.cpp's tables are). Each word, written with a leading `▁` (the
//! converter marks word starts that way and drops WordPiece's `##`), is spelled greedily
//! with the longest token at each position; a word that cannot be spelled to its end
//! becomes the unknown token.

use super::spm::SPACE_MARK;
use super::unicode::{class_of, nfd_first, to_lower};
use super::vocab::{TokenId, Vocab};
use crate::error::{Error, Result};

#[derive(Debug, Clone)]
pub struct WordPiece {
    /// The longest token text in bytes: no longer piece is looked up.
    max_token_len: usize,
    lowercase: bool,
    strip_accents: bool,
    unk: Option<TokenId>,
}

/// How a character of the input takes part in the words.
enum Role {
    /// Ends the word before it (whitespace).
    Break,
    /// Dropped.
    Skip,
    /// A word by itself.
    Alone(char),
    /// Continues the current word.
    Part(char),
}

impl WordPiece {
    /// `lowercase` and `strip_accents` are the BertNormalizer options of the vocabulary.
    pub fn new(vocab: &Vocab, lowercase: bool, strip_accents: bool) -> WordPiece {
        let max_token_len = vocab.iter().map(|(_, t, _)| t.len()).max().unwrap_or(0);
        WordPiece {
            max_token_len,
            lowercase,
            strip_accents,
            unk: vocab.specials.unk,
        }
    }

    fn role(&self, c: char) -> Role {
        let c = if self.strip_accents { nfd_first(c) } else { c };
        let class = class_of(c);
        if class.is_whitespace() {
            return Role::Break;
        }
        let flags = class.flags;
        if c == '\0' || c == '\u{FFFD}' || flags.is_control() {
            return Role::Skip;
        }
        if self.strip_accents && flags.is_mark() {
            return Role::Skip;
        }
        let written = if self.lowercase { to_lower(c) } else { c };
        if flags.is_punctuation() || (c < '\x7f' && flags.is_symbol()) || is_cjk_ideograph(c) {
            Role::Alone(written)
        } else {
            Role::Part(written)
        }
    }

    /// Appends the tokens of `text`, a stretch between special tokens, to `out`.
    pub fn encode(
        &self,
        vocab: &Vocab,
        text: &str,
        word: &mut String,
        out: &mut Vec<TokenId>,
    ) -> Result<()> {
        word.clear();
        word.push_str(SPACE_MARK);
        for c in text.chars() {
            match self.role(c) {
                Role::Break => self.finish(vocab, word, out)?,
                Role::Skip => {}
                Role::Alone(c) => {
                    self.finish(vocab, word, out)?;
                    word.push(c);
                    self.finish(vocab, word, out)?;
                }
                Role::Part(c) => word.push(c),
            }
        }
        self.finish(vocab, word, out)
    }

    /// Spells the word collected in `word` (after its `▁`), if any, and starts the next.
    fn finish(&self, vocab: &Vocab, word: &mut String, out: &mut Vec<TokenId>) -> Result<()> {
        if word.len() > SPACE_MARK.len() {
            self.spell(vocab, word, out)?;
            word.truncate(SPACE_MARK.len());
        }
        Ok(())
    }

    /// The longest token at each position, left to right; the unknown token for a word
    /// with a position where no token starts.
    fn spell(&self, vocab: &Vocab, word: &str, out: &mut Vec<TokenId>) -> Result<()> {
        let before = out.len();
        let mut at = 0;
        while at < word.len() {
            let rest = &word[at..];
            // Longest first. A token is whole characters, so only a character boundary
            // can end one.
            let found = (1..=rest.len().min(self.max_token_len))
                .rev()
                .filter(|&end| rest.is_char_boundary(end))
                .find_map(|end| vocab.id_of(&rest.as_bytes()[..end]).map(|id| (id, end)));
            match found {
                Some((id, len)) => {
                    out.push(id);
                    at += len;
                }
                None => {
                    out.truncate(before);
                    let unk = self.unk.ok_or_else(|| {
                        Error::InvalidVocab(format!(
                            "the word {:?} has no spelling and the vocabulary no unknown token",
                            &word[SPACE_MARK.len()..]
                        ))
                    })?;
                    out.push(unk);
                    return Ok(());
                }
            }
        }
        Ok(())
    }
}

/// The ideograph blocks that BERT's tokenizer isolates. The fifth range starts at
/// U+2B920 where the Unicode block starts at U+2B820: Hugging Face's code says so, and
/// llama.cpp follows it.
fn is_cjk_ideograph(c: char) -> bool {
    matches!(
        c as u32,
        0x4E00..=0x9FFF
            | 0x3400..=0x4DBF
            | 0x20000..=0x2A6DF
            | 0x2A700..=0x2B73F
            | 0x2B740..=0x2B81F
            | 0x2B920..=0x2CEAF
            | 0xF900..=0xFAFF
            | 0x2F800..=0x2FA1F
    )
}
