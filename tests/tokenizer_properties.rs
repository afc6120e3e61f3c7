//! Properties over random text, drawn from every Unicode scalar value, on both test
//! models: a text whose characters need a byte the vocabulary has no token for is refused
//! with an error naming the first such byte; every other text round-trips exactly
//! (detokenize(tokenize(s)) == s), and the incremental decoder writes exactly the
//! detokenized text, each character once, whole.

mod common;

use std::sync::OnceLock;

use proptest::prelude::*;
use rocmforge::Error;
use rocmforge::gguf::OwnedGguf;
use rocmforge::tokenizer::{Tokenizer, TokenizerKind};

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

/// Characters the splits treat specially, so that random text hits them often.
const INTERESTING: &[char] = &[
    'a',
    'Z',
    'é',
    'ß',
    'Ж',
    '你',
    '好',
    'こ',
    '한',
    '0',
    '7',
    '²',
    '١',
    'Ⅷ',
    '５',
    ' ',
    ' ',
    '\t',
    '\n',
    '\r',
    '\u{a0}',
    '\u{3000}',
    '\u{2003}',
    '\u{85}',
    '\'',
    '"',
    '.',
    ',',
    '!',
    '?',
    '$',
    '+',
    '<',
    '>',
    '|',
    '`',
    '€',
    '∑',
    '👍',
    '🤖',
    '\u{301}',
    '\u{200d}',
    '\u{200b}',
    '\u{feff}',
    '\u{378}',
    '\u{e000}',
    '\u{10fffd}',
    '\0',
    '\u{7f}',
    '▁',
];

/// Any scalar value (`any::<char>()` covers all of them: control characters, unassigned
/// planes and private use included), the characters above, or a mix of both.
fn text() -> impl Strategy<Value = String> {
    let mixed = prop_oneof![3 => prop::sample::select(INTERESTING), 1 => any::<char>()];
    prop_oneof![
        prop::collection::vec(any::<char>(), 0..64),
        prop::collection::vec(prop::sample::select(INTERESTING), 0..48),
        prop::collection::vec(mixed, 0..48),
    ]
    .prop_map(String::from_iter)
}

/// The byte values that no token of `tokenizer` stands for by itself, read from the pieces
/// of the vocabulary, not from the tokenizer's own tables.
fn bytes_without_token(tokenizer: &Tokenizer) -> [bool; 256] {
    let pieces: Vec<&[u8]> = (0..tokenizer.n_tokens() as u32)
        .map(|id| tokenizer.token_to_piece(id, false).expect("id in range"))
        .collect();
    let mut missing = [true; 256];
    for piece in &pieces {
        if let [b] = piece {
            missing[usize::from(*b)] = false;
        }
    }
    // No longer token holds such a byte either, so a character that needs one cannot be
    // written at all: that is what makes the expectation below exact.
    for piece in &pieces {
        let holds_missing = piece.iter().any(|&b| missing[usize::from(b)]);
        assert!(piece.len() == 1 || !holds_missing, "piece {piece:?}");
    }
    missing
}

/// The first byte of `s` that has no token: its offset, its value and its character.
fn first_byte_without_token(missing: &[bool; 256], s: &str) -> Option<(usize, u8, char)> {
    s.char_indices().find_map(|(start, c)| {
        let mut buf = [0u8; 4];
        c.encode_utf8(&mut buf)
            .bytes()
            .enumerate()
            .find(|&(_, b)| missing[usize::from(b)])
            .map(|(i, b)| (start + i, b, c))
    })
}

fn missing_bytes(tokenizer: &Tokenizer) -> &'static [bool; 256] {
    static SMOLLM2: OnceLock<[bool; 256]> = OnceLock::new();
    static GEMMA3: OnceLock<[bool; 256]> = OnceLock::new();
    let cell = match tokenizer.kind() {
        TokenizerKind::BytePairGpt2 => &SMOLLM2,
        TokenizerKind::SentencePiece => &GEMMA3,
        other => panic!("the properties are checked on SmolLM2 and Gemma 3, not {other:?}"),
    };
    cell.get_or_init(|| bytes_without_token(tokenizer))
}

/// Tokenizes `s`, checking that it fails exactly when `s` needs a byte without a token
/// and then names that byte; `None` after such a failure.
fn tokenize_or_refuse(
    tokenizer: &Tokenizer,
    s: &str,
    add_special: bool,
) -> Result<Option<Vec<u32>>, TestCaseError> {
    let result = tokenizer.tokenize(s, add_special, false);
    match (
        first_byte_without_token(missing_bytes(tokenizer), s),
        result,
    ) {
        (None, Ok(ids)) => Ok(Some(ids)),
        (None, Err(e)) => Err(TestCaseError::fail(format!("refused: {e}"))),
        (Some(expected), Ok(ids)) => Err(TestCaseError::fail(format!(
            "byte {expected:?} has no token, yet the text became {ids:?}"
        ))),
        (
            Some(expected),
            Err(Error::NoTokenForByte {
                byte,
                offset,
                character,
            }),
        ) => {
            prop_assert_eq!((offset, byte, character), expected);
            Ok(None)
        }
        (Some(_), Err(e)) => Err(TestCaseError::fail(format!("wrong error: {e}"))),
    }
}

/// What detokenizing gives back: SentencePiece (like every kind but byte-level BPE)
/// writes spaces as `▁`, so a `▁` in the input comes back as a space (as in llama.cpp
/// and SentencePiece itself).
fn expected_back(tokenizer: &Tokenizer, s: &str) -> String {
    match tokenizer.kind() {
        TokenizerKind::BytePairGpt2 => s.to_owned(),
        _ => s.replace('▁', " "),
    }
}

