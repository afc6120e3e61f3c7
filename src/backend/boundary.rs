//! The backend boundary: the steps of a transformer layer, at a size a GPU can fuse, that
//! every backend implements and the model's one forward pass calls.

use std::ops::Range;

use crate::error::Result;

use super::KvType;
use super::step::Step;

/// How rotary position embedding pairs up the dimensions of a head.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RopeStyle {
    /// Adjacent pairs `(2i, 2i + 1)`: GGUF `llama` files (their Q/K rows are permuted for it).
    Normal,
    /// Split halves `(i, i + n_rot / 2)`, as GPT-NeoX and most newer families.
    Neox,
}

#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Rope {
    pub style: RopeStyle,
    pub base: f32,
    /// Leading dimensions of each head that are rotated (the rest pass through).
    pub dims: usize,
}

/// The sizes a backend's buffers follow.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Shape {
    pub n_layer: usize,
    pub n_embd: usize,
    pub n_head: usize,
    pub n_head_kv: usize,
    pub head_dim: usize,
    pub n_ff: usize,
    pub n_vocab: usize,
}

impl Shape {
    pub fn q_dim(&self) -> usize {
        self.n_head * self.head_dim
    }

    pub fn kv_dim(&self) -> usize {
        self.n_head_kv * self.head_dim
    }

    /// The width of one token's row of `act`.
    pub fn width(&self, act: Act) -> usize {
        match act {
            Act::X | Act::Xn | Act::Proj => self.n_embd,
            Act::Q | Act::Attn => self.q_dim(),
            Act::K | Act::V => self.kv_dim(),
            Act::Gate | Act::Up => self.n_ff,
        }
    }

    /// The widest activation row: the widest input of any product.
    pub fn widest(&self) -> usize {
        Act::ALL
            .iter()
            .map(|&act| self.width(act))
            .max()
            .unwrap_or(0)
    }

    /// Values of the largest weight matrix, a layer's (`n_embd` by `q_dim` or `n_ff`) or
    /// the output head; `None` when it overflows.
    pub fn largest_matrix(&self) -> Option<usize> {
        [self.q_dim(), self.n_ff, self.n_vocab]
            .iter()
            .try_fold(0usize, |most, &rows| {
                Some(most.max(rows.checked_mul(self.n_embd)?))
            })
    }

    /// Bytes of one f32 buffer per [`Act`] for `n_batch` tokens, as both backends hold.
    pub fn activation_bytes(&self, n_batch: usize) -> u128 {
        let values: u128 = Act::ALL.iter().map(|&act| self.width(act) as u128).sum();
        4 * n_batch as u128 * values
    }
}

/// What a context asks its backend to hold: `n_slots` cached tokens of `kv_type` in
/// blocks of `block_size`, `n_seq` sequence tables, steps of up to `n_batch` tokens; and
/// for a model with sliding-window layers, those layers' own smaller cache.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ContextSizes {
    pub n_slots: usize,
    pub block_size: usize,
    pub n_seq: usize,
    pub n_batch: usize,
    pub kv_type: KvType,
    /// The cache of the window layers, which then read it instead of the `n_slots` one.
    pub window: Option<WindowSizes>,
}

impl ContextSizes {
    /// Whether layer `layer` reads the window layers' cache.
    pub fn reads_window(&self, layer: usize) -> bool {
        self.window.is_some_and(|w| w.holds(layer))
    }

    /// The token slots of the cache layer `layer` reads.
    pub fn layer_slots(&self, layer: usize) -> usize {
        match self.window {
            Some(w) if w.holds(layer) => w.n_slots,
            _ => self.n_slots,
        }
    }

    /// Bytes of the K/V storage of a model of `shape`: K and V of every layer, each of
    /// its cache's slots, as both backends store them.
    pub fn kv_bytes(&self, shape: &Shape) -> u128 {
        self.kv_bytes_of(shape, 0..shape.n_layer)
    }

    /// [`ContextSizes::kv_bytes`] of `layers` only (a layer split's share).
    pub fn kv_bytes_of(&self, shape: &Shape, layers: Range<usize>) -> u128 {
        let row = self.kv_type.bytes(shape.kv_dim()) as u128;
        let slots: u128 = layers.map(|layer| self.layer_slots(layer) as u128).sum();
        2 * row * slots
    }
}

