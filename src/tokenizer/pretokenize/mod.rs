//! Pre-tokenization for byte-level BPE: the text is cut into words before merging, by the
//! splits that `tokenizer.ggml.pre` names. Each split is a chain of stages; every stage
//! cuts each piece of the stage before it, as llama.cpp applies its regex list.

mod deepseek;
mod gpt2;
mod llama3;
mod runs;
mod text;

pub use text::{CodepointText, Span};

use crate::error::{Error, Result};
use runs::Pattern;

/// One split stage.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Stage {
    Gpt2,
    /// Llama 3's split; numbers in groups of this many digits, combining marks letters
    /// (Qwen 3.5's `[\p{L}\p{M}]+`) or not.
    Llama3 {
        digit_group: usize,
        marks_are_letters: bool,
    },
    Regex(Pattern),
}

/// The splits of one `tokenizer.ggml.pre` value, and the other settings llama.cpp ties to
/// that name.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PreTokenizer {
    name: String,
    stages: Vec<Stage>,
    /// A word that is a whole token is taken as is, without merging (Llama 3).
    pub ignore_merges: bool,
    /// Whether detokenizing tidies spaces before punctuation (`clean_up_tokenization_spaces`).
    pub clean_spaces: bool,
    /// Whether the vocabulary adds BOS when the model does not say.
    pub default_add_bos: bool,
}

const GPT2: &[Stage] = &[Stage::Gpt2];
const DIGITS_THEN_GPT2: &[Stage] = &[Stage::Regex(Pattern::EachNumber), Stage::Gpt2];
const LLAMA3: &[Stage] = &[Stage::Llama3 {
    digit_group: 3,
    marks_are_letters: false,
}];
const QWEN2: &[Stage] = &[Stage::Llama3 {
    digit_group: 1,
    marks_are_letters: false,
}];
const QWEN35: &[Stage] = &[Stage::Llama3 {
    digit_group: 1,
    marks_are_letters: true,
}];
const DEFAULT: &[Stage] = &[
    Stage::Regex(Pattern::PunctuationRun { backtick: false }),
    Stage::Gpt2,
    Stage::Regex(Pattern::NumberRun),
    Stage::Regex(Pattern::AsciiDigitTriple),
];
const FALCON: &[Stage] = &[
    Stage::Regex(Pattern::PunctuationRun { backtick: true }),
    Stage::Gpt2,
    Stage::Regex(Pattern::AsciiDigitTriple),
];
const DEEPSEEK_LLM: &[Stage] = &[
    Stage::Regex(Pattern::EachNewline),
    Stage::Regex(Pattern::SpaceThenRun(deepseek::LETTERS)),
    Stage::Regex(Pattern::SpaceThenRun(deepseek::PUNCTUATION)),
    Stage::Regex(Pattern::TrailingWhitespace),
    Stage::Regex(Pattern::Run(deepseek::CJK)),
    Stage::Regex(Pattern::NumberRun),
];

const DEEPSEEK_CODER: &[Stage] = &[
    Stage::Regex(Pattern::EachNewline),
    Stage::Regex(Pattern::SpaceThenLetters),
    Stage::Regex(Pattern::SpaceThenPunctuation),
    Stage::Regex(Pattern::Run(deepseek::CJK)),
    Stage::Regex(Pattern::EachNumber),
];

/// Names llama.cpp knows whose splits this crate does not implement.
const KNOWN_UNSUPPORTED: &[&str] = &[
    "minicpm5",
    "deepseek-v3",
    "spark2_5",
    "youtu",
    "jais-2",
    "gemma4",
    "granite-embed-multi-311m",
    "sarvam-moe",
    "whitespace",
    "poro-chat",
    "chatglm-bpe",
    "glm4",
    "glm5",
    "viking",
    "tekken",
    "bloom",
    "gpt3-finnish",
    "exaone-moe",
    "chameleon",
    "gpt-4o",
    "llama4",
    "kanana2",
    "talkie",
    "granite-embed-multi-97m",
    "tiny_aya",
    "cohere2moe",
    "superbpe",
    "bailingmoe",
    "bailingmoe2",
    "llada-moe",
    "seed-coder",
    "hunyuan-dense",
    "hy_v4",
    "joyai-llm",
    "kimi-k2",
    "ufakzeka",
    "afmoe",
    "laguna",
    "minimax-m2",
];

