//! The tiny models' vocabulary: byte-level BPE (GPT-2's alphabet) with every byte, a few
//! merges and an end-of-text control token, so any text tokenizes and the token count is
//! not a round number.

use rocmforge::gguf::{GgufFile, GgufWriter, OwnedValue};
use rocmforge::tokenizer::Tokenizer;

/// Merges in rank order: each joins two tokens into a token of the vocabulary.
const MERGES: [(&str, &str); 8] = [
    ("t", "h"),
    ("th", "e"),
    ("Ġ", "the"),
    ("i", "n"),
    ("Ġ", "t"),
    ("e", "r"),
    ("Ġ", "a"),
    ("o", "n"),
];

const END_OF_TEXT: &str = "<|endoftext|>";

/// The 256 byte tokens, the merges' results and the end-of-text token.
pub const N_TOKENS: u64 = 256 + MERGES.len() as u64 + 1;

/// GGUF token types: normal text and control.
const NORMAL: i32 = 1;
const CONTROL: i32 = 3;

/// The character GPT-2's byte-level alphabet writes for `byte`: printable Latin-1 bytes
/// stand for themselves, the other 68 take the code points from U+0100 up, in byte order.
fn byte_char(byte: u8) -> char {
    let self_mapped = |b: u8| matches!(b, 0x21..=0x7E | 0xA1..=0xAC | 0xAE..=0xFF);
    if self_mapped(byte) {
        return char::from(byte);
    }
    let shifted = (0..byte).filter(|&b| !self_mapped(b)).count() as u32;
    char::from_u32(256 + shifted).expect("U+0100 to U+0143 are characters")
}

/// The tokenizer metadata of the tiny models.
pub fn metadata() -> Vec<(&'static str, OwnedValue)> {
    let mut tokens: Vec<String> = (0..=255u8).map(|b| byte_char(b).to_string()).collect();
    tokens.extend(MERGES.iter().map(|(a, b)| format!("{a}{b}")));
    tokens.push(END_OF_TEXT.into());
    assert_eq!(tokens.len() as u64, N_TOKENS);
    let mut types = vec![NORMAL; tokens.len() - 1];
    types.push(CONTROL);
    vec![
        ("tokenizer.ggml.model", OwnedValue::String("gpt2".into())),
        ("tokenizer.ggml.pre", OwnedValue::String("gpt-2".into())),
        ("tokenizer.ggml.tokens", OwnedValue::string_array(tokens)),
        ("tokenizer.ggml.token_type", OwnedValue::i32_array(types)),
        (
            "tokenizer.ggml.merges",
            OwnedValue::string_array(MERGES.iter().map(|(a, b)| format!("{a} {b}"))),
        ),
        (
            "tokenizer.ggml.eos_token_id",
            OwnedValue::U32(N_TOKENS as u32 - 1),
        ),
    ]
}

/// The library's tokenizer for the tiny models' vocabulary.
pub fn tokenizer() -> Tokenizer {
    let mut writer = GgufWriter::new();
    for (key, value) in metadata() {
        writer.add_metadata(key, value).expect("tokenizer metadata");
    }
    let bytes = writer.to_bytes();
    let file = GgufFile::parse(&bytes).expect("the vocabulary parses");
    Tokenizer::from_gguf(&file).expect("the tokenizer takes the vocabulary")
}

/// `text` in the tiny models' tokens.
pub fn tokenize(text: &str) -> Vec<i32> {
    let ids = tokenizer()
        .tokenize(text, false, false)
        .expect("any text tokenizes");
    ids.iter().map(|&id| id as i32).collect()
}
