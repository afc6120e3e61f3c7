//! Context shift: drop the first 100 tokens of a 400-token sequence and shift the other 300
//! down to positions 0..300. RoPE attention depends on position differences only, so the
//! shifted cache must score the next tokens as the unshifted cache with the same 100 tokens
//! dropped scores them 100 positions later: the same hidden states, the same distances, and
//! only the shifted keys' rounding back to f16 between them.
//!
//! How close "the same" can be is set by the arithmetic: with F16 weights the CPU multiplies
//! f32 activations and the two runs agree to 1e-3 relative L2 (the bound; measured
//! about 2e-5); SmolLM2 Q4_1's products round their activations to 8 bits, so a change in
//! the last bit of a key moves later values by whole rounding steps, and the bound there is
//! the model's own noise floor, measured side by side: the same tokens processed one
//! position later (pure translation, nothing rounded differently but the angles).
//!
//! (A context fed only the last 300 tokens is no reference: their keys and values were
//! computed while the dropped tokens were visible, which a fresh context cannot repeat.
//! The test prints that distance to show the difference.)

mod common;

use std::sync::Arc;

use common::{SMOLLM2, model_path, relative_l2};
use rocmforge::context::{Batch, Context, ContextParams};
use rocmforge::gguf::OwnedGguf;
use rocmforge::model::Model;

const N_TOKENS: usize = 400;
const DROPPED: i32 = 100;
const STEPS: usize = 4;

/// Token ids spread over the vocabulary, the same on every run.
fn tokens() -> Vec<i32> {
    let mut state = 12345u32;
    (0..N_TOKENS)
        .map(|_| {
            state = state.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
            200 + (state >> 8) as i32 % 40_000
        })
        .collect()
}

fn context(model: &Arc<Model>) -> Context {
    let params = ContextParams {
        n_ctx: 512,
        n_batch: 512,
        n_threads: 2,
        ..ContextParams::default()
    };
    Context::new(model.clone(), &params).unwrap()
}

fn decode_at(ctx: &mut Context, tokens: &[i32], first_position: i32) {
    let positions: Vec<i32> = (0..tokens.len() as i32)
        .map(|i| first_position + i)
        .collect();
    ctx.decode(&Batch {
        tokens,
        positions: Some(&positions),
        ..Batch::default()
    })
    .unwrap();
}

fn argmax(logits: &[f32]) -> i32 {
    let best = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    logits.iter().position(|&v| v == best).unwrap() as i32
}

/// Per step of greedy decoding after the shift: the shifted cache's distance from the
/// unshifted one, the noise floor (the unshifted run against the same tokens one position
/// later) and the distance from a context fed only the last 300 tokens.
fn shift_distances(model: &Arc<Model>, tokens: &[i32]) -> Vec<(f64, f64, f64)> {
    let mut shifted = context(model);
    decode_at(&mut shifted, tokens, 0);
    shifted.seq_remove(0, 0, DROPPED).unwrap();
    shifted.seq_shift(0, DROPPED, -1, -DROPPED).unwrap();
    assert_eq!(
        shifted.seq_pos_max(0).unwrap(),
        N_TOKENS as i32 - DROPPED - 1
    );
    let unshifted = |first: i32| {
        let mut ctx = context(model);
        decode_at(&mut ctx, tokens, first);
        ctx.seq_remove(0, first, first + DROPPED).unwrap();
        ctx
    };
    let (mut reference, mut translated) = (unshifted(0), unshifted(1));
    let mut fresh = context(model);
    decode_at(&mut fresh, &tokens[DROPPED as usize..], 0);

    let mut next = tokens[N_TOKENS - 1];
    (0..STEPS)
        .map(|step| {
            let position = N_TOKENS as i32 - DROPPED + step as i32;
            decode_at(&mut shifted, &[next], position);
            decode_at(&mut reference, &[next], position + DROPPED);
            decode_at(&mut translated, &[next], position + DROPPED + 1);
            decode_at(&mut fresh, &[next], position);
            let got = shifted.logits(-1).unwrap().to_vec();
            let expected = reference.logits(-1).unwrap().to_vec();
            let distances = (
                relative_l2(&got, &expected),
                relative_l2(translated.logits(-1).unwrap(), &expected),
                relative_l2(&got, fresh.logits(-1).unwrap()),
            );
            println!(
                "step {step}: shifted vs unshifted {:.2e}; noise floor {:.2e}; vs the last 300 from scratch {:.2e}",
                distances.0, distances.1, distances.2
            );
            next = argmax(&got);
            distances
        })
        .collect()
}

#[test]
fn a_shifted_cache_scores_like_the_unshifted_one_on_f16_weights() {
    let bytes = common::tiny_model::variants::variants()[1].gguf();
    let model = Arc::new(Model::from_gguf(OwnedGguf::from_buffer(bytes).unwrap()).unwrap());
    let n_vocab = common::tiny_model::vocabulary::N_TOKENS as i32;
    let tokens: Vec<i32> = tokens().iter().map(|t| t % n_vocab).collect();
    for (step, (distance, _, _)) in shift_distances(&model, &tokens).into_iter().enumerate() {
        assert!(
            distance <= 1e-3,
            "step {step}: the shifted cache's logits are {distance:.2e} from the unshifted cache's"
        );
    }
}

#[test]
fn a_shifted_smollm2_cache_stays_within_the_models_noise_floor() {
    let model = Arc::new(Model::open(&model_path(SMOLLM2)).unwrap());
    let distances = shift_distances(&model, &tokens());
    let worst = |pick: fn(&(f64, f64, f64)) -> f64| distances.iter().map(pick).fold(0.0, f64::max);
    let (shifted, floor, fresh) = (worst(|d| d.0), worst(|d| d.1), worst(|d| d.2));
    assert!(
        shifted <= floor,
        "the shifted cache is up to {shifted:.2e} from the unshifted one, the noise floor {floor:.2e}"
    );
    assert!(
        shifted * 5.0 < fresh,
        "{shifted:.2e} is not far below {fresh:.2e}"
    );
}

#[test]
fn a_shift_that_would_reorder_tokens_changes_nothing() {
    let model = Arc::new(Model::open(&model_path(SMOLLM2)).unwrap());
    let mut ctx = context(&model);
    decode_at(&mut ctx, &tokens()[..40], 0);
    ctx.seq_remove(0, 10, 20).unwrap();
    let mut before = Vec::new();
    ctx.state_seq_save(0, &mut before).unwrap();
    // Positions 20.. moved below 9, the last token before them.
    assert!(ctx.seq_shift(0, 20, -1, -12).is_err());
    let mut after = Vec::new();
    ctx.state_seq_save(0, &mut after).unwrap();
    assert_eq!(before, after);
    // Down to just above it is allowed.
    ctx.seq_shift(0, 20, -1, -10).unwrap();
    assert_eq!(ctx.seq_pos_max(0).unwrap(), 29);
}
