//! The llama-family forward pass on the CPU, read top to bottom like the paper:
//! embed → layers (norm, qkv, rope, attention, out, residual, norm, ffn, residual) →
//! norm → logits.

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

use half::f16;
use half::slice::HalfFloatSliceExt;

use super::config::ModelConfig;
use super::ops::{RopeAngles, add_assign, axpy, dot, rms_norm, rope, softmax, swiglu};
use super::weights::LlamaWeights;
use crate::backend::cpu::{CpuMatmul, WeightMatrix};
use crate::error::{Error, Result};
use crate::host_memory::{filled_vec, resize};
use crate::tensor::dequantize_row;

/// One token of a batch: what it is, where it sits, where its K and V go, and which
/// cached entries it may attend to.
pub struct BatchToken<'p> {
    pub token: i32,
    pub pos: i32,
    /// Cache slot receiving this token's K and V.
    pub slot: usize,
    /// Its sequence's cached entries `(position, slot)` sorted by position, this batch's
    /// included; the token attends to those at or before its own position.
    pub context: &'p [(i32, usize)],
    pub wants_logits: bool,
}

/// K and V of every cached token, per layer: `[n_slots, kv_dim]` each, in f16 (as
/// llama.cpp's default cache type: half the memory traffic of f32 for attention).
pub struct KvStorage {
    pub k: Vec<Vec<f16>>,
    pub v: Vec<Vec<f16>>,
}

impl KvStorage {
    pub fn new(config: &ModelConfig, n_slots: usize) -> Result<KvStorage> {
        let values = n_slots.checked_mul(config.kv_dim()).ok_or_else(|| {
            Error::OutOfMemory(format!(
                "a KV cache of {n_slots} slots of {} values overflows",
                config.kv_dim()
            ))
        })?;
        let total_bytes = (values as u128) * 2 * 2 * (config.n_layer as u128);
        let what = format!("the KV cache ({n_slots} token slots, {total_bytes} bytes in all)");
        let layers = || -> Result<Vec<Vec<f16>>> {
            (0..config.n_layer)
                .map(|_| filled_vec(values, f16::ZERO, &what))
                .collect()
        };
        Ok(KvStorage {
            k: layers()?,
            v: layers()?,
        })
    }

    pub fn bytes(&self) -> u64 {
        let values: usize = self.k.iter().chain(&self.v).map(Vec::len).sum();
        (values * size_of::<f16>()) as u64
    }

    /// Copies `n_slots` slots from `src` to `dst` in every layer (copy-on-write of a
    /// shared cache block).
    pub fn copy_slots(&mut self, src: usize, dst: usize, n_slots: usize, kv_dim: usize) {
        for layer in self.k.iter_mut().chain(self.v.iter_mut()) {
            layer.copy_within(src * kv_dim..(src + n_slots) * kv_dim, dst * kv_dim);
        }
    }
}

/// Working memory for a batch of up to `n_batch` tokens.
pub struct Scratch {
    x: Vec<f32>,    // [n, n_embd] residual stream
    xn: Vec<f32>,   // [n, n_embd] normalised input of a sublayer
    q: Vec<f32>,    // [n, q_dim]
    k: Vec<f32>,    // [n, kv_dim]
    v: Vec<f32>,    // [n, kv_dim]
    attn: Vec<f32>, // [n, q_dim]
    proj: Vec<f32>, // [n, n_embd] output of wo and w_down
    gate: Vec<f32>, // [n, n_ff]
    up: Vec<f32>,   // [n, n_ff]
    /// Logits of the tokens that asked for them: `[n_wanted, n_vocab]`.
    pub logits: Vec<f32>,
}

impl Scratch {
    pub fn new(c: &ModelConfig, n_batch: usize) -> Result<Scratch> {
        let buf = |width: usize| {
            let what = format!("working memory for batches of {n_batch} tokens");
            let len = n_batch
                .checked_mul(width)
                .ok_or_else(|| Error::OutOfMemory(format!("{what} overflows")))?;
            filled_vec(len, 0.0f32, &what)
        };
        Ok(Scratch {
            x: buf(c.n_embd)?,
            xn: buf(c.n_embd)?,
            q: buf(c.q_dim())?,
            k: buf(c.kv_dim())?,
            v: buf(c.kv_dim())?,
            attn: buf(c.q_dim())?,
            proj: buf(c.n_embd)?,
            gate: buf(c.n_ff)?,
            up: buf(c.n_ff)?,
            logits: Vec::new(),
        })
    }

    pub fn bytes(&self) -> u64 {
        let buffers = [
            &self.x,
            &self.xn,
            &self.q,
            &self.k,
            &self.v,
            &self.attn,
            &self.proj,
            &self.gate,
            &self.up,
            &self.logits,
        ];
        let floats: usize = buffers.iter().map(|b| b.capacity()).sum();
        (floats * size_of::<f32>()) as u64
    }
}

