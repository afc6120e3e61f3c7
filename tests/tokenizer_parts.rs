//! Tokenizers built from plain parts: tiny vocabularies whose right answers can be worked
//! out by hand.

use rocmforge::tokenizer::{TokenType, Tokenizer, VocabParts};

fn spm(tokens: &[(&str, f32, i32)], add_space_prefix: bool) -> Tokenizer {
    let parts = VocabParts {
        model: "llama".into(),
        tokens: tokens.iter().map(|t| t.0.to_owned()).collect(),
        scores: Some(tokens.iter().map(|t| t.1).collect()),
        token_types: Some(tokens.iter().map(|t| t.2).collect()),
        add_space_prefix: Some(add_space_prefix),
        ..VocabParts::default()
    };
    Tokenizer::from_parts(&parts).expect("builds")
}

/// `<unk> <s> </s>`, then the byte tokens of 'x' and 'é', then scored pieces.
fn spm_vocab(add_space_prefix: bool) -> Tokenizer {
    spm(
        &[
            ("<unk>", 0.0, 2),
            ("<s>", 0.0, 3),
            ("</s>", 0.0, 3),
            ("<0x78>", 0.0, 6),
            ("<0xC3>", 0.0, 6),
            ("<0xA9>", 0.0, 6),
            ("▁", -1.0, 1),
            ("a", -1.0, 1),
            ("b", -1.0, 1),
            ("c", -1.0, 1),
            ("ab", -3.0, 1),
            ("bc", -2.0, 1),
            ("cab", -5.0, 1),
            ("▁a", -4.0, 1),
            ("<turn>", 0.0, 3),
        ],
        add_space_prefix,
    )
}

#[test]
fn sentencepiece_merges_the_best_scored_pair_first() {
    let t = spm_vocab(false);
    // "bc" (-2) beats "ab" (-3), and "abc" is no token: a, bc (not ab, c).
    assert_eq!(t.tokenize("abc", false, false).expect("ok"), [7, 11]);
    // Spaces are `▁`; "▁a" merges.
    assert_eq!(t.tokenize("b a", false, false).expect("ok"), [8, 13]);
}

#[test]
fn sentencepiece_falls_back_to_bytes() {
    let t = spm_vocab(false);
    assert_eq!(t.tokenize("xé", false, false).expect("ok"), [3, 4, 5]);
    assert_eq!(
        t.detokenize(&[3, 4, 5], false, false).expect("ok"),
        "xé".as_bytes()
    );
}

#[test]
fn sentencepiece_space_prefix_and_bos() {
    let t = spm_vocab(true);
    assert!(t.add_bos());
    let ids = t.tokenize("a", true, false).expect("ok");
    assert_eq!(ids, [1, 13]);
    // The prefix goes again after a special token.
    let ids = t.tokenize("a<turn>a", false, true).expect("ok");
    assert_eq!(ids, [13, 14, 13]);
    // Detokenizing drops the first token's leading space, unless BOS came first.
    assert_eq!(t.detokenize(&[13], false, false).expect("ok"), b"a");
    assert_eq!(t.detokenize(&[1, 13], true, false).expect("ok"), b" a");
}

fn bpe(tokens: &[&str], merges: &[&str], types: Option<Vec<i32>>) -> Tokenizer {
    let parts = VocabParts {
        model: "gpt2".into(),
        pre: Some("gpt-2".into()),
        tokens: tokens.iter().map(|t| (*t).to_owned()).collect(),
        token_types: types,
        merges: merges.iter().map(|m| (*m).to_owned()).collect(),
        ..VocabParts::default()
    };
    Tokenizer::from_parts(&parts).expect("builds")
}

#[test]
fn bpe_merges_by_rank_leftmost_first() {
    let t = bpe(
        &["a", "b", "ab", "ba", "aba"],
        &["b a", "a b", "ab a"],
        None,
    );
    // "b a" has the best rank: a, ba — then "a ba" is no merge.
    assert_eq!(t.tokenize("aba", false, false).expect("ok"), [0, 3]);
    // Equal pairs: the leftmost merges first: ab, ab.
    let t = bpe(&["a", "b", "ab"], &["a b"], None);
    assert_eq!(t.tokenize("abab", false, false).expect("ok"), [2, 2]);
}

#[test]
fn bpe_refuses_bytes_it_has_no_token_for() {
    let t = bpe(&["a", "b"], &[], None);
    match t.tokenize("a-b", false, false) {
        Err(rocmforge::Error::NoTokenForByte {
            byte,
            offset,
            character,
        }) => assert_eq!((byte, offset, character), (b'-', 1, '-')),
        other => panic!("expected a missing-byte error, got {other:?}"),
    }
}

#[test]
fn special_tokens_longest_first() {
    let t = bpe(&["a", "<x>", "<x><y>", "<y>"], &[], Some(vec![1, 3, 3, 4]));
    assert_eq!(t.vocab().token_type(3), Some(TokenType::UserDefined));
    // "<x><y>" beats "<x>"; "<y>" (user-defined) is found without special parsing too.
    assert_eq!(t.tokenize("a<x><y>a", false, true).expect("ok"), [0, 2, 0]);
    assert_eq!(t.tokenize("<x>a<y>", false, true).expect("ok"), [1, 0, 3]);
    assert_eq!(t.tokenize("<y>", false, false).expect("ok"), [3]);
}

#[test]
fn end_of_turn_found_by_name() {
    let t = bpe(&["a", "<|im_end|>"], &[], None);
    assert_eq!(t.specials().eot, Some(1));
    // Its name makes it a control token, whatever the file said.
    assert_eq!(t.vocab().token_type(1), Some(TokenType::Control));
}
