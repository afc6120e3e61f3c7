//! SmolLM2-135M Q4_1 on the CPU against llama.cpp's logits and greedy generations
//! (tests/fixtures/reference/smollm2/greedy.jsonl). The bounds are those of the reference
//! README: an exact float64 engine scores 98.7% argmax agreement and 0.13–0.19 mean
//! top-10 |Δlogit| per prompt against llama.cpp, whose matmuls quantize activations to 8
//! bits. Each prompt's mean is held to 0.22: subtle errors (the attention scale off by 5%,
//! the RoPE base off by 1.5x) still keep the mean under the README's looser 0.3, and this
//! bound is what makes them fail.

mod common;

use common::SMOLLM2;
use common::parity::{
    Reference, assert_greedy_generation_matches, assert_teacher_forced_logits_match, test_device,
};
use rocmforge::context::{Batch, Context, WantLogits};

/// Most a prompt's mean top-10 |Δlogit| may be (exact arithmetic: 0.13–0.19).
const MAX_PROMPT_MEAN_ABS_DIFF: f64 = 0.22;

const FIXTURE: &str = "reference/smollm2/greedy.jsonl";

fn references() -> Vec<Reference> {
    common::parity::references(FIXTURE)
}

fn context() -> Context {
    common::parity::context(SMOLLM2)
}

#[test]
fn teacher_forced_logits_match_llama_cpp() {
    assert_teacher_forced_logits_match(&mut context(), &references(), MAX_PROMPT_MEAN_ABS_DIFF);
}

#[test]
fn greedy_generation_matches_llama_cpp() {
    assert_greedy_generation_matches(&mut context(), &references());
}

/// One batch of the prompt and 8 generated tokens against one step per token. On the CPU
/// both run the same kernels, so they agree to rounding: 1e-3 of the largest logit. A GPU
/// multiplies a batch of more than 8 tokens through the vendor BLAS with activations
/// rounded to f16, and a single step with activations quantized to 8 bits per 32 values
/// as the CPU does: two methods, which on SmolLM2 differ by 1.8e-2 to 5.9e-2 of the
/// largest logit per token (an H200, measured; its first tokens' activations have the
/// largest outliers, which 8-bit blocks round coarsest). Held to 1e-1 there, the CPU's
/// own bound against float64 for block weights: a mixed-up row or position moves the
/// logits by their own size. Both paths are held to llama.cpp by the tests above.
#[test]
fn batched_prefill_equals_single_steps() {
    let r = &references()[1];
    let tokens: Vec<i32> = r
        .prompt_ids
        .iter()
        .chain(&r.generated_ids[..8])
        .copied()
        .collect();
    let mut batched = context();
    batched
        .decode(&Batch {
            tokens: &tokens,
            want_logits: WantLogits::All,
            ..Batch::default()
        })
        .unwrap();
    let mut stepped = context();
    let bound = if test_device() == 0 { 1e-3 } else { 1e-1 };
    let mut worst = (0.0f32, 0);
    for (i, &t) in tokens.iter().enumerate() {
        stepped
            .decode(&Batch {
                tokens: &[t],
                ..Batch::default()
            })
            .unwrap();
        let one = stepped.logits(-1).unwrap();
        let all = batched.logits(i as i32).unwrap();
        let scale = all.iter().fold(0.0f32, |m, v| m.max(v.abs()));
        let token_worst = one
            .iter()
            .zip(all)
            .fold(0.0f32, |m, (a, b)| m.max((a - b).abs() / scale));
        eprintln!("token {i}: |Δlogit| / max |logit| {token_worst:.2e}");
        if token_worst > worst.0 {
            worst = (token_worst, i);
        }
    }
    let (worst, at) = worst;
    assert!(
        worst <= bound,
        "batched vs single steps: |Δlogit| / max |logit| {worst:.2e} at token {at} (bound {bound:.0e})"
    );
}
