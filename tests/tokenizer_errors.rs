//! A vocabulary that contradicts itself, and input that is not text or ids that are not
//! tokens, give a clear error naming the problem, never a panic.

use rocmforge::Error;
use rocmforge::gguf::{GgufFile, GgufWriter, OwnedValue, ValueType};
use rocmforge::tokenizer::Tokenizer;

/// A tiny byte-level BPE vocabulary: every single byte a-z, space and the merges of
/// "ab" and "abc", as GGUF metadata that each test then breaks in one place.
fn base() -> Vec<(&'static str, OwnedValue)> {
    let mut tokens: Vec<String> = ('a'..='z').map(String::from).collect();
    tokens.push("Ġ".into());
    tokens.push("ab".into());
    tokens.push("abc".into());
    tokens.push("<|end|>".into());
    let n = tokens.len();
    let mut types = vec![1; n];
    types[n - 1] = 3;
    vec![
        ("general.architecture", OwnedValue::String("llama".into())),
        ("llama.vocab_size", OwnedValue::U32(n as u32)),
        ("tokenizer.ggml.model", OwnedValue::String("gpt2".into())),
        ("tokenizer.ggml.pre", OwnedValue::String("gpt-2".into())),
        ("tokenizer.ggml.tokens", OwnedValue::string_array(tokens)),
        ("tokenizer.ggml.token_type", OwnedValue::i32_array(types)),
        (
            "tokenizer.ggml.merges",
            OwnedValue::string_array(["a b", "ab c"]),
        ),
        ("tokenizer.ggml.eos_token_id", OwnedValue::U32(n as u32 - 1)),
    ]
}

