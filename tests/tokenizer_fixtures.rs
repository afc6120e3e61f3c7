//! Token-exact parity with llama.cpp on both test models, and round trips of every
//! fixture text. Ground truth: `tests/fixtures/tokenizer/<model>/tokenize.jsonl` (text,
//! add_special, parse_special, ids from `llama_tokenize`) and `prompts.jsonl` (prompts
//! tokenized with special parsing, from the greedy-decoding fixtures).

mod common;
mod tokenizer_common;

use tokenizer_common::{ids, read_jsonl};

use rocmforge::gguf::OwnedGguf;
use rocmforge::tokenizer::Tokenizer;

const SMOLLM2_DIR: &str = "tokenizer/smollm2-135m-instruct-q4_1";
const GEMMA3_DIR: &str = "tokenizer/gemma3-270m-q4_k_m";

fn load(model: &str) -> Tokenizer {
    let gguf = OwnedGguf::open(&common::model_path(model)).expect("model opens");
    Tokenizer::from_gguf(gguf.file()).expect("tokenizer builds")
}

struct Case {
    text: String,
    add_special: bool,
    parse_special: bool,
    ids: Vec<u32>,
}

fn cases(dir: &str) -> Vec<Case> {
    read_jsonl(&format!("{dir}/tokenize.jsonl"))
        .into_iter()
        .map(|v| Case {
            text: v["text"].as_str().expect("text").to_owned(),
            add_special: v["add_special"].as_bool().expect("add_special"),
            parse_special: v["parse_special"].as_bool().expect("parse_special"),
            ids: ids(&v["ids"]),
        })
        .collect()
}

/// Checks every fixture line, printing a pass count per (add_special, parse_special)
/// mode, and fails listing each mismatch.
fn check_parity(tokenizer: &Tokenizer, dir: &str) {
    let cases = cases(dir);
    let mut failures = Vec::new();
    let mut counts = std::collections::BTreeMap::new();
    for case in &cases {
        let got = tokenizer
            .tokenize(&case.text, case.add_special, case.parse_special)
            .expect("tokenizes");
        let entry = counts
            .entry((case.add_special, case.parse_special))
            .or_insert((0, 0));
        entry.1 += 1;
        if got == case.ids {
            entry.0 += 1;
        } else {
            failures.push(format!(
                "{:?} add_special={} parse_special={}\n  expected {:?}\n  got      {:?}",
                case.text, case.add_special, case.parse_special, case.ids, got
            ));
        }
    }
    for ((add, parse), (pass, total)) in &counts {
        println!("{dir}: add_special={add} parse_special={parse}: {pass}/{total} lines equal");
    }
    assert!(
        failures.is_empty(),
        "{} of {} lines differ:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
}

fn check_prompts(tokenizer: &Tokenizer, dir: &str) {
    for v in read_jsonl(&format!("{dir}/prompts.jsonl")) {
        let prompt = v["prompt"].as_str().expect("prompt");
        let expected = ids(&v["prompt_ids"]);
        let got = tokenizer.tokenize(prompt, true, true).expect("tokenizes");
        assert_eq!(got, expected, "prompt {prompt:?}");
    }
}

/// detokenize(tokenize(s)) == s: the BOS/EOS that tokenizing added are removed, and
/// special tokens parsed from the text are written back as text. (Neither model adds a
/// space prefix, so nothing else differs.)
fn check_round_trip(tokenizer: &Tokenizer, dir: &str) {
    for case in cases(dir) {
        let ids = tokenizer
            .tokenize(&case.text, case.add_special, case.parse_special)
            .expect("tokenizes");
        let back = tokenizer
            .detokenize(&ids, case.add_special, case.parse_special)
            .expect("detokenizes");
        assert_eq!(
            String::from_utf8_lossy(&back),
            case.text,
            "round trip of {:?} (add_special={}, parse_special={})",
            case.text,
            case.add_special,
            case.parse_special
        );
    }
}

#[test]
fn smollm2_matches_llama_cpp() {
    check_parity(&load(common::SMOLLM2), SMOLLM2_DIR);
}

#[test]
fn gemma3_matches_llama_cpp() {
    check_parity(&load(common::GEMMA3), GEMMA3_DIR);
}

#[test]
fn smollm2_prompts_match_llama_cpp() {
    check_prompts(&load(common::SMOLLM2), SMOLLM2_DIR);
}

#[test]
fn gemma3_prompts_match_llama_cpp() {
    check_prompts(&load(common::GEMMA3), GEMMA3_DIR);
}

#[test]
fn smollm2_round_trips_every_fixture_text() {
    check_round_trip(&load(common::SMOLLM2), SMOLLM2_DIR);
}

#[test]
fn gemma3_round_trips_every_fixture_text() {
    check_round_trip(&load(common::GEMMA3), GEMMA3_DIR);
}
