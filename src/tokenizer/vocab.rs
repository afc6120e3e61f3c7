//! The checked vocabulary: token texts, types and scores, the text-to-id index, the
//! special token ids and the flags that say what tokenizing adds.

use super::end_of_generation::{FimIds, end_of_generation, made_control};
use super::parts::VocabParts;
use super::token_texts::TokenTexts;
use super::token_type::TokenType;
use crate::error::{Error, Result};
use crate::host_memory;

/// A token id.
pub type TokenId = u32;

/// The ids of the tokens with a role; `None` where the vocabulary has none.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SpecialTokens {
    pub bos: Option<TokenId>,
    pub eos: Option<TokenId>,
    pub eot: Option<TokenId>,
    pub eom: Option<TokenId>,
    pub unk: Option<TokenId>,
    pub sep: Option<TokenId>,
    pub pad: Option<TokenId>,
}

#[derive(Debug, Clone)]
pub struct Vocab {
    texts: TokenTexts,
    types: Vec<TokenType>,
    scores: Vec<f32>,
    pub(crate) specials: SpecialTokens,
    /// The tokens that end a generation, sorted (see [`super::end_of_generation`]).
    pub(crate) end_of_generation: Box<[TokenId]>,
}

/// Token texts that llama.cpp always treats as control tokens, whatever type the file
/// gives them: their type decides how text is matched and decoded. These are the
/// fill-in-the-middle prefix, suffix and middle markers; the end-of-generation texts and
/// the FIM pad, repository and separator markers are made control too
/// ([`super::end_of_generation::made_control`]). Deciding the end of generation can then
/// make `</s>` normal and `<|end|>` user-defined.
const FIM_MARKERS: &[&str] = &[
    "<|fim_prefix|>",
    "<fim-prefix>",
    "<fim_prefix>",
    "<｜fim▁begin｜>",
    "<PRE>",
    "▁<PRE>",
    "<|code_prefix|>",
    "<|prefix|>",
    "<|fim_suffix|>",
    "<fim-suffix>",
    "<fim_suffix>",
    "<｜fim▁hole｜>",
    "<SUF>",
    "▁<SUF>",
    "<|code_suffix|>",
    "<|suffix|>",
    "<|fim_middle|>",
    "<fim-middle>",
    "<fim_middle>",
    "<｜fim▁end｜>",
    "<MID>",
    "▁<MID>",
    "<|code_middle|>",
    "<|middle|>",
];

/// Texts llama.cpp makes user-defined whatever the file says (gpt-oss), so they are
/// matched in text even without special parsing.
const USER_DEFINED_BY_NAME: &[&str] = &["<|channel|>", "<|message|>", "<|start|>", "<|constrain|>"];

/// End-of-turn token texts, in the order they are looked for when the file names none
/// (llama.cpp takes the first it meets in its hash map; EOM's only text is `<|eom_id|>`).
const EOT_NAMES: &[&str] = &[
    "<|eot_id|>",
    "<|im_end|>",
    "<|end|>",
    "<end_of_turn>",
    "<|endoftext|>",
    "<|end_of_text|>",
    "<EOT>",
    "_<EOT>",
    "[EOT]",
    "<｜end▁of▁sentence｜>",
    "<end_of_utterance>",
];

/// The roles' ids before the file's keys apply, per tokenizer model (llama.cpp's).
pub struct DefaultIds {
    pub bos: Option<TokenId>,
    pub eos: Option<TokenId>,
    pub unk: Option<TokenId>,
    pub sep: Option<TokenId>,
}