fn with(
    mut kv: Vec<(&'static str, OwnedValue)>,
    key: &'static str,
    value: OwnedValue,
) -> Vec<(&'static str, OwnedValue)> {
    kv.retain(|(k, _)| *k != key);
    kv.push((key, value));
    kv
}

fn without(mut kv: Vec<(&'static str, OwnedValue)>, key: &str) -> Vec<(&'static str, OwnedValue)> {
    kv.retain(|(k, _)| *k != key);
    kv
}

fn build(kv: &[(&'static str, OwnedValue)]) -> rocmforge::Result<Tokenizer> {
    let mut w = GgufWriter::new();
    for (k, v) in kv {
        w.add_metadata(*k, v.clone())
            .expect("metadata is well-formed");
    }
    let bytes = w.to_bytes();
    let file = GgufFile::parse(&bytes).expect("file parses");
    Tokenizer::from_gguf(&file)
}

fn invalid_vocab(kv: &[(&'static str, OwnedValue)]) -> String {
    match build(kv) {
        Err(Error::InvalidVocab(m)) => m,
        Err(other) => panic!("expected an invalid-vocabulary error, got: {other}"),
        Ok(_) => panic!("a broken vocabulary was accepted"),
    }
}

fn wrong_type(kv: &[(&'static str, OwnedValue)]) -> String {
    match build(kv) {
        Err(Error::WrongKeyType { key, .. }) => key,
        Err(other) => panic!("expected a wrong-type error, got: {other}"),
        Ok(_) => panic!("a broken vocabulary was accepted"),
    }
}

fn unsupported(kv: &[(&'static str, OwnedValue)]) -> String {
    match build(kv) {
        Err(Error::Unsupported(m)) => m,
        Err(other) => panic!("expected an unsupported error, got: {other}"),
        Ok(_) => panic!("an unsupported vocabulary was accepted"),
    }
}

#[test]
fn the_base_vocabulary_works() {
    let t = build(&base()).expect("builds");
    let ids = t.tokenize("abc ab", false, false).expect("tokenizes");
    assert_eq!(ids, [28, 26, 27]);
    assert_eq!(
        t.detokenize(&ids, false, false).expect("ids are valid"),
        b"abc ab"
    );
}

#[test]
fn vocab_size_disagreeing_with_token_list() {
    let m = invalid_vocab(&with(base(), "llama.vocab_size", OwnedValue::U32(100)));
    assert!(m.contains("100") && m.contains("30"), "{m}");
}

#[test]
fn scores_of_wrong_element_type() {
    let scores = OwnedValue::string_array(vec!["0"; 30]);
    assert_eq!(
        wrong_type(&with(base(), "tokenizer.ggml.scores", scores)),
        "tokenizer.ggml.scores"
    );
}

#[test]
fn scores_of_wrong_length() {
    let scores = OwnedValue::f32_array(vec![0.0; 29]);
    let m = invalid_vocab(&with(base(), "tokenizer.ggml.scores", scores));
    assert!(m.contains("scores") && m.contains("29"), "{m}");
}

#[test]
fn nan_score() {
    let mut scores = vec![0.0; 30];
    scores[4] = f32::NAN;
    let m = invalid_vocab(&with(
        base(),
        "tokenizer.ggml.scores",
        OwnedValue::f32_array(scores),
    ));
    assert!(m.contains("token 4"), "{m}");
}

#[test]
fn token_types_of_wrong_element_type() {
    let types = OwnedValue::f32_array(vec![1.0; 30]);
    assert_eq!(
        wrong_type(&with(base(), "tokenizer.ggml.token_type", types)),
        "tokenizer.ggml.token_type"
    );
}

#[test]
fn token_types_of_wrong_length() {
    let types = OwnedValue::i32_array(vec![1; 31]);
    let m = invalid_vocab(&with(base(), "tokenizer.ggml.token_type", types));
    assert!(m.contains("token_type") && m.contains("31"), "{m}");
}

#[test]
fn tokens_that_are_not_strings() {
    let tokens = OwnedValue::i32_array(vec![1; 30]);
    assert_eq!(
        wrong_type(&with(base(), "tokenizer.ggml.tokens", tokens)),
        "tokenizer.ggml.tokens"
    );
}

#[test]
fn missing_tokens_or_model() {
    for key in ["tokenizer.ggml.tokens", "tokenizer.ggml.model"] {
        match build(&without(base(), key)) {
            Err(Error::MissingKey { key: k }) => assert_eq!(k, key),
            other => panic!(
                "expected a missing-key error for {key}, got {:?}",
                other.err()
            ),
        }
    }
}

/// A SentencePiece vocabulary whose byte token `<0x41>` is replaced by `text`.
fn spm_with_byte_token(text: &str) -> Vec<(&'static str, OwnedValue)> {
    let tokens = vec!["<unk>", "<s>", "</s>", text, "▁a"];
    vec![
        ("tokenizer.ggml.model", OwnedValue::String("llama".into())),
        ("tokenizer.ggml.tokens", OwnedValue::string_array(tokens)),
        (
            "tokenizer.ggml.token_type",
            OwnedValue::i32_array([2, 3, 3, 6, 1]),
        ),
        (
            "tokenizer.ggml.scores",
            OwnedValue::f32_array([0.0, 0.0, 0.0, 0.0, -1.0]),
        ),
    ]
}

#[test]
fn byte_token_negative() {
    let m = invalid_vocab(&spm_with_byte_token("<0x-1>"));
    assert!(m.contains("<0x-1>"), "{m}");
}

#[test]
fn byte_token_not_hex() {
    let m = invalid_vocab(&spm_with_byte_token("<0xZZ>"));
    assert!(m.contains("<0xZZ>"), "{m}");
}

#[test]
fn byte_token_well_formed() {
    let kv = with(
        spm_with_byte_token("<0x41>"),
        "tokenizer.ggml.add_space_prefix",
        OwnedValue::Bool(false),
    );
    let t = build(&kv).expect("builds");
    let ids = t.tokenize("A", false, false).expect("tokenizes");
    assert_eq!(ids, [3]);
    assert_eq!(t.detokenize(&ids, false, false).expect("valid ids"), b"A");
}

#[test]
fn merges_naming_unknown_tokens() {
    let m = invalid_vocab(&with(
        base(),
        "tokenizer.ggml.merges",
        OwnedValue::string_array(["a b", "x yz"]),
    ));
    assert!(m.contains("merge 1") && m.contains("\"yz\""), "{m}");
}

#[test]
fn merge_whose_result_is_unknown() {
    let m = invalid_vocab(&with(
        base(),
        "tokenizer.ggml.merges",
        OwnedValue::string_array(["b c"]),
    ));
    assert!(m.contains("\"bc\""), "{m}");
}

#[test]
fn merge_without_separator() {
    let m = invalid_vocab(&with(
        base(),
        "tokenizer.ggml.merges",
        OwnedValue::string_array(["ab"]),
    ));
    assert!(m.contains("merge 0"), "{m}");
}

fn as_model(model: &str) -> Vec<(&'static str, OwnedValue)> {
    with(
        base(),
        "tokenizer.ggml.model",
        OwnedValue::String(model.into()),
    )
}

fn tokenize_error(kv: &[(&'static str, OwnedValue)], text: &str, add_special: bool) -> Error {
    let tokenizer = build(kv).expect("the vocabulary builds");
    match tokenizer.tokenize(text, add_special, false) {
        Err(e) => e,
        Ok(ids) => panic!("{text:?} became {ids:?}"),
    }
}

/// The base vocabulary has no `▁`-prefixed word, no `[UNK]`, `[CLS]` or `[SEP]` (their
/// default ids 100-102 are past its end): WordPiece says what is missing.
#[test]
fn wordpiece_without_its_special_tokens() {
    let kv = as_model("bert");
    match tokenize_error(&kv, "abc", false) {
        Error::InvalidVocab(m) => assert!(m.contains("\"abc\"") && m.contains("unknown"), "{m}"),
        other => panic!("{other}"),
    }
    match tokenize_error(&kv, "", true) {
        Error::InvalidVocab(m) => assert!(m.contains("CLS"), "{m}"),
        other => panic!("{other}"),
    }
}

#[test]
fn gemma4_merges_naming_unknown_tokens() {
    let m = invalid_vocab(&with(
        as_model("gemma4"),
        "tokenizer.ggml.merges",
        OwnedValue::string_array(["a b", "x yz"]),
    ));
    assert!(m.contains("merge 1") && m.contains("\"yz\""), "{m}");
}

/// Without byte-fallback tokens, Gemma 4 cannot write a character that is no token, nor
/// a space without `▁`.
#[test]
fn gemma4_without_byte_tokens() {
    let kv = as_model("gemma4");
    match tokenize_error(&kv, "ab\u{e9}", false) {
        Error::NoTokenForByte {
            byte,
            offset,
            character,
        } => assert_eq!((byte, offset, character), (0xC3, 2, '\u{e9}')),
        other => panic!("{other}"),
    }
    match tokenize_error(&kv, "a b", false) {
        Error::InvalidVocab(m) => assert!(m.contains("space mark"), "{m}"),
        other => panic!("{other}"),
    }
}

#[test]
fn special_token_id_out_of_range() {
    for key in [
        "tokenizer.ggml.bos_token_id",
        "tokenizer.ggml.eos_token_id",
        "tokenizer.ggml.eot_token_id",
        "tokenizer.ggml.unknown_token_id",
        "tokenizer.ggml.padding_token_id",
        "tokenizer.ggml.fim_pad_token_id",
        "tokenizer.ggml.fim_rep_token_id",
        "tokenizer.ggml.fim_sep_token_id",
    ] {
        let m = invalid_vocab(&with(base(), key, OwnedValue::U32(30)));
        assert!(m.contains("30") && m.contains("outside"), "{key}: {m}");
    }
}

#[test]
fn special_token_id_of_wrong_type() {
    let key = "tokenizer.ggml.bos_token_id";
    assert_eq!(wrong_type(&with(base(), key, OwnedValue::I32(-1))), key);
}

#[test]
fn duplicate_tokens() {
    let mut tokens: Vec<String> = ('a'..='z').map(String::from).collect();
    tokens.extend(["Ġ", "ab", "a", "<|end|>"].map(String::from));
    let m = invalid_vocab(&with(
        base(),
        "tokenizer.ggml.tokens",
        OwnedValue::string_array(tokens),
    ));
    assert!(m.contains("tokens 0 and 28"), "{m}");
}

#[test]
fn empty_token_list() {
    let kv = with(
        without(
            without(base(), "tokenizer.ggml.token_type"),
            "llama.vocab_size",
        ),
        "tokenizer.ggml.tokens",
        OwnedValue::Array {
            elem_type: ValueType::String,
            items: vec![],
        },
    );
    let kv = without(
        without(kv, "tokenizer.ggml.merges"),
        "tokenizer.ggml.eos_token_id",
    );
    let m = invalid_vocab(&kv);
    assert!(m.contains("empty"), "{m}");
}

#[test]
fn unsupported_tokenizer_models_are_named() {
    for name in ["t5", "rwkv", "plamo2", "whitespace", "something-new"] {
        let m = unsupported(&with(
            base(),
            "tokenizer.ggml.model",
            OwnedValue::String(name.into()),
        ));
        assert!(m.contains(name), "{m}");
    }
}

#[test]
fn unsupported_pre_tokenizers_are_named() {
    for name in ["tekken", "gpt-4o", "made-up"] {
        let m = unsupported(&with(
            base(),
            "tokenizer.ggml.pre",
            OwnedValue::String(name.into()),
        ));
        assert!(m.contains(name), "{m}");
    }
}

#[test]
fn text_that_is_not_utf8() {
    let t = build(&base()).expect("builds");
    for bytes in [
        &b"ab\xffc"[..],
        b"\xc3",
        b"a\xed\xa0\x80",
        b"\xf8\x88\x80\x80\x80",
    ] {
        match t.tokenize_bytes(bytes, false, false) {
            Err(Error::InvalidArgument(m)) => assert!(m.contains("UTF-8"), "{m}"),
            other => panic!("{bytes:?}: expected an invalid-argument error, got {other:?}"),
        }
    }
    assert_eq!(t.tokenize_bytes(b"ab", false, false).expect("valid"), [27]);
}

#[test]
fn ids_out_of_range() {
    let t = build(&base()).expect("builds");
    for id in [30, 31, u32::MAX] {
        for result in [
            t.detokenize(&[0, id], false, false).map(|_| ()),
            t.token_to_piece(id, true).map(|_| ()),
            t.decoder(false).push(id).map(|_| ()),
        ] {
            match result {
                Err(Error::InvalidArgument(m)) => assert!(m.contains(&id.to_string()), "{m}"),
                other => panic!("id {id}: expected an invalid-argument error, got {other:?}"),
            }
        }
    }
}

#[test]
fn adding_a_bos_the_vocabulary_lacks() {
    // Byte-level BPE defaults BOS to id 11 (llama.cpp's); a vocabulary that asks for BOS
    // and names none beyond its reach has no BOS to add.
    let kv = with(
        base(),
        "tokenizer.ggml.add_bos_token",
        OwnedValue::Bool(true),
    );
    let t = build(&kv).expect("builds");
    assert_eq!(t.tokenize("a", true, false).expect("tokenizes"), [11, 0]);
    let mut tokens: Vec<String> = ('a'..='e').map(String::from).collect();
    tokens.push("Ġ".into());
    let kv = vec![
        ("tokenizer.ggml.model", OwnedValue::String("gpt2".into())),
        ("tokenizer.ggml.tokens", OwnedValue::string_array(tokens)),
        ("tokenizer.ggml.add_bos_token", OwnedValue::Bool(true)),
    ];
    let t = build(&kv).expect("builds");
    match t.tokenize("a", true, false) {
        Err(Error::InvalidVocab(m)) => assert!(m.contains("BOS"), "{m}"),
        other => panic!("expected an invalid-vocabulary error, got {other:?}"),
    }
}

#[test]
fn sentencepiece_text_without_byte_fallback() {
    let kv = vec![
        ("tokenizer.ggml.model", OwnedValue::String("llama".into())),
        (
            "tokenizer.ggml.tokens",
            OwnedValue::string_array(["<unk>", "<s>", "</s>", "▁a"]),
        ),
        (
            "tokenizer.ggml.token_type",
            OwnedValue::i32_array([2, 3, 3, 1]),
        ),
    ];
    let t = build(&kv).expect("builds");
    assert_eq!(t.tokenize("a", false, false).expect("tokenizes"), [3]);
    // The space mark `▁` (E2 96 81), added before the text or standing for a space, has
    // no token alone and no byte tokens: the vocabulary, not the text, is at fault.
    for text in ["é", "a b"] {
        match t.tokenize(text, false, false) {
            Err(Error::InvalidVocab(m)) => {
                assert!(m.contains("space mark") && m.contains("0xE2"), "{m}")
            }
            other => panic!("{text:?}: expected an invalid-vocabulary error, got {other:?}"),
        }
    }
}

/// A hostile WordPiece vocabulary: a 64 KiB token `▁a…a` and a 64 KiB token `a…ab` that
/// the text never completes, then a 128 KiB word of `a`. Trying every length at each
/// position (llama.cpp's search), or walking a trie as far as the text follows a token,
/// costs the word's length times the token's (billions of steps); the spelling walks the
/// word once, so this finishes at once even unoptimized.
#[test]
fn wordpiece_with_64_kib_tokens_and_a_128_kib_word() {
    let long_word_start = format!("▁{}", "a".repeat(65536 - "▁".len()));
    let almost = format!("{}b", "a".repeat(65535));
    assert_eq!((long_word_start.len(), almost.len()), (65536, 65536));
    let tokens = vec![
        "[UNK]".to_owned(),
        "▁".to_owned(),
        "a".to_owned(),
        long_word_start,
        almost,
    ];
    let kv = vec![
        ("tokenizer.ggml.model", OwnedValue::String("bert".into())),
        ("tokenizer.ggml.tokens", OwnedValue::string_array(tokens)),
        ("tokenizer.ggml.unknown_token_id", OwnedValue::U32(0)),
    ];
    let t = build(&kv).expect("builds");
    let word = "a".repeat(128 * 1024);
    let ids = t.tokenize(&word, false, false).expect("tokenizes");
    // The long `▁` token takes the first 65533 letters, then one `a` at a time.
    let mut expected = vec![3];
    expected.resize(1 + 128 * 1024 - 65533, 2);
    assert_eq!(ids.len(), expected.len());
    assert!(ids == expected);
    // With a `b` at the end the long `a…ab` token matches once the letters before it
    // are down to 65535.
    let ids = t
        .tokenize(&format!("{word}b"), false, false)
        .expect("tokenizes");
    let mut expected = vec![3];
    expected.resize(1 + 128 * 1024 - 65533 - 65535, 2);
    expected.push(4);
    assert!(ids == expected, "{} ids", ids.len());
}
