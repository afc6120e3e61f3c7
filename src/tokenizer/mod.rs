//! Tokenizers from GGUF vocabularies, token-exact with llama.cpp: byte-level BPE
//! (`tokenizer.ggml.model = gpt2`, with the pre-tokenizer splits `tokenizer.ggml.pre`
//! names), SentencePiece-style BPE (`llama`: scores, `▁` spaces, byte fallback), WordPiece
//! (`bert`) and Gemma 4's ranked merges over `▁`-spaced text (`gemma4`).
//!
//! Text goes in as UTF-8 and token ids come out; ids go back to bytes with
//! [`Tokenizer::detokenize`], or to text as it streams with [`IncrementalDecoder`].
//! A [`Tokenizer`] copies what it needs from the model file and does not borrow it.

mod bpe;
mod byte_level;
mod byte_tokens;
mod decode;
mod detokenize;
mod encode;
mod end_of_generation;
mod gemma4;
mod incremental;
mod parts;
mod pretokenize;
mod special;
mod spm;
mod strip;
mod token_texts;
mod token_type;
mod unicode;
mod vocab;
mod wordpiece;

pub use incremental::IncrementalDecoder;
pub use parts::VocabParts;
pub use pretokenize::PreTokenizer;
pub use token_type::TokenType;
pub use vocab::{SpecialTokens, TokenId, Vocab};

use crate::error::{Error, Result};
use crate::gguf::GgufFile;
use bpe::MergeTable;
use decode::{Pieces, TextEncoding};
use gemma4::Gemma4Model;
use special::SpecialMatcher;
use spm::SpmModel;
use vocab::DefaultIds;
use wordpiece::WordPiece;

/// The tokenizer algorithms this crate implements.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TokenizerKind {
    /// Byte-level BPE (`gpt2`).
    BytePairGpt2,
    /// SentencePiece-style BPE with scores and byte fallback (`llama`).
    SentencePiece,
    /// WordPiece, longest tokens first (`bert`).
    WordPiece,
    /// Ranked merges over raw UTF-8 with `▁` spaces and byte fallback (`gemma4`).
    Gemma4,
}

#[derive(Debug, Clone)]
enum Algorithm {
    Bpe {
        merges: MergeTable,
        pre: PreTokenizer,
    },
    Spm {
        model: SpmModel,
    },
    WordPiece {
        model: WordPiece,
    },
    Gemma4 {
        model: Gemma4Model,
    },
}

/// A vocabulary ready to turn text into token ids and back.
#[derive(Debug, Clone)]
pub struct Tokenizer {
    vocab: Vocab,
    algorithm: Algorithm,
    specials: SpecialMatcher,
    pieces: Pieces,
    add_bos: bool,
    add_eos: bool,
    add_space_prefix: bool,
    clean_spaces: bool,
}

/// Tokenizer models llama.cpp knows that are not implemented here.
const UNSUPPORTED_MODELS: &[(&str, &str)] = &[
    ("t5", "Unigram"),
    ("rwkv", "RWKV"),
    ("plamo2", "PLaMo-2"),
    ("hybriddna", "DNA k-mer BPE"),
    ("whitespace", "whitespace BPE"),
    ("no_vocab", "no vocabulary"),
    ("none", "no vocabulary"),
    ("test", "test"),
];

impl Tokenizer {
    /// Builds the tokenizer that `file`'s `tokenizer.ggml.*` metadata describes.
    pub fn from_gguf(file: &GgufFile<'_>) -> Result<Tokenizer> {
        Tokenizer::from_parts(&VocabParts::from_gguf(file)?)
    }

    /// Builds a tokenizer from its parts, checking that they agree with each other.
    pub fn from_parts(parts: &VocabParts) -> Result<Tokenizer> {
        match parts.model.as_str() {
            "gpt2" => Tokenizer::byte_level(parts),
            "llama" => Tokenizer::sentencepiece(parts),
            "bert" => Tokenizer::wordpiece(parts),
            "gemma4" => Tokenizer::gemma4(parts),
            other => Err(Error::Unsupported(
                match UNSUPPORTED_MODELS.iter().find(|(name, _)| *name == other) {
                    Some((name, what)) => format!("tokenizer model '{name}' ({what})"),
                    None => format!("unknown tokenizer model '{other}'"),
                },
            )),
        }
    }

    fn byte_level(parts: &VocabParts) -> Result<Tokenizer> {
        let pre = PreTokenizer::for_name(parts.pre.as_deref())?;
        let vocab = Vocab::new(
            parts,
            DefaultIds {
                bos: Some(11),
                eos: Some(11),
                unk: None,
                sep: None,
            },
        )?;
        let merges = MergeTable::new(&vocab, &parts.merges)?;
        let pieces = Pieces::new(&vocab, TextEncoding::ByteLevel)?;
        Ok(Tokenizer {
            specials: SpecialMatcher::new(&vocab, strip::by_model_name(parts, &vocab)),
            add_bos: parts.add_bos.unwrap_or(pre.default_add_bos),
            add_eos: parts.add_eos.unwrap_or(false),
            add_space_prefix: parts.add_space_prefix.unwrap_or(false),
            clean_spaces: pre.clean_spaces,
            algorithm: Algorithm::Bpe { merges, pre },
            pieces,
            vocab,
        })
    }

