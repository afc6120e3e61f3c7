//! A batch that mixes sequences, and a sequence that starts from a copied prefix, give
//! each sequence the logits it gets when decoded alone from scratch (SmolLM2 on the
//! CPU). Sequences must not see each other's tokens, and a shared KV block must be
//! copied, K/V included, before a sequence writes into it.

mod common;

use std::sync::Arc;

use common::{SMOLLM2, model_path};
use rocmforge::context::{Batch, Context, ContextParams, KV_BLOCK_SIZE, WantLogits};
use rocmforge::model::Model;
use serde_json::Value as Json;

/// Prompt plus greedy continuation of each reference prompt (token ids from llama.cpp).
fn reference_tokens() -> Vec<Vec<i32>> {
    let path = common::fixture_path("reference/smollm2/greedy.jsonl");
    let text = std::fs::read_to_string(&path).expect("reading greedy.jsonl");
    text.lines()
        .map(|line| {
            let j: Json = serde_json::from_str(line).expect("a JSON line");
            ["prompt_ids", "generated_ids"]
                .iter()
                .flat_map(|key| j[key].as_array().expect("an id array").clone())
                .map(|id| id.as_i64().expect("a token id") as i32)
                .collect()
        })
        .collect()
}

fn model() -> Arc<Model> {
    Arc::new(Model::open(&model_path(SMOLLM2)).expect("SmolLM2 opens"))
}

fn context(model: &Arc<Model>, n_seq_max: usize) -> Context {
    let params = ContextParams {
        n_ctx: 256,
        n_seq_max,
        n_batch: 128,
        n_threads: 2,
        ..ContextParams::default()
    };
    Context::new(Arc::clone(model), &params).expect("a context")
}

/// Decodes `tokens` on sequence 0 of a fresh context; the logits of every token from
/// `first_logits` on.
fn alone(model: &Arc<Model>, tokens: &[i32], first_logits: usize) -> Vec<Vec<f32>> {
    let mut ctx = context(model, 1);
    let rows = decode(&mut ctx, &on(0, tokens));
    rows[first_logits..].to_vec()
}

/// `(seq, token)` pairs putting every token on sequence `seq`.
fn on(seq: i32, tokens: &[i32]) -> Vec<(i32, i32)> {
    tokens.iter().map(|&t| (seq, t)).collect()
}

/// Decodes `(seq, token)` pairs as one batch, each token at its sequence's next position;
/// the logits of every token, in batch order.
fn decode(ctx: &mut Context, entries: &[(i32, i32)]) -> Vec<Vec<f32>> {
    let seq_ids: Vec<i32> = entries.iter().map(|&(s, _)| s).collect();
    let tokens: Vec<i32> = entries.iter().map(|&(_, t)| t).collect();
    ctx.decode(&Batch {
        tokens: &tokens,
        seq_ids: Some(&seq_ids),
        want_logits: WantLogits::All,
        ..Batch::default()
    })
    .expect("decode");
    (0..tokens.len())
        .map(|i| ctx.logits(i as i32).expect("logits").to_vec())
        .collect()
}

/// A token's logits must not depend on what else its batch holds, bit for bit: the CPU
/// engine quantizes each token's activations on their own and sums every dot product in
/// one order whatever the batch, so a batch changes no rounding (measured: equal to the
/// bit). A tolerance would buy nothing: activations are quantized to 8 bits, so a change
/// of one ulp per sublayer (what a matmul summing in another order gives) already moves
/// logits by up to 1.3, as much as a real defect may; no bound is tight and tolerant.
fn assert_same(what: &str, ours: &[f32], alone: &[f32]) {
    assert_eq!(
        ours.len(),
        alone.len(),
        "{what}: logit rows differ in length"
    );
    let diff = ours
        .iter()
        .zip(alone)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max);
    assert!(
        ours == alone,
        "{what}: logits differ from the sequence decoded alone by up to {diff}"
    );
}

fn blocks_used(ctx: &Context) -> usize {
    ctx.memory().kv.blocks_used
}

fn concat(parts: &[&[i32]]) -> Vec<i32> {
    parts.concat()
}

