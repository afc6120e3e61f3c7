//! Grouped-query attention over the paged KV cache on the CPU.

use std::sync::Mutex;

use super::kv_storage::KvValues;
use super::lock;
use super::matmul::CpuMatmul;
use super::ops::{axpy, dot, softmax};
use super::pool::recycle;
use crate::backend::{Shape, Step, StepTables, VisibleSlots};
use crate::error::Result;
use crate::host_memory::{reserve, resize};

/// What one layer's attention reads besides the queries.
#[derive(Clone, Copy)]
pub struct Layer<'a> {
    pub shape: &'a Shape,
    /// The cached keys and values, `[n_slots, kv_dim]` each.
    pub k: &'a KvValues,
    pub v: &'a KvValues,
    /// Where the step's sequences are in `k` and `v`.
    pub tables: &'a StepTables,
    /// What the scores are multiplied by before the softmax.
    pub scale: f32,
    /// A sliding window: each token sees only the last `window` positions.
    pub window: Option<usize>,
}

/// Below this many multiply-adds an attention call runs on the calling thread: waking
/// the pool costs more than it saves.
const PARALLEL_ATTENTION_WORK: usize = 1 << 16;

/// What attention keeps from step to step so that a step allocates nothing: per pool
/// thread, room for one task's K or V row in f32 and its attention weights; and the
/// vector that lends each task its part of the output.
pub struct AttentionScratch {
    /// Per thread: `[head_dim]` then `[group, n_visible]`, for the longest context seen.
    threads: Vec<Mutex<Vec<f32>>>,
    /// The most cached tokens one token can see: every slot of the storage.
    max_visible: usize,
    /// Empty between calls (see [`recycle`]).
    outputs: Vec<Mutex<&'static mut [f32]>>,
}

impl AttentionScratch {
    /// Scratch for `n_threads` threads over a cache of `n_slots` slots. It starts empty and
    /// grows with the context.
    pub fn new(n_threads: usize, n_slots: usize) -> Result<AttentionScratch> {
        let mut threads = Vec::new();
        reserve(&mut threads, n_threads, "attention scratch")?;
        threads.extend((0..n_threads).map(|_| Mutex::new(Vec::new())));
        Ok(AttentionScratch {
            threads,
            max_visible: n_slots,
            outputs: Vec::new(),
        })
    }

    /// Room on every thread for a task over `n_visible` cached tokens. A longer context
    /// than any before takes twice what it needs (up to the whole cache), so it grows a
    /// few times in a context's life, not token by token.
    fn make_room(&mut self, head_dim: usize, group: usize, n_visible: usize) -> Result<()> {
        let needed = head_dim + group * n_visible;
        let roomy = head_dim + group * (2 * n_visible).min(self.max_visible).max(n_visible);
        for thread in &mut self.threads {
            let scratch = thread.get_mut().unwrap_or_else(|e| e.into_inner());
            if scratch.len() < needed {
                resize(scratch, roomy, 0.0, "attention scratch")?;
            }
        }
        Ok(())
    }
}

/// Attention of every token of `step`: the `n_head / n_head_kv` query heads that share a
/// K/V head read it together, over their sequence's cached entries at or before the
/// token's position. One task per (token, K/V head), so each cached K and V row is
/// converted from f16 once for its whole group.
pub fn attention(
    layer: Layer<'_>,
    pool: &CpuMatmul,
    step: &Step,
    q: &[f32],       // [n, n_head * head_dim]
    out: &mut [f32], // [n, n_head * head_dim]
    scratch: &mut AttentionScratch,
) -> Result<()> {
    let shape = layer.shape;
    let n = step.n_tokens;
    let group = shape.n_head / shape.n_head_kv;
    let group_width = group * shape.head_dim;
    let (mut context_lengths, mut longest) = (0, 0);
    for t in 0..n {
        let visible = step.visible_slots(layer.tables, t, layer.window).count();
        context_lengths += visible;
        longest = longest.max(visible);
    }
    scratch.make_room(shape.head_dim, group, longest)?;
    let n_tasks = n * shape.n_head_kv;
    let mut outputs = recycle(std::mem::take(&mut scratch.outputs));
    reserve(&mut outputs, n_tasks, "attention outputs")?;
    outputs.extend(
        out[..n * shape.q_dim()]
            .chunks_mut(group_width)
            .map(Mutex::new),
    );
    let threads = &scratch.threads;
    let task = |i: usize, thread: usize| {
        let (t, kv_head) = (i / shape.n_head_kv, i % shape.n_head_kv);
        let queries = &q[i * group_width..(i + 1) * group_width];
        let mut o = lock(&outputs[i]);
        let mut thread_scratch = lock(&threads[thread]);
        let visible = step.visible_slots(layer.tables, t, layer.window);
        layer.attend_kv_group(kv_head, queries, visible, &mut thread_scratch, &mut o);
    };
    if context_lengths * shape.q_dim() < PARALLEL_ATTENTION_WORK {
        (0..n_tasks).for_each(|i| task(i, 0));
    } else {
        pool.run_parallel_with_thread(n_tasks, &task);
    }
    scratch.outputs = recycle(outputs);
    Ok(())
}

