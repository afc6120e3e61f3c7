//! Which tokens end a generation. Chat formats end a turn with a token of their own that
//! the file may not name as EOS, so llama.cpp goes by token text as well as by the file's
//! ids. This builds the same set as its `special_eog_ids` (`llama_vocab::impl::load` in
//! src/llama-vocab.cpp at 0c1e57098bba43ac29e6e3b677cdceebdd22334f, the llama.cpp of
//! llama-cpp-python 0.3.36 that the tokenizer fixtures come from), once, when the
//! vocabulary loads.

use super::Tokenizer;
use super::token_type::TokenType;
use super::vocab::{SpecialTokens, TokenId};

/// Texts that end generation wherever they are tokens. llama.cpp checks the text alone,
/// then makes the token a control token (so does [`super::vocab`]).
const END_OF_GENERATION_TEXTS: &[&str] = &[
    "<|eot_id|>",
    "<|im_end|>",
    "<|end|>",
    "<|return|>",
    "<|call|>",
    "<|flush|>",
    "<|calls|>",
    "<end_of_turn>",
    "<|endoftext|>",
    "</s>",
    "<|eom_id|>",
    "<EOT>",
    "_<EOT>",
    "[EOT]",
    "[EOS]",
    "<|end_of_text|>",
    "<end_of_utterance>",
    "<eos>",
    "<turn|>",
    "<|tool_response>",
    "<｜end▁of▁sentence｜>",
    "[e~[",
];

/// The fill-in-the-middle pad, repository and file-separator tokens end generation too.
/// Where the file names none, llama.cpp takes the first token with one of these texts that
/// it meets in its hash map, an order that differs between C++ libraries; where a
/// vocabulary has two of one role's texts, this takes the one listed first.
const FIM_PAD_TEXTS: &[&str] = &["<|fim_pad|>", "<fim-pad>", "<fim_pad>", "<PAD>", "[PAD]"];
const FIM_REP_TEXTS: &[&str] = &[
    "<|fim_repo|>",
    "<|repo_name|>",
    "<fim-repo>",
    "<REPO>",
    "<reponame>",
];
const FIM_SEP_TEXTS: &[&str] = &["<|file_sep|>"];

/// Whether llama.cpp makes a token of this text a control token on account of ending
/// generation: a listed text, or a FIM pad, repository or separator text.
pub(super) fn made_control(text: &str) -> bool {
    [
        END_OF_GENERATION_TEXTS,
        FIM_PAD_TEXTS,
        FIM_REP_TEXTS,
        FIM_SEP_TEXTS,
    ]
    .iter()
    .any(|texts| texts.contains(&text))
}

/// The FIM ids the file names (`tokenizer.ggml.fim_{pad,rep,sep}_token_id`).
pub(super) struct FimIds {
    pub pad: Option<TokenId>,
    pub rep: Option<TokenId>,
    pub sep: Option<TokenId>,
}

pub(super) struct EndOfGeneration {
    /// Sorted, each id once.
    pub ids: Box<[TokenId]>,
    /// Tokens whose type llama.cpp changes when it takes them off the list.
    pub retyped: Vec<(TokenId, TokenType)>,
}

/// The FIM ids, the listed texts and the EOS, EOT and EOM whatever their text; then, as
/// llama.cpp does after adding the EOS, two tokens come off again, even as the EOS.
pub(super) fn end_of_generation(
    id_of: impl Fn(&str) -> Option<TokenId>,
    specials: &SpecialTokens,
    fim: &FimIds,
) -> EndOfGeneration {
    let named_or_found = |named: Option<TokenId>, texts: &[&str]| {
        named.or_else(|| texts.iter().find_map(|t| id_of(t)))
    };
    let mut ids: Vec<TokenId> = [
        named_or_found(fim.pad, FIM_PAD_TEXTS),
        named_or_found(fim.rep, FIM_REP_TEXTS),
        named_or_found(fim.sep, FIM_SEP_TEXTS),
        specials.eos,
        specials.eot,
        specials.eom,
    ]
    .into_iter()
    .flatten()
    .chain(END_OF_GENERATION_TEXTS.iter().filter_map(|t| id_of(t)))
    .collect();
    ids.sort_unstable();
    ids.dedup();

    let mut retyped = Vec::new();
    let mut take_off = |ids: &mut Vec<TokenId>, id: TokenId, ty: TokenType| {
        ids.retain(|&x| x != id);
        retyped.push((id, ty));
    };
    let listed = |ids: &[TokenId], text: &str| id_of(text).filter(|id| ids.contains(id));
    // gpt-oss (`<|return|>`, `<|call|>`) and Solar Open (`<|calls|>`, `<|flush|>`) end a
    // message with `<|end|>` and go on: llama.cpp takes it off and makes it user-defined,
    // so it is matched in text and always written out.
    let call = listed(&ids, "<|call|>")
        .or(listed(&ids, "<|calls|>"))
        .is_some();
    let return_or_flush = listed(&ids, "<|return|>")
        .or(listed(&ids, "<|flush|>"))
        .is_some();
    if let Some(end) = listed(&ids, "<|end|>").filter(|_| call && return_or_flush) {
        take_off(&mut ids, end, TokenType::UserDefined);
    }
    // Gemma 4's and PLaMo's `</s>` is ordinary text: where `<|tool_response>` or
    // `<|plamo:eos|>` is on the list, llama.cpp takes `</s>` off, even as the EOS, and makes
    // it a normal token.
    let marker = listed(&ids, "<|tool_response>").or(listed(&ids, "<|plamo:eos|>"));
    if let Some(s) = listed(&ids, "</s>").filter(|_| marker.is_some()) {
        take_off(&mut ids, s, TokenType::Normal);
    }
    EndOfGeneration {
        ids: ids.into(),
        retyped,
    }
}

impl Tokenizer {
    /// Whether sampling `id` ends the generation (llama.cpp's `llama_vocab_is_eog`).
    pub fn is_end_of_generation(&self, id: TokenId) -> bool {
        self.vocab.end_of_generation.binary_search(&id).is_ok()
    }
}
