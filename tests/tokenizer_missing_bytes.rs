//! A text byte the vocabulary has no token for is refused, never dropped: both algorithms
//! return `Error::NoTokenForByte` naming the byte, its offset in the caller's text and its
//! character, and the C ABI returns `RF_ERR_INVALID_ARGUMENT` with that message. SmolLM2
//! lacks 21 byte tokens (0x04, 0x06, 0x13, 0x14, 0x16, 0x1D, the lead bytes 0xF1 and 0xF2,
//! and 13 bytes UTF-8 never uses); Gemma 3 has a byte-fallback token for every byte.

mod common;

use std::ffi::CStr;
use std::sync::OnceLock;

use rocmforge::Error;
use rocmforge::ffi::*;
use rocmforge::gguf::{GgufFile, GgufWriter, OwnedGguf, OwnedValue};
use rocmforge::tokenizer::Tokenizer;

fn load(model: &str) -> Tokenizer {
    let gguf = OwnedGguf::open(&common::model_path(model)).expect("model opens");
    Tokenizer::from_gguf(gguf.file()).expect("tokenizer builds")
}

fn smollm2() -> &'static Tokenizer {
    static T: OnceLock<Tokenizer> = OnceLock::new();
    T.get_or_init(|| load(common::SMOLLM2))
}

fn gemma3() -> &'static Tokenizer {
    static T: OnceLock<Tokenizer> = OnceLock::new();
    T.get_or_init(|| load(common::GEMMA3))
}

/// A vocabulary written as GGUF metadata and read back.
fn build(kv: &[(&str, OwnedValue)]) -> Tokenizer {
    let mut w = GgufWriter::new();
    for (k, v) in kv {
        w.add_metadata(*k, v.clone())
            .expect("metadata is well-formed");
    }
    let bytes = w.to_bytes();
    let file = GgufFile::parse(&bytes).expect("file parses");
    Tokenizer::from_gguf(&file).expect("tokenizer builds")
}

/// The refusal of `text`: `(offset, byte, character)` and the message.
fn refusal(t: &Tokenizer, text: &str, parse_special: bool) -> ((usize, u8, char), String) {
    match t.tokenize(text, false, parse_special) {
        Err(
            e @ Error::NoTokenForByte {
                byte,
                offset,
                character,
            },
        ) => ((offset, byte, character), e.to_string()),
        other => panic!("{text:?}: expected a missing-byte error, got {other:?}"),
    }
}

fn round_trips(t: &Tokenizer, text: &str) {
    let ids = t.tokenize(text, false, false).expect("tokenizes");
    let back = t.detokenize(&ids, false, false).expect("valid ids");
    assert_eq!(String::from_utf8_lossy(&back), text);
}

#[test]
fn smollm2_refuses_u0004() {
    let (found, message) = refusal(smollm2(), "Hello,\u{4} world", false);
    assert_eq!(found, (6, 0x04, '\u{4}'));
    assert_eq!(
        message,
        "text byte 0x04 at offset 6 (in U+0004) has no token in this vocabulary"
    );
    // Alone, the character is a word of one byte.
    assert_eq!(refusal(smollm2(), "\u{4}", false).0, (0, 0x04, '\u{4}'));
}

#[test]
fn smollm2_refuses_a_four_byte_character_whose_lead_byte_has_no_token() {
    // U+50000 is F1 90 80 80 and U+8FFFD is F2 8F BF BD: SmolLM2 has no 0xF1 or 0xF2.
    let (found, message) = refusal(smollm2(), "ok \u{50000}!", false);
    assert_eq!(found, (3, 0xF1, '\u{50000}'));
    assert_eq!(
        message,
        "text byte 0xF1 at offset 3 (in U+50000) has no token in this vocabulary"
    );
    assert_eq!(
        refusal(smollm2(), "é\u{8FFFD}", false).0,
        (2, 0xF2, '\u{8FFFD}')
    );
    // The first missing byte in the text is the one named.
    assert_eq!(
        refusal(smollm2(), "a\u{13}b\u{4}", false).0,
        (1, 0x13, '\u{13}')
    );
    // Four-byte characters led by 0xF0, 0xF3 and 0xF4 have their tokens.
    round_trips(smollm2(), "🤖 \u{E0001} \u{10FFFD}");
}

#[test]
fn smollm2_offset_counts_special_tokens_before_the_byte() {
    let text = "<|im_start|>user\n\u{6}";
    assert_eq!(refusal(smollm2(), text, true).0, (17, 0x06, '\u{6}'));
    assert_eq!(refusal(smollm2(), text, false).0, (17, 0x06, '\u{6}'));
}

