//! Token-exact parity with llama.cpp on vocabularies that need no model: WordPiece
//! (`bert`, llama.cpp's ggml-vocab-bert-bge.gguf) and Gemma 4 (`gemma4`, a subset of
//! llama.cpp's ggml-vocab-gemma-4.gguf, and a tiny vocabulary whose newline runs are
//! tokens no merge makes). Each directory under tests/fixtures/tokenizer/
//! holds the vocabulary (vocab.gguf), llama.cpp's ids for texts in the four
//! (add_special, parse_special) modes and its `llama_detokenize` of those ids in the four
//! (remove_special, unparse_special) modes (tokenize.jsonl), and its
//! `llama_token_to_piece` of a sample of tokens (pieces.jsonl); see
//! scripts/gen-tokenizer-fixtures.py.

mod common;
mod tokenizer_common;

use tokenizer_common::{ids, read_jsonl};

use std::collections::BTreeMap;

use rocmforge::gguf::OwnedGguf;
use rocmforge::tokenizer::{Tokenizer, TokenizerKind};

const BERT: &str = "tokenizer/bert-bge";
const GEMMA4: &str = "tokenizer/gemma4";
const GEMMA4_NEWLINES: &str = "tokenizer/gemma4-newlines";

/// The (remove_special, unparse_special) order of each line's `detokenize` list.
const DETOKENIZE_MODES: [(bool, bool); 4] =
    [(false, false), (true, false), (false, true), (true, true)];

fn load(dir: &str) -> Tokenizer {
    let path = common::fixture_path(&format!("{dir}/vocab.gguf"));
    let gguf = OwnedGguf::open(&path).expect("vocabulary opens");
    Tokenizer::from_gguf(gguf.file()).expect("tokenizer builds")
}

fn flag(v: &serde_json::Value, key: &str) -> bool {
    v[key].as_bool().expect(key)
}

/// Counts passes per mode, prints them, and fails listing every mismatch.
#[derive(Default)]
struct Tally {
    counts: BTreeMap<String, (usize, usize)>,
    failures: Vec<String>,
}

impl Tally {
    fn record(&mut self, mode: String, pass: bool, failure: impl FnOnce() -> String) {
        let entry = self.counts.entry(mode).or_default();
        entry.1 += 1;
        if pass {
            entry.0 += 1;
        } else {
            self.failures.push(failure());
        }
    }

    fn finish(self, what: &str) {
        let total: usize = self.counts.values().map(|c| c.1).sum();
        for (mode, (pass, n)) in &self.counts {
            println!("{what} {mode}: {pass}/{n} lines equal to llama.cpp");
        }
        assert!(
            self.failures.is_empty(),
            "{what}: {} of {total} differ:\n{}",
            self.failures.len(),
            self.failures.join("\n")
        );
    }
}

fn check_tokens(dir: &str) {
    let tokenizer = load(dir);
    let mut tally = Tally::default();
    for line in read_jsonl(&format!("{dir}/tokenize.jsonl")) {
        let text = line["text"].as_str().expect("text");
        let (add, parse) = (flag(&line, "add_special"), flag(&line, "parse_special"));
        let expected = ids(&line["ids"]);
        let got = tokenizer.tokenize(text, add, parse);
        let pass = got.as_ref().is_ok_and(|got| *got == expected);
        tally.record(
            format!("add_special={add} parse_special={parse}"),
            pass,
            || format!("{text:?} ({add}, {parse})\n  expected {expected:?}\n  got      {got:?}"),
        );
    }
    tally.finish(&format!("{dir} tokenize"));
}

