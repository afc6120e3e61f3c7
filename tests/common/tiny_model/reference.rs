//! The float64 reference forward pass of a llama, written from the math and sharing no
//! code with the library's forward pass: the weights are read with the GGUF parser and
//! the reference dequantizer, everything after is here. It keeps one rounding that is
//! part of what the engine (as llama.cpp) computes rather than error in it: K and V are
//! stored in f16. It does not quantize activations to 8 bits as the engine's quantized
//! matmuls do; the tolerances account for that (see `tolerance`). Every sequence has a
//! cache of its own, so it computes each sequence as if it were alone.

use std::collections::BTreeMap;

use half::f16;
use rocmforge::gguf::GgufFile;
use rocmforge::gguf::synthetic::SyntheticLlama;
use rocmforge::tensor::dequantize_to_vec;

use super::engine::Engine;

/// Matrices of at least this many values are multiplied on every core.
const PARALLEL_VALUES: usize = 1 << 18;

/// A weight matrix: `rows` rows of `cols` values, as the reference dequantizer reads
/// them.
struct Matrix {
    rows: usize,
    cols: usize,
    values: Vec<f32>,
}

impl Matrix {
    fn read(file: &GgufFile<'_>, name: &str, rows: usize, cols: usize) -> Matrix {
        let view = file.tensor(name).expect("the tiny model has every tensor");
        let values =
            dequantize_to_vec(view.info.dtype(), view.data, rows * cols).expect("dequantizes");
        Matrix { rows, cols, values }
    }

    /// `W · x`; the rows of a large matrix (a model of real size) shared among threads.
    fn apply(&self, x: &[f64]) -> Vec<f64> {
        assert_eq!(x.len(), self.cols);
        let dot = |row: &[f32]| -> f64 { row.iter().zip(x).map(|(&w, v)| f64::from(w) * v).sum() };
        let mut out = vec![0.0; self.rows];
        let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
        if self.values.len() < PARALLEL_VALUES || threads == 1 {
            for (o, row) in out.iter_mut().zip(self.values.chunks_exact(self.cols)) {
                *o = dot(row);
            }
            return out;
        }
        let rows_per_thread = self.rows.div_ceil(threads);
        std::thread::scope(|scope| {
            let weights = self.values.chunks(rows_per_thread * self.cols);
            for (outs, rows) in out.chunks_mut(rows_per_thread).zip(weights) {
                scope.spawn(move || {
                    for (o, row) in outs.iter_mut().zip(rows.chunks_exact(self.cols)) {
                        *o = dot(row);
                    }
                });
            }
        });
        out
    }

    fn row(&self, r: usize) -> Vec<f64> {
        assert!(r < self.rows, "token {r} is outside the vocabulary");
        let row = &self.values[r * self.cols..(r + 1) * self.cols];
        row.iter().map(|&v| f64::from(v)).collect()
    }
}

struct Layer {
    attn_norm: Vec<f64>,
    wq: Matrix,
    wk: Matrix,
    wv: Matrix,
    wo: Matrix,
    ffn_norm: Vec<f64>,
    w_gate: Matrix,
    w_up: Matrix,
    w_down: Matrix,
}

/// One cached token of a sequence: its position and, per layer, its K and V.
struct Cached {
    pos: i32,
    k: Vec<Vec<f64>>,
    v: Vec<Vec<f64>>,
}

/// The reference model and the caches of its sequences.
pub struct Reference {
    spec: SyntheticLlama,
    token_embd: Matrix,
    layers: Vec<Layer>,
    output_norm: Vec<f64>,
    /// `None`: tied to the token embedding.
    output: Option<Matrix>,
    sequences: BTreeMap<i32, Vec<Cached>>,
}

