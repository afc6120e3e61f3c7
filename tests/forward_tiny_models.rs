//! The forward pass on tiny llama models built in memory (tests/common/tiny_model): every
//! weight type the CPU runs, odd sizes, 1, 3 and 4 query heads per K/V head, head sizes 64
//! and 128, tied and untied output heads. Each scenario's logits, at every step, are held
//! to the backend's oracle: on the CPU, a float64 forward pass written from the math.
//! Nothing is downloaded.

mod common;

use common::tiny_model::backends::Backend;
use common::tiny_model::check::{Step, TEXT, check_every_model, scenario_tokens};
use common::tiny_model::engine::{Engine, N_SEQUENCES};
use common::tiny_model::vocabulary::{N_TOKENS, tokenizer};

/// A prompt of 20 tokens, then 10 decode steps of one token.
fn prefill_then_decode(e: &mut dyn Engine, tokens: &[i32]) -> Vec<Step> {
    let mut steps = prefill(e, 0, &tokens[..20]);
    for (i, &token) in tokens[20..30].iter().enumerate() {
        steps.extend(decode(e, &[(0, token)], &format!("decode step {i}")));
    }
    steps
}

/// Two prompts in one batch, interleaved, then five steps decoding both at once: each
/// sequence must get the logits it gets alone (the reference keeps every sequence apart).
fn two_sequences_in_one_batch(e: &mut dyn Engine, tokens: &[i32]) -> Vec<Step> {
    let (a, b) = (&tokens[..13], &tokens[30..39]);
    let mut batch = Vec::new();
    for i in 0..a.len().max(b.len()) {
        batch.extend(a.get(i).map(|&t| (0, t)));
        batch.extend(b.get(i).map(|&t| (1, t)));
    }
    let mut steps = decode(e, &batch, "interleaved prompts");
    for i in 0..5 {
        let pair = [(0, tokens[13 + i]), (1, tokens[39 + i])];
        steps.extend(decode(e, &pair, &format!("decode step {i}")));
    }
    steps
}

/// A prompt of 20 tokens; sequence 1 takes its first 13 positions and sequence 2 all of
/// them; then six steps give the three sequences different tokens in one batch. The
/// shared K/V blocks hold positions the copies do not (13-15 of the first block, for
/// sequence 1) or that they will write next (16-19 of the second), so each write needs
/// the block copied first.
fn copied_prefix_then_different_continuations(e: &mut dyn Engine, tokens: &[i32]) -> Vec<Step> {
    const { assert!(N_SEQUENCES >= 3) };
    let mut steps = prefill(e, 0, &tokens[..20]);
    e.seq_copy(0, 1, 0, 13);
    e.seq_copy(0, 2, 0, -1);
    for i in 0..6 {
        let batch = [
            (0, tokens[20 + i]),
            (1, tokens[40 + i]),
            (2, tokens[50 + i]),
        ];
        steps.extend(decode(e, &batch, &format!("after the copies, step {i}")));
    }
    steps
}

/// A prompt of 20 tokens, positions 6-17 removed (across the boundary of two K/V
/// blocks), then 10 decode steps at positions 20-29: attention skips the removed tokens
/// and the others keep their positions.
fn removed_middle_range_then_decode(e: &mut dyn Engine, tokens: &[i32]) -> Vec<Step> {
    let mut steps = prefill(e, 0, &tokens[..20]);
    e.seq_remove(0, 6, 18);
    for (i, &token) in tokens[20..30].iter().enumerate() {
        steps.extend(decode(
            e,
            &[(0, token)],
            &format!("after the removal, step {i}"),
        ));
    }
    steps
}

/// `prompt` on sequence `seq` in one batch, with the logits of every token.
fn prefill(e: &mut dyn Engine, seq: i32, prompt: &[i32]) -> Vec<Step> {
    let batch: Vec<(i32, i32)> = prompt.iter().map(|&t| (seq, t)).collect();
    decode(e, &batch, "prefill")
}

/// One batch; a step per token, named by `what`, its index, sequence and token.
fn decode(e: &mut dyn Engine, batch: &[(i32, i32)], what: &str) -> Vec<Step> {
    let logits = e.decode(batch);
    batch
        .iter()
        .zip(logits)
        .enumerate()
        .map(|(i, (&(seq, token), logits))| Step {
            what: format!("{what}, batch row {i} (sequence {seq}, token {token})"),
            logits,
        })
        .collect()
}

on_every_backend!(
    prefill_then_decode_matches,
    two_sequences_in_one_batch_match_each_alone,
    a_copied_prefix_continues_like_the_original,
    removed_positions_are_skipped_by_attention,
);

fn prefill_then_decode_matches(backend: Backend) {
    check_every_model(backend, prefill_then_decode);
}

fn two_sequences_in_one_batch_match_each_alone(backend: Backend) {
    check_every_model(backend, two_sequences_in_one_batch);
}

fn a_copied_prefix_continues_like_the_original(backend: Backend) {
    check_every_model(backend, copied_prefix_then_different_continuations);
}

fn removed_positions_are_skipped_by_attention(backend: Backend) {
    check_every_model(backend, removed_middle_range_then_decode);
}

/// The tiny models' vocabulary is one the tokenizer takes: the scenario text (enough of
/// it for every scenario, which reads tokens up to index 55) round-trips, and merges
/// apply.
#[test]
fn the_tiny_vocabulary_round_trips_the_scenario_text() {
    let tokens = scenario_tokens();
    assert!(tokens.len() >= 56, "{} tokens", tokens.len());
    assert!(tokens.len() < TEXT.len(), "no merge applied");
    assert!(tokens.iter().all(|&t| (0..N_TOKENS as i32).contains(&t)));
    let ids: Vec<u32> = tokens.iter().map(|&t| t as u32).collect();
    let text = tokenizer()
        .detokenize(&ids, false, false)
        .expect("detokenizes");
    assert_eq!(String::from_utf8_lossy(&text), TEXT);
}