/// The sliding-window layers' cache: `n_slots` token slots for each of those layers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WindowSizes {
    pub n_slots: usize,
    /// Every `global_every`-th layer is global (see [`is_window_layer`]).
    pub global_every: usize,
}

impl WindowSizes {
    /// Whether layer `layer` is one of the window layers this cache holds.
    pub fn holds(&self, layer: usize) -> bool {
        is_window_layer(layer, self.global_every)
    }
}

/// Whether `layer` is a sliding-window layer of a model whose every `global_every`-th
/// layer is global and the others windowed (Gemma 3: 6, five local layers to one global).
/// The one statement of that pattern, for the model's masks and the backends' storage.
pub fn is_window_layer(layer: usize, global_every: usize) -> bool {
    !(layer + 1).is_multiple_of(global_every)
}

/// The activation buffers of a step, each `[n_tokens, width]` f32, owned by the backend.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Act {
    /// The residual stream, `[n, n_embd]`.
    X,
    /// A sublayer's normalised input, `[n, n_embd]`.
    Xn,
    /// `[n, n_head * head_dim]`
    Q,
    /// `[n, n_head_kv * head_dim]`
    K,
    /// `[n, n_head_kv * head_dim]`
    V,
    /// Attention output, `[n, n_head * head_dim]`.
    Attn,
    /// Output of the attention and FFN output projections, `[n, n_embd]`.
    Proj,
    /// `[n, n_ff]`
    Gate,
    /// `[n, n_ff]`
    Up,
}

impl Act {
    pub const ALL: [Act; 9] = [
        Act::X,
        Act::Xn,
        Act::Q,
        Act::K,
        Act::V,
        Act::Attn,
        Act::Proj,
        Act::Gate,
        Act::Up,
    ];
}

/// One context's state on a backend (its K/V storage, activations and the step's inputs)
/// and the operations of a forward pass over it. Every operation works on the tokens of
/// the step given to [`Backend::begin_step`] and returns `Result`: a device may fail.
pub trait Backend {
    /// A weight matrix as this backend holds it.
    type Matrix<'w>;
    /// A weight vector (norm weights) as this backend holds it.
    type Vector;