impl Reference {
    /// The model in `gguf`, whose hyperparameters are `spec` (taken from the spec that
    /// wrote the file, not from the library's reading of it).
    pub fn new(spec: &SyntheticLlama, gguf: &[u8]) -> Reference {
        let file = GgufFile::parse(gguf).expect("the tiny model parses");
        let s = spec;
        let (embd, vocab, ff) = (s.n_embd as usize, s.n_vocab as usize, s.n_ff as usize);
        let q_dim = (s.n_head * s.head_dim) as usize;
        let kv_dim = (s.n_head_kv * s.head_dim) as usize;
        let norm = |name: &str| -> Vec<f64> {
            let view = file.tensor(name).expect("the tiny model has every norm");
            let values = dequantize_to_vec(view.info.dtype(), view.data, embd).expect("a norm");
            values.iter().map(|&v| f64::from(v)).collect()
        };
        let layers = (0..s.n_layer)
            .map(|i| {
                let name = |t: &str| format!("blk.{i}.{t}.weight");
                Layer {
                    attn_norm: norm(&name("attn_norm")),
                    wq: Matrix::read(&file, &name("attn_q"), q_dim, embd),
                    wk: Matrix::read(&file, &name("attn_k"), kv_dim, embd),
                    wv: Matrix::read(&file, &name("attn_v"), kv_dim, embd),
                    wo: Matrix::read(&file, &name("attn_output"), embd, q_dim),
                    ffn_norm: norm(&name("ffn_norm")),
                    w_gate: Matrix::read(&file, &name("ffn_gate"), ff, embd),
                    w_up: Matrix::read(&file, &name("ffn_up"), ff, embd),
                    w_down: Matrix::read(&file, &name("ffn_down"), embd, ff),
                }
            })
            .collect();
        Reference {
            spec: spec.clone(),
            token_embd: Matrix::read(&file, "token_embd.weight", vocab, embd),
            layers,
            output_norm: norm("output_norm.weight"),
            output: s
                .types
                .output
                .map(|_| Matrix::read(&file, "output.weight", vocab, embd)),
            sequences: BTreeMap::new(),
        }
    }

    /// Runs `token` at the next position of sequence `seq`, caching its K and V; its
    /// logits.
    fn step(&mut self, seq: i32, token: i32) -> Vec<f64> {
        let s = &self.spec;
        let eps = f64::from(s.rms_eps);
        let cache = self.sequences.entry(seq).or_default();
        let pos = cache.last().map_or(0, |c| c.pos + 1);
        cache.push(Cached {
            pos,
            k: Vec::new(),
            v: Vec::new(),
        });
        let mut x = self.token_embd.row(token as usize);
        for (l, layer) in self.layers.iter().enumerate() {
            let xn = rms_norm(&x, &layer.attn_norm, eps);
            let mut q = layer.wq.apply(&xn);
            let mut k = layer.wk.apply(&xn);
            rope(&mut q, s, pos);
            rope(&mut k, s, pos);
            let current = cache.last_mut().expect("pushed above");
            current.k.push(k.iter().map(|&v| through_f16(v)).collect());
            current.v.push(
                layer
                    .wv
                    .apply(&xn)
                    .iter()
                    .map(|&v| through_f16(v))
                    .collect(),
            );
            let attended = attention(s, &q, cache, l, pos);
            add(&mut x, &layer.wo.apply(&attended));

            let xn = rms_norm(&x, &layer.ffn_norm, eps);
            let up = layer.w_up.apply(&xn);
            let hidden: Vec<f64> = layer
                .w_gate
                .apply(&xn)
                .iter()
                .zip(&up)
                .map(|(&g, &u)| g / (1.0 + (-g).exp()) * u)
                .collect();
            add(&mut x, &layer.w_down.apply(&hidden));
        }
        let xn = rms_norm(&x, &self.output_norm, eps);
        self.output.as_ref().unwrap_or(&self.token_embd).apply(&xn)
    }
}

impl Engine for Reference {
    fn decode(&mut self, entries: &[(i32, i32)]) -> Vec<Vec<f64>> {
        // Batch order is position order within each sequence, so one token at a time
        // sees exactly what the batch shows it.
        entries
            .iter()
            .map(|&(seq, token)| self.step(seq, token))
            .collect()
    }