impl PreTokenizer {
    /// The pre-tokenizer llama.cpp selects for `name` (`None`: the key is absent, which
    /// llama.cpp reads as `default`).
    pub fn for_name(name: Option<&str>) -> Result<PreTokenizer> {
        let name = name.unwrap_or("default");
        // (stages, clean_spaces, ignore_merges and default add_bos)
        let (stages, clean_spaces, llama3_family) = match name {
            "default" => (DEFAULT, true, false),
            "llama3" | "llama-v3" | "llama-bpe" | "falcon3" | "falcon-h1" | "pixtral"
            | "midm-2.0" | "lfm2" | "jina-v5-nano" => (LLAMA3, true, true),
            "dbrx" | "smaug-bpe" => (LLAMA3, true, false),
            "deepseek-llm" => (DEEPSEEK_LLM, false, false),
            "deepseek-coder" => (DEEPSEEK_CODER, false, false),
            "falcon" => (FALCON, true, false),
            "gpt-2" | "phi-2" | "jina-es" | "jina-de" | "gigachat" | "jina-v2-es"
            | "jina-v2-de" | "a.x-4.0" | "mellum" | "modern-bert" | "jina-v1-en"
            | "jina-v2-code" | "roberta-bpe" | "mpt" | "olmo" | "jais" | "exaone4" => {
                (GPT2, true, false)
            }
            "trillion" | "granite-docling" => (GPT2, false, false),
            "starcoder" | "refact" | "codeshell" | "exaone" | "minerva-7b" | "mellum2" => {
                (DIGITS_THEN_GPT2, true, false)
            }
            "smollm" | "command-r" => (DIGITS_THEN_GPT2, false, false),
            "qwen2" | "deepseek-r1-qwen" | "kormo" | "f2llmv2" | "hunyuan" | "solar-open"
            | "grok-2" => (QWEN2, false, false),
            "stablelm2" | "megrez" => (QWEN2, true, false),
            "qwen35" => (QWEN35, false, false),
            other if KNOWN_UNSUPPORTED.contains(&other) => {
                return Err(Error::Unsupported(format!(
                    "pre-tokenizer '{other}' (tokenizer.ggml.pre)"
                )));
            }
            other => {
                return Err(Error::Unsupported(format!(
                    "unknown pre-tokenizer '{other}' (tokenizer.ggml.pre)"
                )));
            }
        };
        Ok(PreTokenizer {
            name: name.to_owned(),
            stages: stages.to_vec(),
            ignore_merges: llama3_family,
            clean_spaces,
            default_add_bos: llama3_family,
        })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// Cuts the loaded text into words, passing each to `emit` in order.
    pub fn split(&self, text: &CodepointText, emit: &mut dyn FnMut(Span)) {
        if !text.is_empty() {
            run_stages(&self.stages, text, text.whole(), emit);
        }
    }
}

fn run_stages(stages: &[Stage], text: &CodepointText, chunk: Span, emit: &mut dyn FnMut(Span)) {
    let Some((first, rest)) = stages.split_first() else {
        emit(chunk);
        return;
    };
    let next = &mut |piece: Span| run_stages(rest, text, piece, emit);
    match *first {
        Stage::Gpt2 => gpt2::split(text, chunk, next),
        Stage::Llama3 {
            digit_group,
            marks_are_letters,
        } => llama3::split(text, chunk, digit_group, marks_are_letters, next),
        Stage::Regex(pattern) => runs::split(text, chunk, pattern, next),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(pre: &str, s: &str) -> Vec<String> {
        let pre = PreTokenizer::for_name(Some(pre)).expect("known name");
        let mut text = CodepointText::default();
        text.load(s).expect("a short text fits");
        let mut out = Vec::new();
        pre.split(&text, &mut |span| {
            out.push(s[text.byte_range(span)].to_owned())
        });
        out
    }

    #[test]
    fn gpt2_words() {
        assert_eq!(
            words("gpt-2", "Hello  world's 123 !!"),
            ["Hello", " ", " world", "'s", " 123", " !!"]
        );
        assert_eq!(words("gpt-2", "a \n"), ["a", " \n"]);
        assert_eq!(words("gpt-2", "x   "), ["x", "   "]);
    }

    #[test]
    fn smollm_isolates_each_digit() {
        assert_eq!(words("smollm", "ab 123"), ["ab", " ", "1", "2", "3"]);
    }

    #[test]
    fn default_splits_punctuation_and_digit_triples() {
        assert_eq!(
            words("default", "a+b 12345"),
            ["a", "+", "b", " ", "123", "45"]
        );
    }

    #[test]
    fn llama3_words() {
        assert_eq!(
            words("llama-bpe", "I'M here 12345\n\n ok?!\n"),
            ["I", "'M", " here", " ", "123", "45", "\n\n", " ok", "?!\n"]
        );
        assert_eq!(words("qwen2", "a12"), ["a", "1", "2"]);
    }

    #[test]
    fn deepseek_llm_words() {
        assert_eq!(
            words("deepseek-llm", "Hi 你好, 12\n"),
            ["Hi", " ", "你好", ",", " ", "12", "\n"]
        );
    }

    #[test]
    fn unsupported_names_are_refused() {
        assert!(matches!(
            PreTokenizer::for_name(Some("tekken")),
            Err(Error::Unsupported(m)) if m.contains("tekken")
        ));
        assert!(matches!(
            PreTokenizer::for_name(Some("no-such-split")),
            Err(Error::Unsupported(m)) if m.contains("no-such-split")
        ));
    }
}
