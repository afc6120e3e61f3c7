//! SmolLM2-135M Q4_1 on the CPU against llama.cpp's logits and greedy generations
//! (tests/fixtures/reference/smollm2/greedy.jsonl). The bounds are those of the reference
//! README: an exact float64 engine scores 98.7% argmax agreement and 0.13–0.19 mean
//! top-10 |Δlogit| per prompt against llama.cpp, whose matmuls quantize activations to 8
//! bits. Each prompt's mean is held to 0.22: subtle errors (the attention scale off by 5%,
//! the RoPE base off by 1.5x) still keep the mean under the README's looser 0.3, and this
//! bound is what makes them fail.

mod common;

use std::sync::Arc;

use common::{SMOLLM2, model_path};
use rocmforge::backend::{DeviceChoice, enumerate};
use rocmforge::context::{Batch, Context, ContextParams, WantLogits};
use rocmforge::gguf::OwnedGguf;
use rocmforge::model::{Model, Placement};
use serde_json::Value as Json;

/// Most a prompt's mean top-10 |Δlogit| may be (exact arithmetic: 0.13–0.19).
const MAX_PROMPT_MEAN_ABS_DIFF: f64 = 0.22;

struct Reference {
    prompt_ids: Vec<i32>,
    generated_ids: Vec<i32>,
    /// Per generated position: llama.cpp's ten best `(token, logit)`, best first.
    top_logits: Vec<Vec<(i32, f32)>>,
}

fn references() -> Vec<Reference> {
    let path = common::fixture_path("reference/smollm2/greedy.jsonl");
    let text = std::fs::read_to_string(path).unwrap();
    text.lines()
        .map(|line| {
            let j: Json = serde_json::from_str(line).unwrap();
            let ids = |key: &str| -> Vec<i32> {
                j[key]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|v| v.as_i64().unwrap() as i32)
                    .collect()
            };
            let top_logits = j["top_logits"]
                .as_array()
                .unwrap()
                .iter()
                .map(|pos| {
                    pos.as_array()
                        .unwrap()
                        .iter()
                        .map(|pair| {
                            (
                                pair[0].as_i64().unwrap() as i32,
                                pair[1].as_f64().unwrap() as f32,
                            )
                        })
                        .collect()
                })
                .collect();
            Reference {
                prompt_ids: ids("prompt_ids"),
                generated_ids: ids("generated_ids"),
                top_logits,
            }
        })
        .collect()
}

/// The model on the device `ROCMFORGE_TEST_DEVICE` names (an index into the device list;
/// the CPU when unset), held to the same bounds on every device.
fn context() -> Context {
    let device = test_device();
    let placement = Placement::choose(&enumerate(), DeviceChoice::Index(device)).unwrap();
    eprintln!("device {device}: {}", placement.device.name);
    let gguf = OwnedGguf::open(&model_path(SMOLLM2)).unwrap();
    let model = Arc::new(Model::from_gguf_on(gguf, placement).unwrap());
    let params = ContextParams {
        n_ctx: 256,
        n_batch: 128,
        n_threads: 2,
        ..ContextParams::default()
    };
    Context::new(model, &params).unwrap()
}

fn argmax(logits: &[f32]) -> i32 {
    let mut best = 0;
    for (i, &v) in logits.iter().enumerate() {
        if v > logits[best] {
            best = i;
        }
    }
    best as i32
}

#[test]
fn teacher_forced_logits_match_llama_cpp() {
    let mut ctx = context();
    let (mut agree, mut total) = (0, 0);
    // Every prompt is measured before any bound is checked, so a failure shows them all.
    let mut failures = Vec::new();
    for (p, r) in references().iter().enumerate() {
        let tokens: Vec<i32> = r
            .prompt_ids
            .iter()
            .chain(&r.generated_ids)
            .copied()
            .collect();
        let first = r.prompt_ids.len() - 1;
        let want: Vec<u8> = (0..tokens.len())
            .map(|i| u8::from(i >= first && i < first + r.top_logits.len()))
            .collect();
        ctx.seq_remove(0, 0, -1).unwrap();
        ctx.decode(&Batch {
            tokens: &tokens,
            want_logits: WantLogits::Flags(&want),
            ..Batch::default()
        })
        .unwrap();

        let mut abs_diff_sum = 0.0f64;
        let mut n_diffs = 0;
        for (i, top) in r.top_logits.iter().enumerate() {
            let logits = ctx.logits(i as i32).unwrap();
            let ours = argmax(logits);
            let (best, best_logit) = top[0];
            total += 1;
            if ours == best {
                agree += 1;
            }
            match top.iter().find(|&&(t, _)| t == ours) {
                None => failures.push(format!(
                    "prompt {p} position {i}: our argmax {ours} is not in llama.cpp's top 10"
                )),
                Some(&(_, theirs_for_ours)) if best_logit - theirs_for_ours > 1.0 => {
                    failures.push(format!(
                        "prompt {p} position {i}: our choice is {} logits below llama.cpp's best",
                        best_logit - theirs_for_ours
                    ))
                }
                Some(_) => {}
            }
            for &(t, l) in top {
                abs_diff_sum += f64::from((logits[t as usize] - l).abs());
                n_diffs += 1;
            }
        }
        let mean = abs_diff_sum / n_diffs as f64;
        println!("prompt {p}: mean top-10 |Δlogit| = {mean:.4}");
        if mean > MAX_PROMPT_MEAN_ABS_DIFF {
            failures.push(format!(
                "prompt {p}: mean top-10 |Δlogit| {mean:.4} above {MAX_PROMPT_MEAN_ABS_DIFF}"
            ));
        }
    }
    let rate = agree as f64 / total as f64;
    println!("argmax agreement: {agree}/{total} = {:.1}%", 100.0 * rate);
    if rate < 0.95 {
        failures.push(format!("argmax agreement {rate:.3} below 95%"));
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn greedy_generation_matches_llama_cpp() {
    let mut ctx = context();
    for (p, r) in references().iter().enumerate() {
        ctx.seq_remove(0, 0, -1).unwrap();
        ctx.decode(&Batch {
            tokens: &r.prompt_ids,
            ..Batch::default()
        })
        .unwrap();
        for (i, &expected) in r.generated_ids.iter().enumerate() {
            let ours = argmax(ctx.logits(-1).unwrap());
            if ours != expected {
                // Allowed only at a near-tie of llama.cpp's own first two choices.
                let top = &r.top_logits[i];
                let gap = top[0].1 - top[1].1;
                assert!(
                    ours == top[1].0 && gap <= 0.3,
                    "prompt {p} token {i}: ours {ours}, llama.cpp {expected} (gap {gap})"
                );
                println!("prompt {p}: first difference at token {i}, a near-tie (gap {gap:.3})");
                break;
            }
            ctx.decode(&Batch {
                tokens: &[ours],
                ..Batch::default()
            })
            .unwrap();
        }
    }
}

/// Which device `context` runs on: 0 is the CPU.
fn test_device() -> usize {
    std::env::var("ROCMFORGE_TEST_DEVICE").map_or(0, |d| {
        d.parse().expect("ROCMFORGE_TEST_DEVICE is a device index")
    })
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