fn round_trip(tokenizer: &Tokenizer, s: &str) -> Result<(), TestCaseError> {
    let Some(ids) = tokenize_or_refuse(tokenizer, s, true)? else {
        return Ok(());
    };
    let back = tokenizer.detokenize(&ids, true, false).expect("valid ids");
    prop_assert_eq!(back, expected_back(tokenizer, s).into_bytes());
    Ok(())
}

/// Pushing tokens one by one writes the detokenized text, never a partial character.
fn streams(tokenizer: &Tokenizer, s: &str) -> Result<(), TestCaseError> {
    let Some(ids) = tokenize_or_refuse(tokenizer, s, false)? else {
        return Ok(());
    };
    let mut decoder = tokenizer.decoder(false);
    let mut out = String::new();
    for &id in &ids {
        let chunk = decoder.push(id).expect("valid id");
        let replaced = chunk.contains(char::REPLACEMENT_CHARACTER);
        prop_assert!(!replaced || s.contains(char::REPLACEMENT_CHARACTER));
        out.push_str(&chunk);
    }
    prop_assert!(decoder.pending().is_empty());
    out.push_str(&decoder.finish());
    prop_assert_eq!(out, expected_back(tokenizer, s));
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(10_000))]

    #[test]
    fn smollm2_round_trips_random_text(s in text()) {
        round_trip(smollm2(), &s)?;
    }

    #[test]
    fn gemma3_round_trips_random_text(s in text()) {
        round_trip(gemma3(), &s)?;
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2_000))]

    #[test]
    fn smollm2_streams_random_text(s in text()) {
        streams(smollm2(), &s)?;
    }

    #[test]
    fn gemma3_streams_random_text(s in text()) {
        streams(gemma3(), &s)?;
    }
}

#[test]
fn a_character_split_over_tokens_comes_out_once_whole() {
    let t = smollm2();
    // '𝄞' (4 bytes) is no single byte-level token in SmolLM2's vocabulary.
    let ids = t.tokenize("a𝄞b", false, false).expect("tokenizes");
    assert!(ids.len() >= 4, "{ids:?}");
    let mut decoder = t.decoder(false);
    let chunks: Vec<String> = ids
        .iter()
        .map(|&id| decoder.push(id).expect("valid id"))
        .collect();
    assert_eq!(chunks.concat(), "a𝄞b");
    assert_eq!(chunks.iter().filter(|c| c.contains('𝄞')).count(), 1);
    assert!(chunks.iter().all(|c| !c.contains('\u{FFFD}')));
}

#[test]
fn invalid_bytes_do_not_stall_the_stream() {
    let t = gemma3();
    let byte = |b: u8| {
        t.vocab()
            .id_of(format!("<0x{b:02X}>").as_bytes())
            .expect("byte token")
    };
    let mut decoder = t.decoder(false);
    assert_eq!(decoder.push(byte(0xE4)).expect("valid"), "");
    assert_eq!(decoder.push(byte(0xBD)).expect("valid"), "");
    // A lead byte where a continuation was due: the broken start is written as U+FFFD.
    assert_eq!(decoder.push(byte(0x41)).expect("valid"), "\u{FFFD}A");
    assert_eq!(decoder.push(byte(0xE4)).expect("valid"), "");
    assert_eq!(decoder.finish(), "\u{FFFD}");
}

#[test]
fn special_tokens_are_parsed_only_when_asked() {
    let t = smollm2();
    let text = "<|im_start|>user\nHi<|im_end|>";
    let parsed = t.tokenize(text, false, true).expect("tokenizes");
    assert_eq!(parsed.first(), Some(&1));
    assert!(parsed.contains(&2));
    let plain = t.tokenize(text, false, false).expect("tokenizes");
    assert!(!plain.contains(&1) && !plain.contains(&2), "{plain:?}");
    // Control tokens are hidden unless rendered.
    assert_eq!(
        t.detokenize(&parsed, false, false).expect("valid"),
        b"user\nHi"
    );
    assert_eq!(
        t.detokenize(&parsed, false, true).expect("valid"),
        text.as_bytes()
    );
}

#[test]
fn user_defined_tokens_are_always_matched() {
    let t = gemma3();
    // Gemma's runs of spaces and newlines are user-defined tokens.
    let spaces = t.vocab().id_of(b"    ").expect("four spaces");
    let ids = t.tokenize("a    b", false, false).expect("tokenizes");
    assert!(ids.contains(&spaces), "{ids:?}");
}

#[test]
fn longest_special_token_wins() {
    let t = gemma3();
    let newlines = |n: usize| {
        t.vocab()
            .id_of("\n".repeat(n).as_bytes())
            .expect("newline run")
    };
    // 33 newlines: the longest newline token (31) first, then the rest.
    let ids = t
        .tokenize(&"\n".repeat(33), false, false)
        .expect("tokenizes");
    assert_eq!(ids, [newlines(31), newlines(2)]);
}

#[test]
fn long_runs_stay_fast_and_round_trip() {
    // One word of 200,000 bytes, and runs that start a special-token match at every
    // position (Gemma has a token for every run of up to 31 spaces or newlines).
    for s in [
        "a".repeat(200_000),
        " ".repeat(200_000),
        "\n".repeat(200_000),
    ] {
        for t in [smollm2(), gemma3()] {
            let start = std::time::Instant::now();
            let ids = t.tokenize(&s, false, false).expect("tokenizes");
            assert!(start.elapsed().as_secs() < 20, "took {:?}", start.elapsed());
            let back = t.detokenize(&ids, false, false).expect("valid ids");
            assert!(back == s.as_bytes(), "round trip of a run of {:?}", &s[..1]);
        }
    }
}
