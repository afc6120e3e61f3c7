//! The raw ingredients of a tokenizer, as a GGUF file stores them under `tokenizer.ggml.*`,
//! read without judging them. [`crate::tokenizer::Tokenizer::from_parts`] checks them.

use crate::error::{Error, Result};
use crate::gguf::{ArrayView, GgufFile, Value, ValueType};

/// Everything the tokenizer reads from a model. Tests build these by hand; models fill
/// them with [`VocabParts::from_gguf`].
#[derive(Clone, Debug, Default, PartialEq)]
pub struct VocabParts {
    /// `tokenizer.ggml.model`: `gpt2`, `llama`, `bert` or `gemma4` (others are recognised
    /// and refused).
    pub model: String,
    /// `tokenizer.ggml.pre`; `None` means llama.cpp's `default` splits.
    pub pre: Option<String>,
    pub tokens: Vec<String>,
    /// Raw `token_type` values, one per token; `None` makes every token normal.
    pub token_types: Option<Vec<i32>>,
    /// One per token; `None` makes every score 0.
    pub scores: Option<Vec<f32>>,
    /// `"left right"` pairs, highest priority first (byte-level BPE only).
    pub merges: Vec<String>,
    pub bos: Option<u32>,
    pub eos: Option<u32>,
    pub eot: Option<u32>,
    pub eom: Option<u32>,
    pub unk: Option<u32>,
    pub sep: Option<u32>,
    pub pad: Option<u32>,
    /// Fill-in-the-middle pad, repository and file-separator tokens: they end generation.
    pub fim_pad: Option<u32>,
    pub fim_rep: Option<u32>,
    pub fim_sep: Option<u32>,
    pub add_bos: Option<bool>,
    pub add_eos: Option<bool>,
    pub add_space_prefix: Option<bool>,
    /// WordPiece's BertNormalizer options, `tokenizer.ggml.normalizer.*`.
    pub lowercase: Option<bool>,
    pub strip_accents: Option<bool>,
    /// `<arch>.vocab_size`, when the file declares one.
    pub declared_vocab_size: Option<u64>,
    /// `general.name` and `general.architecture`: llama.cpp strips the whitespace beside
    /// some special tokens of the models it knows by these (see `strip`).
    pub model_name: Option<String>,
    pub architecture: Option<String>,
}

pub const KEY_MODEL: &str = "tokenizer.ggml.model";
pub const KEY_PRE: &str = "tokenizer.ggml.pre";
pub const KEY_TOKENS: &str = "tokenizer.ggml.tokens";
pub const KEY_TOKEN_TYPE: &str = "tokenizer.ggml.token_type";
pub const KEY_SCORES: &str = "tokenizer.ggml.scores";
pub const KEY_MERGES: &str = "tokenizer.ggml.merges";

impl VocabParts {
    /// Copies the tokenizer metadata out of `file`. Keys of the wrong type are errors
    /// naming the key; consistency is checked when the tokenizer is built.
    pub fn from_gguf(file: &GgufFile<'_>) -> Result<VocabParts> {
        let model = file.require::<&str>(KEY_MODEL)?.to_owned();
        let pre = file.get::<&str>(KEY_PRE)?.map(str::to_owned);
        let tokens = read_strings(file, KEY_TOKENS)?.ok_or_else(|| Error::MissingKey {
            key: KEY_TOKENS.to_owned(),
        })?;
        let token_types = read_ints(file, KEY_TOKEN_TYPE)?;
        let scores = read_scores(file)?;
        let merges = read_strings(file, KEY_MERGES)?.unwrap_or_default();
        let architecture = file.get::<&str>("general.architecture")?;
        let declared_vocab_size = match architecture {
            Some(arch) => file.get::<u64>(&format!("{arch}.vocab_size"))?,
            None => None,
        };
        let id = |name: &str| file.get::<u32>(&format!("tokenizer.ggml.{name}"));
        let flag = |name: &str| file.get::<bool>(&format!("tokenizer.ggml.{name}"));
        Ok(VocabParts {
            model,
            pre,
            tokens,
            token_types,
            scores,
            merges,
            bos: id("bos_token_id")?,
            eos: id("eos_token_id")?,
            eot: id("eot_token_id")?,
            eom: id("eom_token_id")?,
            unk: id("unknown_token_id")?,
            // The key's spelling is llama.cpp's.
            sep: id("seperator_token_id")?,
            pad: id("padding_token_id")?,
            fim_pad: id("fim_pad_token_id")?,
            fim_rep: id("fim_rep_token_id")?,
            fim_sep: id("fim_sep_token_id")?,
            add_bos: flag("add_bos_token")?,
            add_eos: flag("add_eos_token")?,
            add_space_prefix: flag("add_space_prefix")?,
            lowercase: flag("normalizer.lowercase")?,
            strip_accents: flag("normalizer.strip_accents")?,
            declared_vocab_size,
            model_name: file.get::<&str>("general.name")?.map(str::to_owned),
            architecture: architecture.map(str::to_owned),
        })
    }
}

fn array<'f>(file: &'f GgufFile<'_>, key: &str) -> Result<Option<(&'f ArrayView<'f>, u64)>> {
    let Some(entry) = file.entry(key) else {
        return Ok(None);
    };
    match file.get::<&ArrayView>(key)? {
        Some(a) => Ok(Some((a, entry.offset))),
        None => Ok(None),
    }
}

fn wrong_elements(key: &str, offset: u64, expected: &'static str, a: &ArrayView<'_>) -> Error {
    Error::WrongKeyType {
        key: key.to_owned(),
        offset,
        expected,
        found: format!("ARRAY of {} {}", a.len(), a.elem_type()),
    }
}

fn read_strings(file: &GgufFile<'_>, key: &str) -> Result<Option<Vec<String>>> {
    let Some((a, offset)) = array(file, key)? else {
        return Ok(None);
    };
    let strings = a
        .strings()
        .ok_or_else(|| wrong_elements(key, offset, "ARRAY of STRING", a))?;
    Ok(Some(strings.iter().map(|s| (*s).to_owned()).collect()))
}

fn read_ints(file: &GgufFile<'_>, key: &str) -> Result<Option<Vec<i32>>> {
    let Some((a, offset)) = array(file, key)? else {
        return Ok(None);
    };
    if a.elem_type() != ValueType::I32 {
        return Err(wrong_elements(key, offset, "ARRAY of INT32", a));
    }
    let values = a
        .iter()
        .map(|v| match v {
            Value::I32(x) => Ok(x),
            _ => Err(wrong_elements(key, offset, "ARRAY of INT32", a)),
        })
        .collect::<Result<Vec<i32>>>()?;
    Ok(Some(values))
}

/// Scores are FLOAT32; llama.cpp also reads INT32 scores, and so does this.
fn read_scores(file: &GgufFile<'_>) -> Result<Option<Vec<f32>>> {
    const EXPECTED: &str = "ARRAY of FLOAT32 or INT32";
    let Some((a, offset)) = array(file, KEY_SCORES)? else {
        return Ok(None);
    };
    if !matches!(a.elem_type(), ValueType::F32 | ValueType::I32) {
        return Err(wrong_elements(KEY_SCORES, offset, EXPECTED, a));
    }
    let values = a
        .iter()
        .map(|v| match v {
            Value::F32(x) => Ok(x),
            Value::I32(x) => Ok(x as f32),
            _ => Err(wrong_elements(KEY_SCORES, offset, EXPECTED, a)),
        })
        .collect::<Result<Vec<f32>>>()?;
    Ok(Some(values))
}
