//! Gemma 3 270M Q4_K_M on the CPU against llama.cpp's logits and greedy generations
//! (tests/fixtures/reference/gemma3/greedy.jsonl), with the bounds of the SmolLM2 parity
//! test (`tests/common/parity.rs`).

mod common;

use common::GEMMA3;
use common::parity::{
    assert_greedy_generation_matches, assert_teacher_forced_logits_match, context, references,
};

const FIXTURE: &str = "reference/gemma3/greedy.jsonl";

/// Most a prompt's mean top-10 |Δlogit| may be: the README's bound.
const MAX_PROMPT_MEAN_ABS_DIFF: f64 = 0.3;

#[test]
fn teacher_forced_logits_match_llama_cpp() {
    assert_teacher_forced_logits_match(
        &mut context(GEMMA3),
        &references(FIXTURE),
        MAX_PROMPT_MEAN_ABS_DIFF,
    );
}

#[test]
fn greedy_generation_matches_llama_cpp() {
    assert_greedy_generation_matches(&mut context(GEMMA3), &references(FIXTURE));
}