#[test]
fn smollm2_refusal_through_the_c_abi() {
    let model = common::ffi::load_model(common::SMOLLM2);
    let text = "a\u{4}";
    let mut ids = [0i32; 8];
    let mut n = usize::MAX;
    // SAFETY: a live model, `text.len()` bytes, `ids.len()` writable ids.
    let status = unsafe {
        rf_tokenize(
            model,
            text.as_ptr().cast(),
            text.len(),
            false,
            false,
            ids.as_mut_ptr(),
            ids.len(),
            &mut n,
        )
    };
    assert_eq!(status, rf_status::RF_ERR_INVALID_ARGUMENT);
    // SAFETY: rf_last_error never returns NULL; read before the next rf_ call.
    let message = unsafe { CStr::from_ptr(rf_last_error()) }.to_string_lossy();
    assert!(
        message.contains("text byte 0x04 at offset 1 (in U+0004) has no token"),
        "{message}"
    );
    // SAFETY: the model from rf_model_load, freed once.
    unsafe { rf_model_free(model) };
}

#[test]
fn gemma3_has_a_byte_token_for_every_byte() {
    let t = gemma3();
    for b in 0..=255u8 {
        let name = format!("<0x{b:02X}>");
        assert!(t.vocab().id_of(name.as_bytes()).is_some(), "{name}");
    }
    round_trips(t, "a\u{4}b \u{50000}\u{8FFFD}");
}

/// A byte-level BPE vocabulary of the bytes a-z, space and 0xC3 only.
fn bpe_a_to_z() -> Tokenizer {
    let mut tokens: Vec<String> = ('a'..='z').map(String::from).collect();
    tokens.push("Ġ".into());
    tokens.push("Ã".into());
    build(&[
        ("tokenizer.ggml.model", OwnedValue::String("gpt2".into())),
        ("tokenizer.ggml.pre", OwnedValue::String("gpt-2".into())),
        ("tokenizer.ggml.tokens", OwnedValue::string_array(tokens)),
    ])
}

#[test]
fn byte_level_bpe_without_a_byte() {
    let t = bpe_a_to_z();
    assert_eq!(
        t.tokenize("ab c", false, false).expect("tokenizes").len(),
        4
    );
    let (found, message) = refusal(&t, "ab Xy", false);
    assert_eq!(found, (3, b'X', 'X'));
    assert_eq!(
        message,
        "text byte 0x58 at offset 3 (in U+0058) has no token in this vocabulary"
    );
    // 'é' is C3 A9: the offset is the missing byte's, inside the character.
    assert_eq!(refusal(&t, "aé", false).0, (2, 0xA9, 'é'));
    assert_eq!(refusal(&t, "\u{10000}", false).0, (0, 0xF0, '\u{10000}'));
}

/// A SentencePiece vocabulary without byte-fallback tokens: "a", "▁" and "é" as the
/// pieces "a", "▁", "▁a", with `add_space_prefix` as given.
fn spm_without_byte_tokens(add_space_prefix: bool) -> Tokenizer {
    build(&[
        ("tokenizer.ggml.model", OwnedValue::String("llama".into())),
        (
            "tokenizer.ggml.tokens",
            OwnedValue::string_array(["<unk>", "<s>", "</s>", "a", "▁", "▁a"]),
        ),
        (
            "tokenizer.ggml.token_type",
            OwnedValue::i32_array([2, 3, 3, 1, 1, 1]),
        ),
        (
            "tokenizer.ggml.add_space_prefix",
            OwnedValue::Bool(add_space_prefix),
        ),
    ])
}

#[test]
fn sentencepiece_without_a_byte_fallback_token() {
    let t = spm_without_byte_tokens(false);
    assert_eq!(t.tokenize("a a", false, false).expect("tokenizes"), [3, 5]);
    let (found, message) = refusal(&t, "a é", false);
    assert_eq!(found, (2, 0xC3, 'é'));
    assert_eq!(
        message,
        "text byte 0xC3 at offset 2 (in U+00E9) has no token in this vocabulary"
    );
}

#[test]
fn sentencepiece_offsets_are_in_the_callers_text() {
    // Spaces become the three-byte `▁` and a prefix is added, yet the offset is the
    // character's in the text as given; a literal `▁` counts its own three bytes.
    let t = spm_without_byte_tokens(true);
    assert_eq!(refusal(&t, "a  aé", false).0, (4, 0xC3, 'é'));
    assert_eq!(refusal(&t, "▁ é", false).0, (4, 0xC3, 'é'));
    assert_eq!(refusal(&t, "é", false).0, (0, 0xC3, 'é'));
}