impl Vocab {
    /// Checks and indexes the token list of `parts`.
    pub fn new(parts: &VocabParts, defaults: DefaultIds) -> Result<Vocab> {
        let n = parts.tokens.len();
        if n == 0 {
            return Err(Error::InvalidVocab("the token list is empty".into()));
        }
        let n_u32 = u32::try_from(n)
            .map_err(|_| Error::InvalidVocab(format!("{n} tokens do not fit 32-bit ids")))?;
        if let Some(declared) = parts.declared_vocab_size {
            if declared != n as u64 {
                return Err(Error::InvalidVocab(format!(
                    "the model declares a vocabulary of {declared} tokens, the token list has {n}"
                )));
            }
        }
        check_len("token_type", parts.token_types.as_ref().map(Vec::len), n)?;
        check_len("scores", parts.scores.as_ref().map(Vec::len), n)?;

        let bytes = parts.tokens.iter().map(String::len).sum();
        // `push` numbers the texts from 0: n_u32 above says their ids fit TokenId.
        let mut texts = TokenTexts::with_capacity(n, bytes)?;
        for (i, text) in parts.tokens.iter().enumerate() {
            // llama.cpp renames empty tokens so that they can never match.
            let renamed;
            let text = if text.is_empty() {
                renamed = format!("[EMPTY_{i}]");
                &renamed
            } else {
                text
            };
            if let Some(first) = texts.push(text) {
                return Err(Error::InvalidVocab(format!(
                    "tokens {first} and {i} are both {text:?}"
                )));
            }
        }

        let mut types = host_memory::filled_vec(n, TokenType::Normal, "the vocabulary's types")?;
        if let Some(raw) = &parts.token_types {
            for (ty, &t) in types.iter_mut().zip(raw) {
                *ty = TokenType::from_raw(t.into());
            }
        }
        for (text, ty) in texts.iter().zip(types.iter_mut()) {
            if FIM_MARKERS.contains(&text) || made_control(text) {
                *ty = TokenType::Control;
            } else if USER_DEFINED_BY_NAME.contains(&text) {
                *ty = TokenType::UserDefined;
            }
        }
        let mut scores = host_memory::filled_vec(n, 0.0, "the vocabulary's scores")?;
        if let Some(s) = &parts.scores {
            if let Some(i) = s.iter().position(|x| x.is_nan()) {
                return Err(Error::InvalidVocab(format!("token {i} has a NaN score")));
            }
            scores.copy_from_slice(s);
        }

        let role = |name: &str, value: Option<u32>, default: Option<u32>| match value {
            Some(id) if id >= n_u32 => Err(Error::InvalidVocab(format!(
                "{name} token id {id} is outside the vocabulary of {n} tokens"
            ))),
            Some(id) => Ok(Some(id)),
            // A default that the vocabulary does not reach is no token at all.
            None => Ok(default.filter(|&id| id < n_u32)),
        };
        let mut specials = SpecialTokens {
            bos: role("BOS", parts.bos, defaults.bos)?,
            eos: role("EOS", parts.eos, defaults.eos)?,
            eot: role("EOT", parts.eot, None)?,
            eom: role("EOM", parts.eom, None)?,
            unk: role("UNK", parts.unk, defaults.unk)?,
            sep: role("SEP", parts.sep, defaults.sep)?,
            pad: role("PAD", parts.pad, None)?,
        };
        if specials.eot.is_none() {
            specials.eot = EOT_NAMES.iter().find_map(|t| texts.id_of(t.as_bytes()));
        }
        if specials.eom.is_none() {
            specials.eom = texts.id_of(b"<|eom_id|>");
        }
        let fim = FimIds {
            pad: role("FIM PAD", parts.fim_pad, None)?,
            rep: role("FIM REP", parts.fim_rep, None)?,
            sep: role("FIM SEP", parts.fim_sep, None)?,
        };
        let eog = end_of_generation(|t| texts.id_of(t.as_bytes()), &specials, &fim);
        for &(id, ty) in &eog.retyped {
            types[id as usize] = ty;
        }
        Ok(Vocab {
            texts,
            types,
            scores,
            specials,
            end_of_generation: eog.ids,
        })
    }

    pub fn len(&self) -> usize {
        self.texts.len()
    }

    pub fn is_empty(&self) -> bool {
        self.texts.is_empty()
    }

    /// The token whose text is exactly `text`.
    #[inline]
    pub fn id_of(&self, text: &[u8]) -> Option<TokenId> {
        self.texts.id_of(text)
    }

    /// The text of `id` as stored in the vocabulary.
    pub fn text(&self, id: TokenId) -> Option<&str> {
        self.texts.get(id)
    }

    pub fn token_type(&self, id: TokenId) -> Option<TokenType> {
        self.types.get(id as usize).copied()
    }

    pub fn score(&self, id: TokenId) -> Option<f32> {
        self.scores.get(id as usize).copied()
    }

    pub fn specials(&self) -> &SpecialTokens {
        &self.specials
    }

    /// Every (id, text, type), in id order.
    pub fn iter(&self) -> impl Iterator<Item = (TokenId, &str, TokenType)> + '_ {
        self.texts
            .iter()
            .zip(&self.types)
            .enumerate()
            .map(|(i, (t, &ty))| (i as TokenId, t, ty))
    }
}

fn check_len(what: &str, len: Option<usize>, n: usize) -> Result<()> {
    match len {
        Some(len) if len != n => Err(Error::InvalidVocab(format!(
            "{n} tokens but {len} entries in tokenizer.ggml.{what}"
        ))),
        _ => Ok(()),
    }
}
