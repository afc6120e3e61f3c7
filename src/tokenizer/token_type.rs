//! What a vocabulary entry is, as `tokenizer.ggml.token_type` declares it.

/// The GGUF token types (llama.cpp's `llama_token_type`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum TokenType {
    /// 0, or any value outside the known ones: never written out when decoding.
    Undefined,
    /// Ordinary text.
    Normal,
    /// The unknown-token marker.
    Unknown,
    /// Control tokens (`<|im_start|>`, `<bos>`): text only with special parsing.
    Control,
    /// Tokens added by the model's authors; always matched in the text before splitting.
    UserDefined,
    /// Reserved slots.
    Unused,
    /// SentencePiece byte fallback `<0xNN>`.
    Byte,
}

impl TokenType {
    /// The type of a raw `token_type` value. llama.cpp reads unknown values as undefined,
    /// and so does this.
    pub fn from_raw(value: i64) -> TokenType {
        match value {
            1 => TokenType::Normal,
            2 => TokenType::Unknown,
            3 => TokenType::Control,
            4 => TokenType::UserDefined,
            5 => TokenType::Unused,
            6 => TokenType::Byte,
            _ => TokenType::Undefined,
        }
    }

    /// Written out only when special tokens are rendered.
    pub fn is_hidden_unless_special(self) -> bool {
        matches!(self, TokenType::Control | TokenType::Unknown)
    }

    /// Found in the raw text before pre-tokenization: user-defined tokens always, control
    /// and unknown tokens with special parsing.
    pub fn is_matched_in_text(self) -> bool {
        matches!(
            self,
            TokenType::Control | TokenType::Unknown | TokenType::UserDefined
        )
    }
}
