//! Gemma 4's tokenizer (`tokenizer.ggml.model = gemma4`): BPE with a ranked merge list,
//! like byte-level BPE, but over raw UTF-8 with spaces written as `▁`, like SentencePiece.
//!
//! As llama.cpp does it: the text is cut into runs of newlines and runs of everything
//! else; a run of newlines that is a token is taken whole; otherwise merging starts from
//! one symbol per character. A character that is no token joins no merge (every merge is
//! of two tokens) and is written as its byte-fallback tokens `<0xNN>`.

use super::bpe::{BpeScratch, MergeRanks};
use super::byte_tokens::ByteTokens;
use super::spm::{SPACE_MARK, no_space_mark};
use super::vocab::{TokenId, Vocab};
use crate::error::Result;
use crate::host_memory;

#[derive(Debug, Clone)]
pub struct Gemma4Model {
    ranks: MergeRanks,
    byte_tokens: ByteTokens,
    /// The token of `▁`, which every space becomes.
    space: Option<TokenId>,
}

/// Reusable buffers for one stretch of text after another.
#[derive(Debug, Default)]
pub struct Gemma4Scratch {
    /// The symbols of the characters since the last one that is no token.
    symbols: Vec<TokenId>,
    bpe: BpeScratch,
}

impl Gemma4Model {
    pub fn new(vocab: &Vocab, merges: &[String]) -> Result<Gemma4Model> {
        Ok(Gemma4Model {
            ranks: MergeRanks::new(vocab, merges)?,
            // llama.cpp looks for `<0xNN>` only, never the one-byte text.
            byte_tokens: ByteTokens::new(|b| vocab.id_of(format!("<0x{b:02X}>").as_bytes())),
            space: vocab.id_of(SPACE_MARK.as_bytes()),
        })
    }

    /// Appends the tokens of `text`, a stretch between special tokens that starts at
    /// `offset` in the caller's text, to `out`.
    pub fn encode(
        &self,
        vocab: &Vocab,
        text: &str,
        offset: usize,
        scratch: &mut Gemma4Scratch,
        out: &mut Vec<TokenId>,
    ) -> Result<()> {
        let mut start = 0;
        while start < text.len() {
            let newlines = text.as_bytes()[start] == b'\n';
            let len = text[start..]
                .bytes()
                .position(|b| (b == b'\n') != newlines)
                .unwrap_or(text.len() - start);
            let run = &text[start..start + len];
            match vocab.id_of(run.as_bytes()).filter(|_| newlines) {
                Some(id) => out.push(id),
                None => self.merge_run(vocab, run, offset + start, scratch, out)?,
            }
            start += len;
        }
        Ok(())
    }

    fn merge_run(
        &self,
        vocab: &Vocab,
        run: &str,
        offset: usize,
        scratch: &mut Gemma4Scratch,
        out: &mut Vec<TokenId>,
    ) -> Result<()> {
        scratch.symbols.clear();
        // A character is at most one symbol.
        host_memory::reserve(&mut scratch.symbols, run.len(), "a stretch's symbols")?;
        let mut buf = [0u8; 4];
        for (at, c) in run.char_indices() {
            let id = if c == ' ' {
                self.space
            } else {
                vocab.id_of(c.encode_utf8(&mut buf).as_bytes())
            };
            if let Some(id) = id {
                scratch.symbols.push(id);
                continue;
            }
            // No merge crosses this character: what came before merges on its own.
            self.ranks
                .merge_symbols(&scratch.symbols, &mut scratch.bpe, out)?;
            scratch.symbols.clear();
            self.write_bytes(c, offset + at, out)?;
        }
        self.ranks
            .merge_symbols(&scratch.symbols, &mut scratch.bpe, out)
    }

    /// The byte-fallback tokens of `c` (of `▁` for a space), which is at `offset` in the
    /// caller's text.
    fn write_bytes(&self, c: char, offset: usize, out: &mut Vec<TokenId>) -> Result<()> {
        let push = |id| out.push(id);
        if c != ' ' {
            return self
                .byte_tokens
                .each_of(c, push)
                .map_err(|missing| missing.in_text(c, offset));
        }
        self.byte_tokens
            .each_of('\u{2581}', push)
            .map_err(no_space_mark)
    }
}
