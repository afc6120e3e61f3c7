//! Small vocabularies of both kinds the library implements, as GGUF tokenizer metadata:
//! byte-level BPE (GPT-2's byte alphabet, merges, several pre-tokenizers) and
//! SentencePiece (scored pieces, byte fallback, the `▁` space mark). Each is a few hundred
//! tokens, so it builds in microseconds and fits a tiny model, yet every code path of its
//! kind has a token to take: merges, multi-byte characters, control and user-defined
//! tokens, bytes without a token, text the vocabulary cannot write.

use rocmforge::gguf::OwnedValue;

/// GGUF token types (llama.cpp's `llama_token_type`).
const NORMAL: i32 = 1;
const UNKNOWN: i32 = 2;
const CONTROL: i32 = 3;
const USER_DEFINED: i32 = 4;
const UNUSED: i32 = 5;
const BYTE: i32 = 6;

/// A vocabulary's tokenizer metadata and what a target may rely on about it.
#[derive(Clone, Debug)]
pub struct Vocabulary {
    pub name: String,
    pub metadata: Vec<(String, OwnedValue)>,
    pub n_tokens: u32,
    /// Text that tokenizes (without special parsing) detokenizes to itself. False where
    /// the pre-tokenizer cleans up spaces on the way back, as llama.cpp's does.
    pub round_trips: bool,
}

/// Every vocabulary the tokenize target chooses from; the first is the tiny models'.
pub fn all() -> Vec<Vocabulary> {
    let mut all: Vec<Vocabulary> = ["smollm", "gpt-2", "llama3", "qwen2", "deepseek-llm"]
        .iter()
        .map(|pre| byte_level(Some(pre), &[]))
        .collect();
    all.push(byte_level(None, &[]));
    // SmolLM2's vocabulary lacks U+0004's byte; text holding it is refused.
    all.push(byte_level(Some("smollm"), &[0x04, 0xFF]));
    for (bytes, prefix, space_mark) in [
        (ByteFallback::All, true, true),
        (ByteFallback::All, false, true),
        (ByteFallback::Ascii, true, true),
        (ByteFallback::None, true, false),
    ] {
        all.push(sentencepiece(bytes, prefix, space_mark));
    }
    all
}

/// The character GPT-2's byte-level alphabet writes for `byte`: printable Latin-1 bytes
/// stand for themselves, the other 68 take the code points from U+0100 up, in byte order.
pub fn byte_char(byte: u8) -> char {
    let self_mapped = |b: u8| matches!(b, 0x21..=0x7E | 0xA1..=0xAC | 0xAE..=0xFF);
    if self_mapped(byte) {
        return char::from(byte);
    }
    let shifted = (0..byte).filter(|&b| !self_mapped(b)).count() as u32;
    // U+0100 to U+0143 are all characters.
    char::from_u32(256 + shifted).unwrap_or(char::REPLACEMENT_CHARACTER)
}

/// Merges in rank order, in GPT-2's alphabet (`Ġ` is a space, `Ã ©` the bytes of é).
const MERGES: &[(&str, &str)] = &[
    ("t", "h"),
    ("th", "e"),
    ("Ġ", "the"),
    ("i", "n"),
    ("Ġ", "t"),
    ("e", "r"),
    ("Ġ", "a"),
    ("o", "n"),
    ("in", "g"),
    ("Ġ", "Ġ"),
    ("1", "2"),
    ("Ã", "©"),
    ("Ċ", "Ċ"),
];

/// Control and user-defined tokens of the byte-level vocabularies, after the merges.
const BPE_SPECIALS: &[(&str, i32)] = &[
    ("<|endoftext|>", CONTROL),
    ("<|im_start|>", CONTROL),
    ("<|im_end|>", CONTROL),
    ("<tool_call>", USER_DEFINED),
    ("<|reserved|>", UNUSED),
];