    fn sentencepiece(parts: &VocabParts) -> Result<Tokenizer> {
        let vocab = Vocab::new(
            parts,
            DefaultIds {
                bos: Some(1),
                eos: Some(2),
                unk: Some(0),
                sep: None,
            },
        )?;
        let pieces = Pieces::new(&vocab, TextEncoding::SpaceMarked)?;
        Ok(Tokenizer {
            specials: SpecialMatcher::new(&vocab, strip::by_model_name(parts, &vocab)),
            add_bos: parts.add_bos.unwrap_or(true),
            add_eos: parts.add_eos.unwrap_or(false),
            add_space_prefix: parts.add_space_prefix.unwrap_or(true),
            clean_spaces: false,
            algorithm: Algorithm::Spm {
                model: SpmModel::new(&vocab),
            },
            pieces,
            vocab,
        })
    }

    /// llama.cpp's WordPiece (model `bert`). Tokenizing with `add_special` puts
    /// `[CLS]` (the BOS role, default id 101) before the text and `[SEP]` (default 102)
    /// after it, whatever the `add_*` flags say; `add_bos` still decides whether
    /// detokenizing drops a leading `[CLS]`. The BertNormalizer lowercases by default,
    /// and strips accents when it lowercases unless the file says otherwise.
    fn wordpiece(parts: &VocabParts) -> Result<Tokenizer> {
        let vocab = Vocab::new(
            parts,
            DefaultIds {
                bos: Some(101),
                eos: None,
                unk: Some(100),
                sep: Some(102),
            },
        )?;
        let pieces = Pieces::new(&vocab, TextEncoding::SpaceMarked)?;
        let lowercase = parts.lowercase.unwrap_or(true);
        let strip_accents = parts.strip_accents.unwrap_or(lowercase);
        Ok(Tokenizer {
            specials: SpecialMatcher::new(&vocab, strip::by_model_name(parts, &vocab)),
            add_bos: parts.add_bos.unwrap_or(true),
            add_eos: parts.add_eos.unwrap_or(false),
            add_space_prefix: parts.add_space_prefix.unwrap_or(false),
            clean_spaces: true,
            algorithm: Algorithm::WordPiece {
                model: WordPiece::new(&vocab, lowercase, strip_accents)?,
            },
            pieces,
            vocab,
        })
    }

    /// llama.cpp's Gemma 4 tokenizer. It always adds BOS (llama.cpp overrides a file
    /// that says otherwise) and cleans spaces when detokenizing, as its BPE does.
    fn gemma4(parts: &VocabParts) -> Result<Tokenizer> {
        let vocab = Vocab::new(
            parts,
            DefaultIds {
                bos: None,
                eos: None,
                unk: None,
                sep: None,
            },
        )?;
        let pieces = Pieces::new(&vocab, TextEncoding::SpaceMarked)?;
        Ok(Tokenizer {
            specials: SpecialMatcher::new(&vocab, strip::by_model_name(parts, &vocab)),
            add_bos: true,
            add_eos: parts.add_eos.unwrap_or(false),
            add_space_prefix: parts.add_space_prefix.unwrap_or(false),
            clean_spaces: true,
            algorithm: Algorithm::Gemma4 {
                model: Gemma4Model::new(&vocab, &parts.merges)?,
            },
            pieces,
            vocab,
        })
    }

    pub fn kind(&self) -> TokenizerKind {
        match self.algorithm {
            Algorithm::Bpe { .. } => TokenizerKind::BytePairGpt2,
            Algorithm::Spm { .. } => TokenizerKind::SentencePiece,
            Algorithm::WordPiece { .. } => TokenizerKind::WordPiece,
            Algorithm::Gemma4 { .. } => TokenizerKind::Gemma4,
        }
    }

    /// The pre-tokenizer of a byte-level BPE vocabulary.
    pub fn pre_tokenizer(&self) -> Option<&PreTokenizer> {
        match &self.algorithm {
            Algorithm::Bpe { pre, .. } => Some(pre),
            _ => None,
        }
    }

    pub fn vocab(&self) -> &Vocab {
        &self.vocab
    }

    pub fn n_tokens(&self) -> usize {
        self.vocab.len()
    }

    pub fn specials(&self) -> &SpecialTokens {
        self.vocab.specials()
    }

    /// The texts of the BOS and EOS tokens ("" for one the vocabulary lacks): what a chat
    /// template's `bos_token` and `eos_token` say.
    pub fn bos_eos_texts(&self) -> (&str, &str) {
        let text = |id: Option<TokenId>| id.and_then(|id| self.vocab.text(id)).unwrap_or_default();
        let specials = self.specials();
        (text(specials.bos), text(specials.eos))
    }

    /// Whether tokenizing with `add_special` starts with BOS.
    pub fn add_bos(&self) -> bool {
        self.add_bos
    }

    /// Whether tokenizing with `add_special` ends with EOS.
    pub fn add_eos(&self) -> bool {
        self.add_eos
    }

    /// Whether SentencePiece text gets a leading space (and detokenizing drops it).
    pub fn add_space_prefix(&self) -> bool {
        self.add_space_prefix
    }

    /// A streaming decoder over this vocabulary.
    pub fn decoder(&self, render_special: bool) -> IncrementalDecoder<'_> {
        IncrementalDecoder::new(self, render_special)
    }
}