    fn seq_copy(&mut self, src: i32, dst: i32, p0: i32, p1: i32) {
        let copies: Vec<Cached> = self.sequences[&src]
            .iter()
            .filter(|c| in_range(c.pos, p0, p1))
            .map(|c| Cached {
                pos: c.pos,
                k: c.k.clone(),
                v: c.v.clone(),
            })
            .collect();
        let target = self.sequences.entry(dst).or_default();
        target.extend(copies);
        target.sort_by_key(|c| c.pos);
    }

    fn seq_remove(&mut self, seq: i32, p0: i32, p1: i32) {
        if let Some(cache) = self.sequences.get_mut(&seq) {
            cache.retain(|c| !in_range(c.pos, p0, p1));
        }
    }
}

/// Whether `pos` is in `p0..p1`, `p1 < 0` meaning no end.
fn in_range(pos: i32, p0: i32, p1: i32) -> bool {
    pos >= p0 && (p1 < 0 || pos < p1)
}

fn through_f16(v: f64) -> f64 {
    f16::from_f64(v).to_f64()
}

fn add(x: &mut [f64], y: &[f64]) {
    x.iter_mut().zip(y).for_each(|(a, b)| *a += b);
}

/// `x / sqrt(mean(x²) + eps) * weight`.
fn rms_norm(x: &[f64], weight: &[f64], eps: f64) -> Vec<f64> {
    let mean_square = x.iter().map(|v| v * v).sum::<f64>() / x.len() as f64;
    let scale = 1.0 / (mean_square + eps).sqrt();
    x.iter().zip(weight).map(|(v, w)| v * scale * w).collect()
}

/// Rotates dimensions `(2i, 2i + 1)` of every head, for `i < rope_dims / 2`, by
/// `pos * base^(-2i / rope_dims)`: ggml's normal RoPE, the llama ordering.
fn rope(x: &mut [f64], s: &SyntheticLlama, pos: i32) {
    let (head_dim, rope_dims) = (s.head_dim as usize, s.rope_dims as usize);
    let base = f64::from(s.rope_base);
    for head in x.chunks_exact_mut(head_dim) {
        for i in 0..rope_dims / 2 {
            let theta = f64::from(pos) * base.powf(-2.0 * i as f64 / rope_dims as f64);
            let (sin, cos) = theta.sin_cos();
            let (a, b) = (head[2 * i], head[2 * i + 1]);
            head[2 * i] = a * cos - b * sin;
            head[2 * i + 1] = a * sin + b * cos;
        }
    }
}

/// Causal grouped-query attention of one token at `pos` over its sequence's cached tokens
/// at or before `pos` in layer `layer`: query head `h` reads K/V head
/// `h / (n_head / n_head_kv)`, `softmax(q·k / sqrt(head_dim)) · V`.
fn attention(s: &SyntheticLlama, q: &[f64], cache: &[Cached], layer: usize, pos: i32) -> Vec<f64> {
    let hd = s.head_dim as usize;
    let group = (s.n_head / s.n_head_kv) as usize;
    let visible: Vec<&Cached> = cache.iter().filter(|c| c.pos <= pos).collect();
    let mut out = vec![0.0; q.len()];
    for (h, (q_head, out_head)) in q.chunks_exact(hd).zip(out.chunks_exact_mut(hd)).enumerate() {
        let kv = (h / group) * hd..(h / group + 1) * hd;
        let scores: Vec<f64> = visible
            .iter()
            .map(|c| dot(q_head, &c.k[layer][kv.clone()]) / (hd as f64).sqrt())
            .collect();
        let max = scores.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        let weights: Vec<f64> = scores.iter().map(|s| (s - max).exp()).collect();
        let total: f64 = weights.iter().sum();
        for (c, w) in visible.iter().zip(&weights) {
            for (o, v) in out_head.iter_mut().zip(&c.v[layer][kv.clone()]) {
                *o += w / total * v;
            }
        }
    }
    out
}

fn dot(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}