#[test]
fn interleaved_sequences_match_separate_runs() {
    let model = model();
    let refs = reference_tokens();
    let (a, b) = (&refs[1][..31], &refs[5][..25]);
    let (want_a, want_b) = (alone(&model, a, 0), alone(&model, b, 0));

    // a0 b0 a1 b1 … then the rest of the longer one; the last token of each follows in
    // a two-token batch, as in parallel generation.
    let mut ctx = context(&model, 2);
    let (prefill_a, prefill_b) = (&a[..a.len() - 1], &b[..b.len() - 1]);
    let mut entries = Vec::new();
    for i in 0..prefill_a.len().max(prefill_b.len()) {
        entries.extend(prefill_a.get(i).map(|&t| (0, t)));
        entries.extend(prefill_b.get(i).map(|&t| (1, t)));
    }
    let rows = decode(&mut ctx, &entries);
    let (mut next_a, mut next_b) = (0, 0);
    for (&(seq, _), row) in entries.iter().zip(&rows) {
        let (next, want, name) = match seq {
            0 => (&mut next_a, &want_a, "a"),
            _ => (&mut next_b, &want_b, "b"),
        };
        assert_same(&format!("batch 1, {name}[{next}]"), row, &want[*next]);
        *next += 1;
    }
    let rows = decode(&mut ctx, &[(1, b[b.len() - 1]), (0, a[a.len() - 1])]);
    assert_same("batch 2, b's last token", &rows[0], &want_b[b.len() - 1]);
    assert_same("batch 2, a's last token", &rows[1], &want_a[a.len() - 1]);
}

/// A chat prefix of 21 tokens (one full KV block and 5 tokens of a second, so the
/// continuations write into a block both sequences share), its own continuation and
/// another sequence's tokens as a second continuation.
fn shared_prefix(refs: &[Vec<i32>]) -> (&[i32], &[i32], &[i32]) {
    let prefix = &refs[3][..21];
    assert_eq!(
        prefix.len() / KV_BLOCK_SIZE,
        1,
        "the prefix ends inside block 1"
    );
    (prefix, &refs[3][21..29], &refs[6][..8])
}

#[test]
fn copied_prefix_with_different_continuations_matches_scratch() {
    let model = model();
    let refs = reference_tokens();
    let (prefix, c0, c1) = shared_prefix(&refs);
    let last = prefix.len() - 1;
    let want0 = alone(&model, &concat(&[prefix, c0]), last);
    let want1 = alone(&model, &concat(&[prefix, c1]), last);

    let mut ctx = context(&model, 2);
    let rows = decode(&mut ctx, &on(0, prefix));
    assert_same("prefix, last token", &rows[last], &want0[0]);
    let prefix_blocks = blocks_used(&ctx);
    ctx.seq_copy(0, 1, 0, -1).expect("seq_copy");
    let shared_blocks = blocks_used(&ctx);

    // Both sequences write into the shared, partly filled block in one batch: sequence
    // 1 first (it gets a private copy), then sequence 0 (by then its only holder).
    let rows = decode(&mut ctx, &[(1, c1[0]), (0, c0[0])]);
    assert_same("seq 1, continuation[0]", &rows[0], &want1[1]);
    assert_same("seq 0, continuation[0]", &rows[1], &want0[1]);
    let after_first_writes = blocks_used(&ctx);
    for (i, row) in decode(&mut ctx, &on(1, &c1[1..])).iter().enumerate() {
        assert_same(
            &format!("seq 1, continuation[{}]", i + 1),
            row,
            &want1[i + 2],
        );
    }
    for (i, row) in decode(&mut ctx, &on(0, &c0[1..])).iter().enumerate() {
        assert_same(
            &format!("seq 0, continuation[{}]", i + 1),
            row,
            &want0[i + 2],
        );
    }

    assert_eq!(shared_blocks, prefix_blocks, "a copy shares blocks");
    assert_eq!(after_first_writes, prefix_blocks + 1, "one copy on write");
}

#[test]
fn copied_prefix_of_a_longer_sequence_matches_scratch() {
    let model = model();
    let refs = reference_tokens();
    let (prefix, c0, c1) = shared_prefix(&refs);
    let after_c0 = refs[3][29];
    let want0 = alone(
        &model,
        &concat(&[prefix, c0, &[after_c0]]),
        prefix.len() + c0.len(),
    );
    let want1 = alone(&model, &concat(&[prefix, c1]), prefix.len());

    // Sequence 0 holds prefix + c0; sequence 1 takes only the prefix, so the block they
    // share also holds c0, which sequence 1 must neither see nor overwrite.
    let mut ctx = context(&model, 2);
    decode(&mut ctx, &on(0, &concat(&[prefix, c0])));
    let used = blocks_used(&ctx);
    ctx.seq_copy(0, 1, 0, prefix.len() as i32)
        .expect("seq_copy");
    let shared_blocks = blocks_used(&ctx);

    for (i, row) in decode(&mut ctx, &on(1, c1)).iter().enumerate() {
        assert_same(&format!("seq 1, continuation[{i}]"), row, &want1[i]);
    }
    let rows = decode(&mut ctx, &[(0, after_c0)]);
    assert_same("seq 0 after seq 1's writes", &rows[0], &want0[0]);

    assert_eq!(shared_blocks, used, "a copy shares blocks");
    assert_eq!(blocks_used(&ctx), used + 1, "one copy on write");
}
