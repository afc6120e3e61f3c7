//! Which tokens end a generation: the vocabulary's EOS, EOT and EOM, and the control
//! tokens that llama.cpp treats the same way by their text (chat formats mark a turn's
//! end with their own token, which the file may not name as EOS).

use super::Tokenizer;
use super::token_type::TokenType;
use super::vocab::TokenId;

/// Texts of control tokens that end generation (llama.cpp's end-of-generation list).
const END_OF_GENERATION_TEXTS: &[&str] = &[
    "<|eot_id|>",
    "<|im_end|>",
    "<|end|>",
    "<end_of_turn>",
    "<|endoftext|>",
    "<|eom_id|>",
    "<EOT>",
    "_<EOT>",
    "<|end_of_text|>",
    "<｜end▁of▁sentence｜>",
    "<|return|>",
    "<|call|>",
];

impl Tokenizer {
    pub fn is_end_of_generation(&self, id: TokenId) -> bool {
        // llama.cpp takes this `</s>` off its list even where it is the EOS.
        if self.vocab.plain_s == Some(id) {
            return false;
        }
        let s = self.vocab.specials;
        if [s.eos, s.eot, s.eom].contains(&Some(id)) {
            return true;
        }
        self.vocab.token_type(id) == Some(TokenType::Control)
            && self
                .vocab
                .text(id)
                .is_some_and(|text| END_OF_GENERATION_TEXTS.contains(&text))
    }
}