impl Layer<'_> {
    /// The query heads of one K/V head for one token: softmax(q·K * scale) · V each.
    /// `scratch` holds at least `head_dim + group * visible.count()` values.
    fn attend_kv_group(
        &self,
        kv_head: usize,
        queries: &[f32], // [group, head_dim]
        visible: VisibleSlots<'_>,
        scratch: &mut [f32],
        out: &mut [f32], // [group, head_dim]
    ) {
        let (hd, kv_dim) = (self.shape.head_dim, self.shape.kv_dim());
        let kv_off = kv_head * hd;
        let n = visible.clone().count();
        let (row, rest) = scratch.split_at_mut(hd);
        // [group, n]: each query head's scores, then its attention weights.
        let weights = &mut rest[..queries.len() / hd * n];
        for (j, (_, slot)) in visible.clone().enumerate() {
            self.k.read_f32(slot * kv_dim + kv_off, row);
            for (q, head_weights) in queries.chunks_exact(hd).zip(weights.chunks_exact_mut(n)) {
                head_weights[j] = dot(q, row) * self.scale;
            }
        }
        weights.chunks_exact_mut(n).for_each(softmax);
        out.fill(0.0);
        for (j, (_, slot)) in visible.enumerate() {
            self.v.read_f32(slot * kv_dim + kv_off, row);
            for (o, head_weights) in out.chunks_exact_mut(hd).zip(weights.chunks_exact(n)) {
                axpy(o, head_weights[j], row);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::KvType;

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

    /// Decoding a whole context token by token, the scratch grows a dozen times, not per
    /// token, and always holds what the step needs.
    #[test]
    fn scratch_grows_a_few_times_over_a_whole_context() {
        let (head_dim, group, n_slots) = (64, 3, 4096);
        let mut scratch = AttentionScratch::new(2, n_slots).unwrap();
        let (mut growths, mut len) = (0, 0);
        for n_visible in 1..=n_slots {
            scratch.make_room(head_dim, group, n_visible).unwrap();
            for thread in &scratch.threads {
                assert!(lock(thread).len() >= head_dim + group * n_visible);
            }
            let now = lock(&scratch.threads[0]).len();
            if now != len {
                (growths, len) = (growths + 1, now);
            }
        }
        assert!(growths <= 13, "{growths} growths over {n_slots} tokens");
        assert_eq!(len, head_dim + group * n_slots);
    }

    /// Attention over 8,192 cached tokens whose scores reach ±1e4 stays finite and
    /// matches a float64 computation over the same keys and values as each cache type
    /// stores them; with a sliding window, over the window's last keys only.
    #[test]
    fn attention_is_accurate_with_extreme_scores_and_long_contexts() {
        for kv_type in [KvType::F16, KvType::F32, KvType::Q8_0] {
            attention_is_accurate_with(kv_type);
        }
    }

    fn attention_is_accurate_with(kv_type: KvType) {
        let hd = 64;
        let s = shape(hd);
        let mut state = 7u64;
        let mut next = || {
            state = state
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (state >> 40) as f32 / (1u64 << 24) as f32 * 2.0 - 1.0
        };
        for (n_ctx, q_scale, window) in [
            (8192usize, 1.0f32, None),
            (8192, 1e4 * 8.0 / hd as f32, None),
            (17, 1e4, None),
            (8192, 1.0, Some(1000)),
            (17, 1.0, Some(5)),
            (17, 1.0, Some(1)),
        ] {
            let q: Vec<f32> = (0..hd).map(|_| next() * q_scale).collect();
            let mut stored = || {
                let values: Vec<f32> = (0..n_ctx * hd).map(|_| next()).collect();
                let mut cache = KvValues::new(kv_type, values.len(), "test").unwrap();
                cache.write_f32(0, &values);
                let mut read = vec![0.0f32; values.len()];
                cache.read_f32(0, &mut read);
                (cache, read)
            };
            let (k_cache, k) = stored();
            let (v_cache, v) = stored();
            let block_size = 16;
            let mut step = Step::new(1, 1, n_ctx, block_size, None).unwrap();
            let positions: Vec<i32> = (0..n_ctx as i32).collect();
            let n_blocks = n_ctx.div_ceil(block_size);
            let mut slot_positions = positions.clone();
            slot_positions.resize(n_blocks * block_size, crate::backend::EMPTY_SLOT);
            step.full
                .set_sequence(0, 0..n_blocks as u32, &slot_positions[..n_ctx]);
            step.n_tokens = 1;
            step.positions[0] = n_ctx as i32 - 1;
            let mut out = vec![0.0f32; hd];
            let mut scratch = vec![0.0f32; hd + n_ctx];
            let layer = Layer {
                shape: &s,
                k: &k_cache,
                v: &v_cache,
                tables: &step.full,
                scale: 1.0 / (hd as f32).sqrt(),
                window,
            };
            let visible = step.visible_slots(&step.full, 0, window);
            layer.attend_kv_group(0, &q, visible, &mut scratch, &mut out);

            let scale = 1.0 / (hd as f64).sqrt();
            let first = n_ctx - window.unwrap_or(n_ctx);
            let scores: Vec<f64> = (first..n_ctx)
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
                let expected: f64 = (first..n_ctx)
                    .map(|j| weights[j - first] / total * f64::from(v[j * hd + d]))
                    .sum();
                assert!(out[d].is_finite());
                let tolerance = 1e-4 + 1e-3 * expected.abs();
                assert!(
                    (f64::from(out[d]) - expected).abs() < tolerance,
                    "{kv_type:?} n_ctx {n_ctx} q_scale {q_scale} window {window:?} dim {d}: {} vs {expected}",
                    out[d]
                );
            }
        }
    }
}