/// Detokenizes llama.cpp's ids (not ours), so that this checks detokenizing alone.
fn check_detokenize(dir: &str) {
    let tokenizer = load(dir);
    let mut tally = Tally::default();
    for line in read_jsonl(&format!("{dir}/tokenize.jsonl")) {
        let ids = ids(&line["ids"]);
        let texts = line["detokenize"].as_array().expect("detokenize list");
        for (&(remove, unparse), expected) in DETOKENIZE_MODES.iter().zip(texts) {
            let expected = expected.as_str().expect("detokenized text");
            let got = tokenizer.detokenize(&ids, remove, unparse);
            let pass = got.as_deref().is_ok_and(|got| got == expected.as_bytes());
            tally.record(
                format!("remove_special={remove} unparse_special={unparse}"),
                pass,
                || format!("{ids:?} ({remove}, {unparse})\n  expected {expected:?}\n  got {got:?}"),
            );
        }
    }
    tally.finish(&format!("{dir} detokenize"));
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn check_pieces(dir: &str) {
    let tokenizer = load(dir);
    let mut tally = Tally::default();
    for line in read_jsonl(&format!("{dir}/pieces.jsonl")) {
        let id = u32::try_from(line["id"].as_u64().expect("id")).expect("32-bit id");
        for (special, key) in [(false, "plain"), (true, "special")] {
            let expected = line[key].as_str().expect("piece");
            let got = tokenizer.token_to_piece(id, special).map(hex);
            let pass = got.as_deref().is_ok_and(|got| got == expected);
            tally.record(format!("special={special}"), pass, || {
                format!("token {id} (special={special}): expected {expected} got {got:?}")
            });
        }
    }
    tally.finish(&format!("{dir} token_to_piece"));
}

#[test]
fn wordpiece_tokens_match_llama_cpp() {
    check_tokens(BERT);
}

#[test]
fn wordpiece_detokenizes_like_llama_cpp() {
    check_detokenize(BERT);
}

#[test]
fn wordpiece_pieces_match_llama_cpp() {
    check_pieces(BERT);
}

#[test]
fn gemma4_tokens_match_llama_cpp() {
    check_tokens(GEMMA4);
}

#[test]
fn gemma4_detokenizes_like_llama_cpp() {
    check_detokenize(GEMMA4);
}

#[test]
fn gemma4_pieces_match_llama_cpp() {
    check_pieces(GEMMA4);
}

/// A run of newlines that is a token is taken whole, not merged; everything else is
/// byte fallback.
#[test]
fn gemma4_newline_runs_match_llama_cpp() {
    check_tokens(GEMMA4_NEWLINES);
    check_detokenize(GEMMA4_NEWLINES);
    check_pieces(GEMMA4_NEWLINES);
}

/// WordPiece marks a word's first piece with `▁` (from BERT's pieces without `##`), so
/// detokenizing writes a space before each word, and `add_special` wraps the text in
/// `[CLS]` ... `[SEP]`, of which only `[CLS]` is dropped by `remove_special`.
#[test]
fn wordpiece_defaults() {
    let tokenizer = load(BERT);
    assert_eq!(tokenizer.kind(), TokenizerKind::WordPiece);
    assert!(tokenizer.add_bos() && !tokenizer.add_eos());
    let ids = tokenizer
        .tokenize("Unaffable, ÄPFEL!", true, false)
        .expect("tokenizes");
    let text = |id| tokenizer.vocab().text(id).expect("in the vocabulary");
    let texts: Vec<&str> = ids.iter().map(|&id| text(id)).collect();
    // As llama.cpp tokenizes it: "ffa" and "ble" continue "▁una".
    assert_eq!(
        texts,
        [
            "[CLS]", "▁una", "ffa", "ble", "▁,", "▁ap", "fe", "l", "▁!", "[SEP]"
        ]
    );
    let back = tokenizer
        .detokenize_lossy(&ids, true, false)
        .expect("detokenizes");
    assert_eq!(back, " unaffable, apfel!");
}

/// Gemma 4 always starts with BOS, writes spaces as `▁`, and keeps `</s>` as text.
#[test]
fn gemma4_defaults() {
    let tokenizer = load(GEMMA4);
    assert_eq!(tokenizer.kind(), TokenizerKind::Gemma4);
    assert!(tokenizer.add_bos());
    let ids = tokenizer
        .tokenize("a b</s>", true, true)
        .expect("tokenizes");
    assert_eq!(ids.first().copied(), tokenizer.specials().bos);
    assert!(
        ids.iter()
            .all(|&id| !tokenizer.is_control(id) || id == ids[0])
    );
    let back = tokenizer
        .detokenize_lossy(&ids, true, true)
        .expect("detokenizes");
    assert_eq!(back, "a b</s>");
}
