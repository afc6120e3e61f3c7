//! A sequence's saved state on a GPU: restored into another sequence of a fresh GPU context,
//! generation continues with the same greedy tokens; the blob is the backends' common
//! format, so a GPU's state loads into a CPU context of the same model and back.

mod common;
mod gpu_common;

use common::tiny_model::backends::{first_gpu, tiny_context};
use gpu_common::gpu;
use rocmforge::context::{Batch, Context, ContextParams};
use rocmforge::model::Placement;
use rocmforge::sampler::Sampler;

const PROMPT: [i32; 9] = [3, 141, 59, 26, 53, 58, 97, 93, 23];
const N_GEN: usize = 24;

fn context(variant: usize, placement: Placement, n_ctx: usize, n_seq_max: usize) -> Context {
    let params = ContextParams {
        n_ctx,
        n_seq_max,
        n_threads: 1,
        ..ContextParams::default()
    };
    tiny_context(variant, placement, &params)
}

/// Greedy tokens continuing `seq` from the logits at hand.
fn generate(ctx: &mut Context, seq: i32) -> Vec<u32> {
    let mut sampler = Sampler::greedy();
    (0..N_GEN)
        .map(|_| {
            let token = ctx.sample(&mut sampler, -1).unwrap();
            ctx.decode(&Batch {
                tokens: &[token as i32],
                seq_ids: Some(&[seq]),
                ..Batch::default()
            })
            .unwrap();
            token
        })
        .collect()
}

fn prompt_state(ctx: &mut Context) -> Vec<u8> {
    ctx.decode(&Batch {
        tokens: &PROMPT,
        ..Batch::default()
    })
    .unwrap();
    let mut blob = Vec::new();
    ctx.state_seq_save(0, &mut blob).unwrap();
    assert_eq!(blob.len(), ctx.state_seq_size(0).unwrap());
    blob
}

#[test]
#[ignore = "needs a GPU: run with --include-ignored on a GPU machine"]
fn a_restored_sequence_continues_like_the_uninterrupted_one() {
    let _device = gpu();
    // F16 and Q4_0 weights: the float and the integer decode paths.
    for variant in [1, 3] {
        let mut original = context(variant, first_gpu(), 128, 1);
        let blob = prompt_state(&mut original);
        let expected = generate(&mut original, 0);

        let mut restored = context(variant, first_gpu(), 256, 2);
        restored.state_seq_load(1, &blob).unwrap();
        assert_eq!(generate(&mut restored, 1), expected, "variant {variant}");

        // The GPU's blob in a CPU context, the CPU's back on the GPU.
        let mut cpu = context(variant, Placement::cpu(), 128, 1);
        cpu.state_seq_load(0, &blob).unwrap();
        assert_eq!(cpu.seq_pos_max(0).unwrap(), PROMPT.len() as i32 - 1);
        let mut cpu_blob = Vec::new();
        cpu.state_seq_save(0, &mut cpu_blob).unwrap();
        assert_eq!(
            cpu_blob, blob,
            "variant {variant}: a state read back changed"
        );
        restored.state_seq_load(0, &cpu_blob).unwrap();
        assert_eq!(generate(&mut restored, 0), expected, "variant {variant}");
    }
}

/// The last token's logits of a context that decoded `tokens` from `first`, dropped the
/// first `dropped` and, with `shift`, moved the rest down by `dropped`; then one more token.
fn logits_after(variant: usize, tokens: &[i32], dropped: i32, shift: bool) -> Vec<f32> {
    let mut ctx = context(variant, first_gpu(), 128, 1);
    ctx.decode(&Batch {
        tokens,
        ..Batch::default()
    })
    .unwrap();
    ctx.seq_remove(0, 0, dropped).unwrap();
    let mut next = tokens.len() as i32;
    if shift {
        ctx.seq_shift(0, dropped, -1, -dropped).unwrap();
        next -= dropped;
    }
    ctx.decode(&Batch {
        tokens: &[5],
        positions: Some(&[next]),
        ..Batch::default()
    })
    .unwrap();
    ctx.logits(-1).unwrap().to_vec()
}

#[test]
#[ignore = "needs a GPU: run with --include-ignored on a GPU machine"]
fn a_shifted_gpu_cache_scores_like_the_unshifted_one() {
    let _device = gpu();
    let tokens: Vec<i32> = (0..60).map(|i| (i * 37 + 11) % 200).collect();
    // F16 weights: f32 activations, so the only difference is the keys' f16 rounding.
    let shifted = logits_after(1, &tokens, 20, true);
    let unshifted = logits_after(1, &tokens, 20, false);
    let diff: f64 = shifted
        .iter()
        .zip(&unshifted)
        .map(|(&a, &b)| f64::from(a - b).powi(2))
        .sum();
    let norm: f64 = unshifted.iter().map(|&b| f64::from(b).powi(2)).sum();
    let distance = (diff / norm).sqrt();
    println!("GPU F16: shifted vs unshifted {distance:.2e}");
    assert!(distance <= 1e-3, "{distance:.2e}");
}
