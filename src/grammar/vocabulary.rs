//! A model's vocabulary as llguidance reads it: every token's bytes in a trie, with the
//! tokens that end a generation as the grammar's end.

use crate::error::{Error, Result};
use crate::tokenizer::Tokenizer;
use llguidance::ParserFactory;
use llguidance::toktrie::{ApproximateTokEnv, TokEnv, TokRxInfo, TokTrie};
use std::sync::Arc;

/// llguidance's trie holds a token id in 24 bits, a token of at most 1,024 bytes and at
/// most 2^22 - 1 nodes (one per byte of every token, at most): vocabularies past these
/// are refused rather than handed to code that asserts them.
const MAX_TOKEN_ID: usize = 0xff_fffe;
const MAX_TOKEN_BYTES: usize = 1024;
const MAX_TRIE_BYTES: usize = (1 << 22) - 2;

/// Builds grammar constraints for one model: made once per model (a few tens of
/// milliseconds for a 50,000-token vocabulary), shared by every sampler bound to it.
pub struct GrammarVocabulary {
    factory: ParserFactory,
}

impl GrammarVocabulary {
    /// The vocabulary of `tokenizer`. Control and unknown tokens are written with
    /// llguidance's special-token marker, so grammar text never produces them; unused
    /// tokens have no bytes and are never allowed.
    pub fn new(tokenizer: &Tokenizer) -> Result<Arc<GrammarVocabulary>> {
        let n_tokens = tokenizer.n_tokens();
        if n_tokens > MAX_TOKEN_ID {
            return Err(too_large(format!(
                "{n_tokens} tokens, at most {MAX_TOKEN_ID}"
            )));
        }
        let mut words = Vec::with_capacity(n_tokens);
        let mut total_bytes = 0usize;
        for id in 0..n_tokens as u32 {
            let word = token_bytes(tokenizer, id)?;
            if word.len() > MAX_TOKEN_BYTES {
                return Err(too_large(format!(
                    "token {id} is {} bytes, at most {MAX_TOKEN_BYTES}",
                    word.len()
                )));
            }
            total_bytes += word.len();
            words.push(word);
        }
        if total_bytes > MAX_TRIE_BYTES {
            return Err(too_large(format!(
                "its tokens hold {total_bytes} bytes, at most {MAX_TRIE_BYTES}"
            )));
        }
        let ends: Vec<u32> = (0..n_tokens as u32)
            .filter(|&id| tokenizer.is_end_of_generation(id))
            .collect();
        let Some(&first_end) = ends.first() else {
            return Err(Error::Unsupported(
                "grammar-constrained sampling: the vocabulary has no end-of-generation token, \
                 so no grammar could end"
                    .into(),
            ));
        };
        let info = TokRxInfo::new(n_tokens as u32, first_end);
        let trie = TokTrie::from(&info, &words).with_eos_tokens(&ends);
        // Greedy tokenization serves llguidance only for text it forces, which the
        // matcher as used here (no fast-forward tokens) never asks for.
        let environment: TokEnv = Arc::new(ApproximateTokEnv::new(trie));
        let mut factory = ParserFactory::new_simple(&environment).map_err(|e| {
            Error::Unsupported(format!(
                "grammar-constrained sampling on this vocabulary: {e}"
            ))
        })?;
        factory.quiet();
        Ok(Arc::new(GrammarVocabulary { factory }))
    }

    pub fn factory(&self) -> &ParserFactory {
        &self.factory
    }
}

/// The bytes of token `id` as the grammar sees them.
fn token_bytes(tokenizer: &Tokenizer, id: u32) -> Result<Vec<u8>> {
    let piece = tokenizer.token_to_piece(id, true)?;
    let special = tokenizer
        .vocab()
        .token_type(id)
        .is_some_and(|t| t.is_hidden_unless_special());
    Ok(if special && !piece.is_empty() {
        [&[TokTrie::SPECIAL_TOKEN_MARKER], piece].concat()
    } else {
        piece.to_vec()
    })
}

fn too_large(what: String) -> Error {
    Error::Unsupported(format!(
        "grammar-constrained sampling: the vocabulary is too large for llguidance: {what}"
    ))
}