/// A byte-level BPE vocabulary with pre-tokenizer `pre` (`None`: llama.cpp's default)
/// and every byte's token but those of `missing`.
pub fn byte_level(pre: Option<&str>, missing: &[u8]) -> Vocabulary {
    let mut tokens: Vec<String> = (0..=255u8)
        .filter(|b| !missing.contains(b))
        .map(|b| byte_char(b).to_string())
        .collect();
    let mut types = vec![NORMAL; tokens.len()];
    tokens.extend(MERGES.iter().map(|(a, b)| format!("{a}{b}")));
    types.resize(tokens.len(), NORMAL);
    let end_of_text = tokens.len() as u32;
    for &(text, kind) in BPE_SPECIALS {
        tokens.push(text.into());
        types.push(kind);
    }
    let n_tokens = tokens.len() as u32;
    let mut metadata = vec![
        key("tokenizer.ggml.model", OwnedValue::String("gpt2".into())),
        key("tokenizer.ggml.tokens", OwnedValue::string_array(tokens)),
        key("tokenizer.ggml.token_type", OwnedValue::i32_array(types)),
        key(
            "tokenizer.ggml.merges",
            OwnedValue::string_array(MERGES.iter().map(|(a, b)| format!("{a} {b}"))),
        ),
        key("tokenizer.ggml.bos_token_id", OwnedValue::U32(end_of_text)),
        key("tokenizer.ggml.eos_token_id", OwnedValue::U32(end_of_text)),
    ];
    if let Some(pre) = pre {
        metadata.push(key("tokenizer.ggml.pre", OwnedValue::String(pre.into())));
    }
    // llama.cpp cleans up spaces before punctuation when detokenizing for these.
    let cleans_spaces = matches!(pre, None | Some("gpt-2" | "llama3"));
    let missing_note = if missing.is_empty() {
        String::new()
    } else {
        format!(", without bytes {missing:02x?}")
    };
    Vocabulary {
        name: format!("BPE {}{missing_note}", pre.unwrap_or("default")),
        metadata,
        n_tokens,
        round_trips: !cleans_spaces,
    }
}

/// Which `<0xNN>` byte-fallback tokens a SentencePiece vocabulary has.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ByteFallback {
    All,
    /// Bytes below 0x80 only: a character outside the pieces and ASCII has no tokens.
    Ascii,
    None,
}

/// Scored pieces: earlier ones score higher, so they merge first.
const PIECES: &[&str] = &[
    "▁the", "▁a", "th", "he", "in", "ing", "er", "on", "▁t", "▁i", "é", "日本", "日", "本", "12",
    "▁▁",
];

/// A SentencePiece vocabulary: `<unk> <s> </s>`, byte fallback as `bytes` says, the space
/// mark `▁` unless `space_mark` is false, a-z, 0-9, scored pieces and special tokens.
pub fn sentencepiece(bytes: ByteFallback, add_space_prefix: bool, space_mark: bool) -> Vocabulary {
    let mut entries: Vec<(String, f32, i32)> = vec![
        ("<unk>".into(), 0.0, UNKNOWN),
        ("<s>".into(), 0.0, CONTROL),
        ("</s>".into(), 0.0, CONTROL),
    ];
    let byte_limit = match bytes {
        ByteFallback::All => 0x100,
        ByteFallback::Ascii => 0x80,
        ByteFallback::None => 0,
    };
    for b in 0..byte_limit {
        entries.push((format!("<0x{b:02X}>"), 0.0, BYTE));
    }
    let mut score = -1.0;
    let mut normal = |text: String, entries: &mut Vec<(String, f32, i32)>| {
        entries.push((text, score, NORMAL));
        score -= 1.0;
    };
    for piece in PIECES {
        normal((*piece).into(), &mut entries);
    }
    if space_mark {
        normal("▁".into(), &mut entries);
    }
    for c in ('a'..='z').chain('0'..='9') {
        normal(c.to_string(), &mut entries);
    }
    for (text, kind) in [
        ("<start_of_turn>", CONTROL),
        ("<end_of_turn>", CONTROL),
        ("<mask>", USER_DEFINED),
        ("<unused0>", UNUSED),
    ] {
        entries.push((text.into(), 0.0, kind));
    }
    let n_tokens = entries.len() as u32;
    let metadata = vec![
        key("tokenizer.ggml.model", OwnedValue::String("llama".into())),
        key(
            "tokenizer.ggml.tokens",
            OwnedValue::string_array(entries.iter().map(|e| e.0.clone())),
        ),
        key(
            "tokenizer.ggml.scores",
            OwnedValue::f32_array(entries.iter().map(|e| e.1)),
        ),
        key(
            "tokenizer.ggml.token_type",
            OwnedValue::i32_array(entries.iter().map(|e| e.2)),
        ),
        key(
            "tokenizer.ggml.add_space_prefix",
            OwnedValue::Bool(add_space_prefix),
        ),
    ];
    Vocabulary {
        name: format!(
            "SentencePiece (bytes {bytes:?}, space prefix {add_space_prefix}, ▁ {space_mark})"
        ),
        metadata,
        n_tokens,
        round_trips: true,
    }
}

fn key(name: &str, value: OwnedValue) -> (String, OwnedValue) {
    (name.to_owned(), value)
}