    /// Takes the step's inputs (tokens, positions, write slots, block tables, which rows
    /// want logits) and performs its KV block copies (copy-on-write) first.
    fn begin_step(&mut self, step: &Step) -> Result<()>;
    /// `X[t] = table[token t]`.
    fn embed(&mut self, table: &Self::Matrix<'_>) -> Result<()>;
    /// `x *= factor`.
    fn scale(&mut self, x: Act, factor: f32) -> Result<()>;
    /// `out[t] = x[t] / sqrt(mean(x[t]²) + eps) * weight`.
    fn rms_norm(&mut self, x: Act, weight: &Self::Vector, eps: f32, out: Act) -> Result<()>;
    /// `x[t] += bias` for every token (Qwen 2's Q/K/V biases).
    fn add_bias(&mut self, x: Act, bias: &Self::Vector) -> Result<()>;
    /// RMS norm of each attention head of `x` (`Q` or `K`) in place, with one `head_dim`
    /// weight for every head: the Q/K norm of Gemma 3 and Qwen 3.
    fn head_rms_norm(&mut self, x: Act, weight: &Self::Vector, eps: f32) -> Result<()>;
    /// `out_i[t] = W_i · x[t]` for every `(W_i, out_i)`: one input, several matrices.
    fn matmul(&mut self, x: Act, products: &[(&Self::Matrix<'_>, Act)]) -> Result<()>;
    /// Rotates `Q` and `K` of every token at its position and writes `K` and `V` into
    /// layer `layer`'s cache at the token's slot.
    fn rope_and_store_kv(&mut self, layer: usize, rope: &Rope) -> Result<()>;
    /// `Attn[t] = softmax(Q[t] · K * scale) · V` over the cached tokens of the token's
    /// sequence at or before its position (with a sliding `window`, its last `window`
    /// positions only), read through the block tables.
    fn attention(&mut self, layer: usize, scale: f32, window: Option<usize>) -> Result<()>;
    /// `Gate = silu(Gate) * Up`.
    fn swiglu(&mut self) -> Result<()>;
    /// `Gate = gelu(Gate) * Up`, GELU in its tanh form (Gemma's feed-forward).
    fn geglu(&mut self) -> Result<()>;
    /// `X += x` (`x` of the residual stream's width).
    fn add_to_residual(&mut self, x: Act) -> Result<()>;
    /// `X += Σ x` over the devices of a tensor split, each of which holds its part of
    /// the sum in `x` (of the residual stream's width); all of them get the same `X`. A
    /// backend on one device is a split of one: `X += x`.
    fn add_sum_to_residual(&mut self, x: Act) -> Result<()> {
        self.add_to_residual(x)
    }
    /// `x = Σ x` over the devices of a tensor split, as [`Backend::add_sum_to_residual`]
    /// adds them; nothing to do on one device.
    fn sum_in_place(&mut self, x: Act) -> Result<()> {
        let _ = x;
        Ok(())
    }
    /// `X += W · x`: a product into the residual stream (through `Proj`, which it leaves
    /// unspecified). Backends that can add in place do it in one pass.
    fn matmul_into_residual(&mut self, x: Act, w: &Self::Matrix<'_>) -> Result<()> {
        self.matmul(x, &[(w, Act::Proj)])?;
        self.add_to_residual(Act::Proj)
    }
    /// `X += W · x`, then `out = rms_norm(X, norm, eps)`: a sublayer's residual product and
    /// the next sublayer's norm, whose result only the products by `readers` read next
    /// (`out` as their input). Backends that can prepare the norm inside the residual
    /// product do, and may then leave `out` in a form only those products read.
    fn matmul_into_residual_and_norm(
        &mut self,
        x: Act,
        w: &Self::Matrix<'_>,
        norm: &Self::Vector,
        eps: f32,
        out: Act,
        readers: &[&Self::Matrix<'_>],
    ) -> Result<()> {
        let _ = readers;
        self.matmul_into_residual(x, w)?;
        self.rms_norm(Act::X, norm, eps, out)
    }
    /// `out = rms_norm(X, norm, eps)` as [`Backend::matmul_into_residual_and_norm`] leaves
    /// it, where no residual product comes before it: the first layer of a layer split's
    /// later share, whose norm one device computes in the product before. A backend that
    /// prepares the norm there prepares it here the same way, so the split computes what
    /// one device does.
    fn prepare_norm(
        &mut self,
        norm: &Self::Vector,
        eps: f32,
        out: Act,
        readers: &[&Self::Matrix<'_>],
    ) -> Result<()> {
        let _ = readers;
        self.rms_norm(Act::X, norm, eps, out)
    }
    /// `Gate = silu(W_gate · x) * (W_up · x)`, the feed-forward's gated input (leaving `Up`
    /// unspecified). Backends that can combine the two products do it in one pass.
    fn matmul_swiglu<'w>(
        &mut self,
        x: Act,
        gate: &Self::Matrix<'w>,
        up: &Self::Matrix<'w>,
    ) -> Result<()> {
        self.matmul(x, &[(gate, Act::Gate), (up, Act::Up)])?;
        self.swiglu()
    }
    /// For the tokens that want logits: `logits = output · rms_norm(X, norm, eps)`.
    fn output_logits(
        &mut self,
        norm: &Self::Vector,
        eps: f32,
        output: &Self::Matrix<'_>,
    ) -> Result<()>;
    /// Host and device bytes this state holds.
    fn memory(&self) -> BackendMemory;
}

/// What a backend state holds, by where it lives.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct BackendMemory {
    pub kv_bytes: u64,
    pub host_bytes: u64,
    pub device_bytes: u64,
}

impl std::iter::Sum for BackendMemory {
    /// What several states hold together (the GPUs of a layer split).
    fn sum<I: Iterator<Item = BackendMemory>>(states: I) -> BackendMemory {
        states.fold(BackendMemory::default(), |sum, m| BackendMemory {
            kv_bytes: sum.kv_bytes + m.kv_bytes,
            host_bytes: sum.host_bytes + m.host_bytes,
            device_bytes: sum.device_bytes + m.device_bytes,
        })
    }
}

/// A byte count computed in u128, as u64 (saturating: only absurd sizes reach the limit,
/// and those fail to allocate anyway).
pub fn saturating_bytes(bytes: u128) -> u64 {
    u64::try_from(bytes).unwrap_or(u64::MAX)
}
