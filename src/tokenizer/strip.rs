//! Whitespace that llama.cpp drops beside some special tokens where it finds them in the
//! text (its LSTRIP and RSTRIP token attributes). GGUF files do not carry these
//! attributes, so llama.cpp sets them by the model's name: the special tokens of Phi-3
//! drop the whitespace after them (`<|user|>\nHi` is `<|user|>` then `Hi`), and the mask
//! token of some embedding models the whitespace before it.

use rustc_hash::FxHashMap;

use super::parts::VocabParts;
use super::vocab::{TokenId, Vocab};

/// Which side of a special token loses its whitespace.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Strip {
    pub left: bool,
    pub right: bool,
}

/// The tokens with a strip attribute, as llama.cpp's `llama_vocab::impl::load` sets them
/// from `tokenizer.ggml.pre`, `general.architecture` and `general.name` (ASCII-lowercased);
/// empty for every other model.
pub fn by_model_name(parts: &VocabParts, vocab: &Vocab) -> FxHashMap<TokenId, Strip> {
    let contains_any =
        |s: Option<&str>, parts: &[&str]| s.is_some_and(|s| parts.iter().any(|p| s.contains(p)));
    let name = parts.model_name.as_deref().map(str::to_ascii_lowercase);
    let name = name.as_deref();
    let mut strips = FxHashMap::default();
    let mut set = |text: &str, strip: Strip| {
        if let Some(id) = vocab.id_of(text.as_bytes()) {
            strips.insert(id, strip);
        }
    };
    let left = Strip {
        left: true,
        right: false,
    };
    let right = Strip {
        left: false,
        right: true,
    };
    if contains_any(
        parts.pre.as_deref(),
        &["jina-v2-de", "jina-v2-es", "jina-v2-code"],
    ) || contains_any(
        parts.architecture.as_deref(),
        &["nomic-bert-moe", "jina-bert-v3"],
    ) {
        set("<mask>", left);
    } else if contains_any(name, &["phi-3", "phi3"]) {
        // Every token matched in text, and `</s>`, but not the unknown, BOS and
        // end-of-text tokens.
        for (_, text, ty) in vocab.iter() {
            if ty.is_matched_in_text() {
                set(text, right);
            }
        }
        set("</s>", right);
        for text in ["<unk>", "<s>", "<|endoftext|>"] {
            set(text, Strip::default());
        }
    } else if contains_any(name, &["modern-bert"]) {
        set("[MASK]", left);
    }
    strips.retain(|_, s| *s != Strip::default());
    strips
}

/// C's `isspace` in the "C" locale, which llama.cpp strips with: space, `\t`, `\n`, `\v`,
/// `\f` and `\r`.
pub fn is_c_space(b: u8) -> bool {
    matches!(b, b' ' | b'\t'..=b'\r')
}