/// Runs `batch` through the model, writing each token's K and V into `kv` and the
/// logits of the tokens that want them into `scratch.logits`. Checks `cancel` between
/// layers.
pub fn forward(
    c: &ModelConfig,
    w: &LlamaWeights<'_>,
    backend: &CpuMatmul,
    kv: &mut KvStorage,
    scratch: &mut Scratch,
    batch: &[BatchToken<'_>],
    cancel: &AtomicBool,
) -> Result<()> {
    let n = batch.len();
    let (d, q_dim, kv_dim, hd) = (c.n_embd, c.q_dim(), c.kv_dim(), c.head_dim);
    let s = scratch;

    for (t, bt) in batch.iter().enumerate() {
        let row = usize::try_from(bt.token)
            .ok()
            .filter(|&r| r < c.n_vocab)
            .ok_or_else(|| {
                Error::InvalidArgument(format!(
                    "token id {} is outside the vocabulary of {}",
                    bt.token, c.n_vocab
                ))
            })?;
        let row_bytes = w.token_embd.row_bytes();
        let embedding = &w.token_embd.data[row * row_bytes..(row + 1) * row_bytes];
        dequantize_row(w.token_embd.dtype, embedding, &mut s.x[t * d..(t + 1) * d])?;
    }
    let angles: Vec<RopeAngles> = batch
        .iter()
        .map(|bt| RopeAngles::new(bt.pos, c.rope_base, c.rope_dims))
        .collect();

    for (layer, lw) in w.layers.iter().enumerate() {
        if cancel.load(Ordering::Relaxed) {
            return Err(Error::Cancelled);
        }
        // Attention sublayer.
        for t in 0..n {
            rms_norm(
                &s.x[t * d..(t + 1) * d],
                &lw.attn_norm,
                c.rms_eps,
                &mut s.xn[t * d..(t + 1) * d],
            );
        }
        project(
            backend,
            &[lw.wq, lw.wk, lw.wv],
            &s.xn[..n * d],
            n,
            &mut [
                &mut s.q[..n * q_dim],
                &mut s.k[..n * kv_dim],
                &mut s.v[..n * kv_dim],
            ],
        )?;
        for (t, bt) in batch.iter().enumerate() {
            rope(
                &mut s.q[t * q_dim..(t + 1) * q_dim],
                hd,
                c.rope_style,
                &angles[t],
            );
            rope(
                &mut s.k[t * kv_dim..(t + 1) * kv_dim],
                hd,
                c.rope_style,
                &angles[t],
            );
            let slot = bt.slot * kv_dim..(bt.slot + 1) * kv_dim;
            kv.k[layer][slot.clone()].convert_from_f32_slice(&s.k[t * kv_dim..(t + 1) * kv_dim]);
            kv.v[layer][slot].convert_from_f32_slice(&s.v[t * kv_dim..(t + 1) * kv_dim]);
        }
        attention(
            c,
            backend,
            &s.q[..n * q_dim],
            &kv.k[layer],
            &kv.v[layer],
            batch,
            &mut s.attn[..n * q_dim],
        );
        backend.matmul(&lw.wo, &s.attn[..n * q_dim], n, &mut s.proj[..n * d])?;
        add_assign(&mut s.x[..n * d], &s.proj[..n * d]);

        // Feed-forward sublayer.
        for t in 0..n {
            rms_norm(
                &s.x[t * d..(t + 1) * d],
                &lw.ffn_norm,
                c.rms_eps,
                &mut s.xn[t * d..(t + 1) * d],
            );
        }
        let n_ff = c.n_ff;
        project(
            backend,
            &[lw.w_gate, lw.w_up],
            &s.xn[..n * d],
            n,
            &mut [&mut s.gate[..n * n_ff], &mut s.up[..n * n_ff]],
        )?;
        swiglu(&mut s.gate[..n * n_ff], &s.up[..n * n_ff]);
        backend.matmul(&lw.w_down, &s.gate[..n * n_ff], n, &mut s.proj[..n * d])?;
        add_assign(&mut s.x[..n * d], &s.proj[..n * d]);
    }

    // Output head, only for the tokens that asked for logits.
    let wanted: Vec<usize> = (0..n).filter(|&t| batch[t].wants_logits).collect();
    for (i, &t) in wanted.iter().enumerate() {
        rms_norm(
            &s.x[t * d..(t + 1) * d],
            &w.output_norm,
            c.rms_eps,
            &mut s.xn[i * d..(i + 1) * d],
        );
    }
    resize(
        &mut s.logits,
        wanted.len() * c.n_vocab,
        0.0,
        "the logits of a batch",
    )?;
    backend.matmul(
        &w.output,
        &s.xn[..wanted.len() * d],
        wanted.len(),
        &mut s.logits,
    )?;
    Ok(())
}

/// Projections of one input: in one dispatch when the matrices share a type and a row
/// length (the common case), else one matmul each.
fn project(
    backend: &CpuMatmul,
    ws: &[WeightMatrix<'_>],
    x: &[f32],
    n: usize,
    ys: &mut [&mut [f32]],
) -> Result<()> {
    let uniform = ws
        .iter()
        .all(|w| w.dtype == ws[0].dtype && w.n_cols == ws[0].n_cols);
    if uniform {
        return backend.matmul_many(ws, x, n, ys);
    }
    for (w, y) in ws.iter().zip(ys.iter_mut()) {
        backend.matmul(w, x, n, y)?;
    }
    Ok(())
}

/// Below this many multiply-adds an attention call runs on the calling thread: waking
/// the pool costs more than it saves.
const PARALLEL_ATTENTION_WORK: usize = 1 << 16;

/// Grouped-query attention of every batch token: the `n_head / n_head_kv` query heads
/// that share a K/V head read it together, over their sequence's cached entries at or
/// before the token's position. One task per (token, K/V head), so each cached K and V
/// row is converted from f16 once for its whole group.
fn attention(
    c: &ModelConfig,
    backend: &CpuMatmul,
    q: &[f32],       // [n, n_head * head_dim]
    k_cache: &[f16], // [n_slots, kv_dim]
    v_cache: &[f16], // [n_slots, kv_dim]
    batch: &[BatchToken<'_>],
    out: &mut [f32], // [n, n_head * head_dim]
) {
    let group_width = c.n_head / c.n_head_kv * c.head_dim;
    let outputs: Vec<Mutex<&mut [f32]>> = out.chunks_mut(group_width).map(Mutex::new).collect();
    let task = |i: usize| {
        let (t, kv_head) = (i / c.n_head_kv, i % c.n_head_kv);
        let queries = &q[i * group_width..(i + 1) * group_width];
        if let Ok(mut o) = outputs[i].lock() {
            attend_kv_group(c, kv_head, queries, k_cache, v_cache, &batch[t], &mut o);
        }
    };
    let n_tasks = batch.len() * c.n_head_kv;
    let work: usize =
        batch.iter().map(|bt| bt.context.len()).sum::<usize>() * c.n_head * c.head_dim;
    if work < PARALLEL_ATTENTION_WORK {
        (0..n_tasks).for_each(task);
    } else {
        backend.run_parallel(n_tasks, &task);
    }
}

/// The query heads of one K/V head for one token: softmax(q·K / sqrt(head_dim)) · V each.
fn attend_kv_group(
    c: &ModelConfig,
    kv_head: usize,
    queries: &[f32], // [group, head_dim]
    k_cache: &[f16], // [n_slots, kv_dim]
    v_cache: &[f16], // [n_slots, kv_dim]
    bt: &BatchToken<'_>,
    out: &mut [f32], // [group, head_dim]
) {
    let (hd, kv_dim) = (c.head_dim, c.kv_dim());
    let kv_off = kv_head * hd;
    let scale = 1.0 / (hd as f32).sqrt();
    let visible = &bt.context[..bt.context.partition_point(|&(pos, _)| pos <= bt.pos)];
    let n = visible.len();
    let mut row = vec![0.0f32; hd];
    // [group, n]: each query head's scores, then its attention weights.
    let mut weights = vec![0.0f32; queries.len() / hd * n];
    for (j, &(_, slot)) in visible.iter().enumerate() {
        let base = slot * kv_dim + kv_off;
        k_cache[base..base + hd].convert_to_f32_slice(&mut row);
        for (q, head_weights) in queries.chunks_exact(hd).zip(weights.chunks_exact_mut(n)) {
            head_weights[j] = dot(q, &row) * scale;
        }
    }
    weights.chunks_exact_mut(n).for_each(softmax);
    out.fill(0.0);
    for (j, &(_, slot)) in visible.iter().enumerate() {
        let base = slot * kv_dim + kv_off;
        v_cache[base..base + hd].convert_to_f32_slice(&mut row);
        for (o, head_weights) in out.chunks_exact_mut(hd).zip(weights.chunks_exact(n)) {
            axpy(o, head_weights[j], &row);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Architecture, RopeStyle};

    fn config(head_dim: usize) -> ModelConfig {
        ModelConfig {
            architecture: Architecture::Llama,
            n_embd: head_dim,
            n_layer: 1,
            n_head: 1,
            n_head_kv: 1,
            head_dim,
            n_ff: 1,
            n_vocab: 1,
            n_ctx_train: 8192,
            rms_eps: 1e-5,
            rope_style: RopeStyle::Normal,
            rope_base: 10_000.0,
            rope_dims: head_dim,
            tied_output: true,
        }
    }

    /// Attention over 8,192 cached tokens whose scores reach ±1e4 stays finite and
    /// matches a float64 computation over the same (f16-stored) keys and values.
    #[test]
    fn attention_is_accurate_with_extreme_scores_and_long_contexts() {
        let hd = 64;
        let c = config(hd);
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
            let entries: Vec<(i32, usize)> = (0..n_ctx).map(|i| (i as i32, i)).collect();
            let bt = BatchToken {
                token: 0,
                pos: n_ctx as i32 - 1,
                slot: 0,
                context: &entries,
                wants_logits: false,
            };
            let mut out = vec![0.0f32; hd];
            attend_kv_group(&c, 0, &q, &k, &v, &bt, &mut out);

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
