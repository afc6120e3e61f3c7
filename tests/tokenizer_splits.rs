//! Every implemented pre-tokenizer split, and random text over many Unicode categories,
//! against llama.cpp. The fixtures come from `scripts/gen-tokenizer-fixtures.py`: SmolLM2's
//! vocabulary with `tokenizer.ggml.pre` replaced, and both models on seeded random strings.

mod common;
mod tokenizer_common;

use tokenizer_common::{ids, read_jsonl};

use rocmforge::gguf::OwnedGguf;
use rocmforge::tokenizer::{Tokenizer, VocabParts};

fn parts(model: &str) -> VocabParts {
    let gguf = OwnedGguf::open(&common::model_path(model)).expect("model opens");
    VocabParts::from_gguf(gguf.file()).expect("tokenizer metadata reads")
}

/// Compares every line; lines without modes are plain tokenization.
fn check(tokenizer: &Tokenizer, relative: &str) {
    let lines = read_jsonl(relative);
    let mut failures = Vec::new();
    for v in &lines {
        let text = v["text"].as_str().expect("text");
        let add = v["add_special"].as_bool().unwrap_or(false);
        let parse = v["parse_special"].as_bool().unwrap_or(false);
        let got = tokenizer.tokenize(text, add, parse).expect("tokenizes");
        let expected = ids(&v["ids"]);
        if got != expected {
            failures.push(format!(
                "{text:?} add_special={add} parse_special={parse}\n  expected {expected:?}\n  got      {got:?}"
            ));
        }
    }
    println!(
        "{relative}: {}/{} lines equal",
        lines.len() - failures.len(),
        lines.len()
    );
    assert!(
        failures.is_empty(),
        "{relative}: {} of {} lines differ:\n{}",
        failures.len(),
        lines.len(),
        failures.join("\n")
    );
}

fn check_pre(pre: &str) {
    let mut parts = parts(common::SMOLLM2);
    parts.pre = Some(pre.to_owned());
    let tokenizer = Tokenizer::from_parts(&parts).expect("tokenizer builds");
    check(&tokenizer, &format!("tokenizer/pre/{pre}.jsonl"));
}

#[test]
fn pre_default() {
    check_pre("default");
}

#[test]
fn pre_gpt2() {
    check_pre("gpt-2");
}

#[test]
fn pre_llama_bpe() {
    check_pre("llama-bpe");
}

#[test]
fn pre_smollm() {
    check_pre("smollm");
}

#[test]
fn pre_qwen2() {
    check_pre("qwen2");
}

#[test]
fn pre_qwen35() {
    check_pre("qwen35");
}

/// SmolLM2's merges never join a letter and a combining mark, so `pre_qwen35` cannot see
/// whether the split keeps them together; with these tokens and merges added (as
/// scripts/gen-tokenizer-fixtures.py adds them, `MARK_TOKENS`) it can.
#[test]
fn pre_qwen35_joins_combining_marks_to_letters() {
    let mut parts = parts(common::SMOLLM2);
    parts.pre = Some("qwen35".to_owned());
    let added = [
        ("Ìģ", "Ì ģ"),
        ("ÌĪ", "Ì Ī"),
        ("eÌģ", "e Ìģ"),
        ("aÌģ", "a Ìģ"),
        ("oÌĪ", "o ÌĪ"),
    ];
    for (token, merge) in added {
        parts.tokens.push(token.to_owned());
        parts.merges.push(merge.to_owned());
        if let Some(types) = parts.token_types.as_mut() {
            types.push(1);
        }
    }
    parts.declared_vocab_size = Some(parts.tokens.len() as u64);
    let tokenizer = Tokenizer::from_parts(&parts).expect("tokenizer builds");
    check(&tokenizer, "tokenizer/pre/qwen35-marks.jsonl");
}

#[test]
fn pre_deepseek_llm() {
    check_pre("deepseek-llm");
}

#[test]
fn pre_deepseek_coder() {
    check_pre("deepseek-coder");
}

#[test]
fn pre_starcoder() {
    check_pre("starcoder");
}

#[test]
fn pre_falcon() {
    check_pre("falcon");
}

#[test]
fn pre_refact() {
    check_pre("refact");
}

#[test]
fn pre_command_r() {
    check_pre("command-r");
}

#[test]
fn pre_mpt() {
    check_pre("mpt");
}

#[test]
fn pre_stablelm2() {
    check_pre("stablelm2");
}

#[test]
fn pre_dbrx() {
    check_pre("dbrx");
}

#[test]
fn smollm2_random_text() {
    let tokenizer = Tokenizer::from_parts(&parts(common::SMOLLM2)).expect("builds");
    check(&tokenizer, "tokenizer/random/smollm2.jsonl");
}

#[test]
fn gemma3_random_text() {
    let tokenizer = Tokenizer::from_parts(&parts(common::GEMMA3)).expect("builds");
    check(&tokenizer, "tokenizer/random/gemma3.jsonl");
}

#[test]
fn gemma3_with_space_prefix_random_text() {
    let mut parts = parts(common::GEMMA3);
    parts.add_space_prefix = Some(true);
    let tokenizer = Tokenizer::from_parts(&parts).expect("builds");
    check(&tokenizer, "tokenizer/random/gemma3-space-prefix.jsonl");
}
