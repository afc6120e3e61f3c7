//! Grouped-query attention over the paged KV cache on the CPU.

use std::sync::Mutex;

use half::f16;
use half::slice::HalfFloatSliceExt;

use super::matmul::CpuMatmul;
use super::ops::{axpy, dot, softmax};
use crate::backend::{Shape, Step, VisibleSlots};

/// One layer's cached keys and values, `[n_slots, kv_dim]` each.
#[derive(Clone, Copy)]
pub struct LayerKv<'a> {
    pub k: &'a [f16],
    pub v: &'a [f16],
}

/// Below this many multiply-adds an attention call runs on the calling thread: waking
/// the pool costs more than it saves.
const PARALLEL_ATTENTION_WORK: usize = 1 << 16;

/// Attention of every token of `step`: the `n_head / n_head_kv` query heads that share a
/// K/V head read it together, over their sequence's cached entries at or before the
/// token's position. One task per (token, K/V head), so each cached K and V row is
/// converted from f16 once for its whole group.
pub fn attention(
    shape: &Shape,
    pool: &CpuMatmul,
    step: &Step,
    q: &[f32], // [n, n_head * head_dim]
    cache: LayerKv<'_>,
    scale: f32,
    out: &mut [f32], // [n, n_head * head_dim]
) {
    let n = step.n_tokens;
    let group_width = shape.n_head / shape.n_head_kv * shape.head_dim;
    let outputs: Vec<Mutex<&mut [f32]>> = out[..n * shape.q_dim()]
        .chunks_mut(group_width)
        .map(Mutex::new)
        .collect();
    let task = |i: usize| {
        let (t, kv_head) = (i / shape.n_head_kv, i % shape.n_head_kv);
        let queries = &q[i * group_width..(i + 1) * group_width];
        if let Ok(mut o) = outputs[i].lock() {
            let visible = step.visible_slots(t);
            attend_kv_group(shape, kv_head, queries, cache, visible, scale, &mut o);
        }
    };
    let n_tasks = n * shape.n_head_kv;
    let context_lengths: usize = (0..n).map(|t| step.visible_slots(t).count()).sum();
    if context_lengths * shape.q_dim() < PARALLEL_ATTENTION_WORK {
        (0..n_tasks).for_each(task);
    } else {
        pool.run_parallel(n_tasks, &task);
    }
}

/// The query heads of one K/V head for one token: softmax(q·K * scale) · V each.
fn attend_kv_group(
    shape: &Shape,
    kv_head: usize,
    queries: &[f32], // [group, head_dim]
    cache: LayerKv<'_>,
    visible: VisibleSlots<'_>,
    scale: f32,
    out: &mut [f32], // [group, head_dim]
) {
    let (hd, kv_dim) = (shape.head_dim, shape.kv_dim());
    let kv_off = kv_head * hd;
    let n = visible.clone().count();
    let mut row = vec![0.0f32; hd];
    // [group, n]: each query head's scores, then its attention weights.
    let mut weights = vec![0.0f32; queries.len() / hd * n];
    for (j, (_, slot)) in visible.clone().enumerate() {
        let base = slot * kv_dim + kv_off;
        cache.k[base..base + hd].convert_to_f32_slice(&mut row);
        for (q, head_weights) in queries.chunks_exact(hd).zip(weights.chunks_exact_mut(n)) {
            head_weights[j] = dot(q, &row) * scale;
        }
    }
    weights.chunks_exact_mut(n).for_each(softmax);
    out.fill(0.0);
    for (j, (_, slot)) in visible.enumerate() {
        let base = slot * kv_dim + kv_off;
        cache.v[base..base + hd].convert_to_f32_slice(&mut row);
        for (o, head_weights) in out.chunks_exact_mut(hd).zip(weights.chunks_exact(n)) {
            axpy(o, head_weights[j], &row);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shape(head_dim: usize) -> Shape {
        Shape {
            n_layer: 1,
            n_embd: head_dim,
            n_head: 1,
            n_head_kv: 1,
            head_dim,
            n_ff: 1,
            n_vocab: 1,
        }
    }

    /// Attention over 8,192 cached tokens whose scores reach ±1e4 stays finite and
    /// matches a float64 computation over the same (f16-stored) keys and values.
    #[test]
    fn attention_is_accurate_with_extreme_scores_and_long_contexts() {
        let hd = 64;
        let s = shape(hd);
        let mut state = 7u64;
        let mut next = || {
            state = state
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (state >> 40) as f32 / (1u64 << 24) as f32 * 2.0 - 1.0
        };
        for (n_ctx, q_scale) in [
            (8192usize, 1.0f32),
            (8192, 1e4 * 8.0 / hd as f32),
            (17, 1e4),
        ] {
            let q: Vec<f32> = (0..hd).map(|_| next() * q_scale).collect();
            let k: Vec<f16> = (0..n_ctx * hd).map(|_| f16::from_f32(next())).collect();
            let v: Vec<f16> = (0..n_ctx * hd).map(|_| f16::from_f32(next())).collect();
            let block_size = 16;
            let mut step = Step::new(1, 1, n_ctx, block_size).unwrap();
            let positions: Vec<i32> = (0..n_ctx as i32).collect();
            let n_blocks = n_ctx.div_ceil(block_size);
            let mut slot_positions = positions.clone();
            slot_positions.resize(n_blocks * block_size, crate::backend::EMPTY_SLOT);
            step.set_sequence(0, 0..n_blocks as u32, &slot_positions[..n_ctx]);
            step.n_tokens = 1;
            step.positions[0] = n_ctx as i32 - 1;
            let mut out = vec![0.0f32; hd];
            let scale = 1.0 / (hd as f32).sqrt();
            let cache = LayerKv { k: &k, v: &v };
            attend_kv_group(&s, 0, &q, cache, step.visible_slots(0), scale, &mut out);

            let scale = 1.0 / (hd as f64).sqrt();
            let scores: Vec<f64> = (0..n_ctx)
                .map(|j| {
                    (0..hd)
                        .map(|d| f64::from(q[d]) * f64::from(k[j * hd + d]))
                        .sum::<f64>()
                        * scale
                })
                .collect();
            let max = scores.iter().copied().fold(f64::MIN, f64::max);
            let weights: Vec<f64> = scores.iter().map(|s| (s - max).exp()).collect();
            let total: f64 = weights.iter().sum();
            for d in 0..hd {
                let expected: f64 = (0..n_ctx)
                    .map(|j| weights[j] / total * f64::from(v[j * hd + d]))
                    .sum();
                assert!(out[d].is_finite());
                let tolerance = 1e-4 + 1e-3 * expected.abs();
                assert!(
                    (f64::from(out[d]) - expected).abs() < tolerance,
                    "n_ctx {n_ctx} q_scale {q_scale} dim {d}: {} vs {expected}",
                    out[d]
                );
            }
        }
    }
}
