//! Structured output: sampling constrained to a JSON Schema, a regular expression or a
//! Lark-style grammar, with llguidance (the constrained-decoding engine llama.cpp, vLLM
//! and SGLang use).
//!
//! A [`Grammar`] is checked when a sampler is made, before any model is known. Its
//! first sample on a context binds it to that model's [`GrammarVocabulary`] (built once
//! per model) as a [`Constraint`]: the tokens the grammar allows next, as a mask over the
//! vocabulary, computed on a helper thread while the host decodes the token just drawn.

mod constraint;
mod mask_worker;
mod vocabulary;

pub use constraint::Constraint;
pub use vocabulary::GrammarVocabulary;

use crate::error::{Error, Result};
use llguidance::api::{GrammarInit, ParserLimits, TopLevelGrammar};
use std::fmt;

/// The languages a grammar may be written in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GrammarKind {
    /// A JSON Schema (draft 2020-12 subset): the output is JSON valid against it, on one
    /// line with `, ` and `: ` separators unless the schema's `x-guidance` object (see
    /// llguidance's JSON options) says otherwise: whitespace left free lets a model pad
    /// an object with blank lines until it runs out of tokens.
    JsonSchema,
    /// A regular expression (Rust `regex` syntax) the whole output matches.
    Regex,
    /// llguidance's Lark-style context-free grammar, starting at rule `start`.
    Lark,
}

impl fmt::Display for GrammarKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            GrammarKind::JsonSchema => "JSON Schema",
            GrammarKind::Regex => "regular expression",
            GrammarKind::Lark => "Lark grammar",
        })
    }
}

/// A grammar that compiles: what a sampler keeps until its first context gives it a
/// vocabulary.
#[derive(Clone, Debug)]
pub struct Grammar {
    kind: GrammarKind,
    top_level: TopLevelGrammar,
}

impl Grammar {
    /// Compiles `text` as a `kind` grammar; an invalid one is `InvalidArgument` with
    /// llguidance's message.
    pub fn new(kind: GrammarKind, text: &str) -> Result<Grammar> {
        let invalid = |message: String| {
            let message = bounded(&message);
            Error::InvalidArgument(format!("the {kind} is invalid: {message}"))
        };
        let top_level = match kind {
            GrammarKind::JsonSchema => {
                let mut schema: serde_json::Value =
                    serde_json::from_str(text).map_err(|e| invalid(format!("not JSON: {e}")))?;
                if let Some(schema) = schema.as_object_mut() {
                    schema.entry("x-guidance").or_insert_with(|| {
                        serde_json::json!({
                            "whitespace_flexible": false,
                            "item_separator": ", ",
                            "key_separator": ": ",
                        })
                    });
                }
                TopLevelGrammar::from_json_schema(schema)
            }
            GrammarKind::Regex => TopLevelGrammar::from_regex(text),
            GrammarKind::Lark => TopLevelGrammar::from_lark(text.to_owned()),
        };
        let checked =
            GrammarInit::Serialized(top_level.clone()).validate(None, ParserLimits::default());
        match checked.into_error() {
            Some(message) => Err(invalid(message)),
            None => Ok(Grammar { kind, top_level }),
        }
    }

    pub fn kind(&self) -> GrammarKind {
        self.kind
    }
}

/// The most characters of llguidance's message an error keeps: its messages can quote the
/// host's whole grammar (a regular expression's syntax error shows the pattern), and an
/// error message is kept per thread until the next failure.
const MESSAGE_CHARS: usize = 1000;

/// `message`, cut to [`MESSAGE_CHARS`] characters with the cut marked.
fn bounded(message: &str) -> String {
    match message.char_indices().nth(MESSAGE_CHARS) {
        Some((end, _)) => format!(
            "{} [... {} more bytes]",
            &message[..end],
            message.len() - end
        ),
        None => message.to_owned(),
    }
}

/// llguidance's reason for a failure while generating: the first line of its message,
/// without the parser state it dumps after it, [`bounded`].
fn reason(message: &str) -> String {
    bounded(message.lines().next().unwrap_or_default())
}

/// Keeps in `scores` ([n_vocab] logits) only what `allowed` permits: a forbidden token
/// gets -inf, and an allowed one at -inf is raised to the lowest finite logit, so an
/// allowed token always outranks a forbidden one, even when the model rules out every
/// token the grammar permits. Tokens past the mask's end (rows the vocabulary does not
/// name) are forbidden.
pub fn mask_scores(allowed: &llguidance::toktrie::SimpleVob, scores: &mut [f32]) {
    let n_allowed = allowed.len().min(scores.len());
    for (id, score) in scores[..n_allowed].iter_mut().enumerate() {
        if !allowed.is_allowed(id as u32) {
            *score = f32::NEG_INFINITY;
        } else if *score == f32::NEG_INFINITY {
            *score = f32::MIN;
        }
    }
    scores[n_allowed..].fill(f32::NEG_INFINITY);
}
