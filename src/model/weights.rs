//! The weights of a llama-family model, looked up by name and checked against the config.
//! Matrices are borrowed from the file's bytes (no copy); norm vectors, a few KiB each,
//! are converted to f32 once.

use std::ops::Range;

use super::config::{Architecture, ModelConfig};
use super::tensor_split::TensorShare;
use crate::backend::gpu::ops::GpuOps;
use crate::backend::gpu::{DeviceBuffer, GpuMatrix, Stream};
use crate::error::{Error, Result};
use crate::gguf::GgufFile;
use crate::tensor::WeightMatrix;
use crate::tensor::dequantize_to_vec;

/// One layer's weights, wherever they live: `M` is a backend's matrix, `V` its vector.
pub struct LayerWeights<M, V> {
    pub attn_norm: V, // [n_embd]
    pub wq: M,        // [q_dim rows, n_embd]
    pub wk: M,        // [kv_dim rows, n_embd]
    pub wv: M,        // [kv_dim rows, n_embd]
    pub wo: M,        // [n_embd rows, q_dim]
    pub ffn_norm: V,  // [n_embd]
    pub w_gate: M,    // [n_ff rows, n_embd]
    pub w_up: M,      // [n_ff rows, n_embd]
    pub w_down: M,    // [n_embd rows, n_ff]
    /// Biases added to the Q, K and V products (Qwen 2).
    pub qkv_biases: Option<QkvBiases<V>>,
    /// RMS norms of each query and key head before RoPE (Gemma 3, Qwen 3).
    pub qk_norms: Option<QkNorms<V>>,
    /// RMS norms of each sublayer's output before it joins the residual stream (Gemma 3).
    pub post_norms: Option<PostNorms<V>>,
}

pub struct QkvBiases<V> {
    pub q: V, // [q_dim]
    pub k: V, // [kv_dim]
    pub v: V, // [kv_dim]
}

#[derive(Clone)]
pub struct QkNorms<V> {
    pub q: V, // [head_dim]
    pub k: V, // [head_dim]
}

#[derive(Clone)]
pub struct PostNorms<V> {
    pub attention: V, // [n_embd]
    pub ffn: V,       // [n_embd]
}

pub struct LlamaWeights<M, V> {
    pub token_embd: M, // [n_vocab rows, n_embd]
    pub layers: Vec<LayerWeights<M, V>>,
    pub output_norm: V, // [n_embd]
    pub output: M,      // [n_vocab rows, n_embd]; token_embd when tied
}

/// What one device runs of the forward pass: the embedding (on the first device), a
/// contiguous run of layers, the output norm and head (on the last). A model on one
/// device is one stage of every layer.
pub struct Stage<'a, M, V> {
    pub token_embd: Option<&'a M>,
    /// The model's index of `layers[0]`.
    pub first_layer: usize,
    pub layers: &'a [LayerWeights<M, V>],
    /// The output norm and the output matrix.
    pub head: Option<(&'a V, &'a M)>,
    /// Whether the products into the residual stream give this device's part of a sum
    /// over the devices of a tensor split (its columns of the output and down matrices).
    pub partial_sums: bool,
}

impl<M, V> LlamaWeights<M, V> {
    /// The whole forward pass as one stage.
    pub fn whole(&self) -> Stage<'_, M, V> {
        Stage {
            token_embd: Some(&self.token_embd),
            first_layer: 0,
            layers: &self.layers,
            head: Some((&self.output_norm, &self.output)),
            partial_sums: false,
        }
    }
}

/// The weights as the CPU reads them: matrices borrowed from the file, norms in f32.
pub type HostWeights<'a> = LlamaWeights<WeightMatrix<'a>, Vec<f32>>;

impl<'a> HostWeights<'a> {
    pub fn from_gguf(file: &GgufFile<'a>, c: &ModelConfig) -> Result<HostWeights<'a>> {
        let d = Dims::of(c);
        let token_embd = matrix(file, "token_embd.weight", d.vocab, d.embd)?;
        let output = if c.tied_output {
            token_embd
        } else {
            matrix(file, "output.weight", d.vocab, d.embd)?
        };
        let layers = (0..c.n_layer)
            .map(|i| {
                let name = |t: &str| format!("blk.{i}.{t}.weight");
                let bias = |t: &str| format!("blk.{i}.{t}.bias");
                // One stored matrix for Q, K and V, and one for gate and up (Phi-3), whose
                // rows are the products' rows one after the other.
                let [wq, wk, wv] = match file.tensor_info(&name("attn_qkv")) {
                    Some(_) => stacked(file, &name("attn_qkv"), [d.q, d.kv, d.kv], d.embd)?,
                    None => [
                        matrix(file, &name("attn_q"), d.q, d.embd)?,
                        matrix(file, &name("attn_k"), d.kv, d.embd)?,
                        matrix(file, &name("attn_v"), d.kv, d.embd)?,
                    ],
                };
                let [w_gate, w_up] = match file.tensor_info(&name("ffn_gate")) {
                    None if c.architecture == Architecture::Phi3 => {
                        stacked(file, &name("ffn_up"), [d.ff, d.ff], d.embd)?
                    }
                    _ => [
                        matrix(file, &name("ffn_gate"), d.ff, d.embd)?,
                        matrix(file, &name("ffn_up"), d.ff, d.embd)?,
                    ],
                };
                Ok(LayerWeights {
                    attn_norm: vector(file, &name("attn_norm"), d.embd)?,
                    wq,
                    wk,
                    wv,
                    wo: matrix(file, &name("attn_output"), d.embd, d.q)?,
                    ffn_norm: vector(file, &name("ffn_norm"), d.embd)?,
                    w_gate,
                    w_up,
                    w_down: matrix(file, &name("ffn_down"), d.embd, d.ff)?,
                    qkv_biases: match c.architecture {
                        Architecture::Qwen2 => Some(QkvBiases {
                            q: vector(file, &bias("attn_q"), d.q)?,
                            k: vector(file, &bias("attn_k"), d.kv)?,
                            v: vector(file, &bias("attn_v"), d.kv)?,
                        }),
                        _ => None,
                    },
                    qk_norms: match c.architecture {
                        Architecture::Llama | Architecture::Qwen2 | Architecture::Phi3 => None,
                        Architecture::Gemma3 | Architecture::Qwen3 => Some(QkNorms {
                            q: vector(file, &name("attn_q_norm"), d.head)?,
                            k: vector(file, &name("attn_k_norm"), d.head)?,
                        }),
                    },
                    post_norms: match c.architecture {
                        Architecture::Llama
                        | Architecture::Qwen2
                        | Architecture::Qwen3
                        | Architecture::Phi3 => None,
                        Architecture::Gemma3 => Some(PostNorms {
                            attention: vector(file, &name("post_attention_norm"), d.embd)?,
                            ffn: vector(file, &name("post_ffw_norm"), d.embd)?,
                        }),
                    },
                })
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(LlamaWeights {
            token_embd,
            layers,
            output_norm: vector(file, "output_norm.weight", d.embd)?,
            output,
        })
    }
}

/// A tensor dimension the hyperparameters fix: its size, and what it is called in an
/// error message, so a wrong shape says which hyperparameter it contradicts.
#[derive(Clone, Copy)]
struct Dim {
    size: usize,
    name: &'static str,
}

/// Every dimension a llama weight has.
struct Dims {
    embd: Dim,
    vocab: Dim,
    q: Dim,
    kv: Dim,
    ff: Dim,
    head: Dim,
}

impl Dims {
    fn of(c: &ModelConfig) -> Dims {
        let dim = |size, name| Dim { size, name };
        Dims {
            embd: dim(c.n_embd, "n_embd"),
            vocab: dim(c.n_vocab, "n_vocab"),
            q: dim(c.q_dim(), "n_head * head_dim"),
            kv: dim(c.kv_dim(), "n_head_kv * head_dim"),
            ff: dim(c.n_ff, "n_ff"),
            head: dim(c.head_dim, "head_dim"),
        }
    }
}

/// Whether `found` (a GGUF shape) is exactly `expected`.
fn shape_is(found: &[u64], expected: &[Dim]) -> bool {
    found.len() == expected.len()
        && found
            .iter()
            .zip(expected)
            .all(|(&f, d)| u64::try_from(d.size) == Ok(f))
}

fn shape_error(name: &str, found: &[u64], expected: &[Dim]) -> Error {
    let sizes: Vec<usize> = expected.iter().map(|d| d.size).collect();
    let names: Vec<&str> = expected.iter().map(|d| d.name).collect();
    Error::InvalidModel(format!(
        "tensor '{name}' has shape {found:?}, the hyperparameters need {sizes:?} ({})",
        names.join(", ")
    ))
}

/// A matrix of `rows` rows of `cols` values: GGUF shape `[cols, rows]`.
fn matrix<'a>(file: &GgufFile<'a>, name: &str, rows: Dim, cols: Dim) -> Result<WeightMatrix<'a>> {
    let view = file.tensor(name)?;
    let shape = view.info.shape();
    if !shape_is(shape, &[cols, rows]) {
        return Err(shape_error(name, shape, &[cols, rows]));
    }
    WeightMatrix::new(view.info.dtype(), view.data, rows.size, cols.size)
}

/// A matrix whose rows are `parts.len()` matrices of `cols` values one after the other
/// (GGUF shape `[cols, sum of parts]`), as views of its bytes.
fn stacked<'a, const N: usize>(
    file: &GgufFile<'a>,
    name: &str,
    parts: [Dim; N],
    cols: Dim,
) -> Result<[WeightMatrix<'a>; N]> {
    let view = file.tensor(name)?;
    let shape = view.info.shape();
    let rows = parts.iter().map(|p| p.size).sum::<usize>();
    let stacked_rows = Dim {
        size: rows,
        name: "the stacked matrices' rows",
    };
    if !shape_is(shape, &[cols, stacked_rows]) {
        return Err(shape_error(name, shape, &[cols, stacked_rows]));
    }
    let whole = WeightMatrix::new(view.info.dtype(), view.data, rows, cols.size)?;
    let mut first = 0;
    let matrices = parts
        .iter()
        .map(|part| {
            let rows = first..first + part.size;
            first += part.size;
            whole.rows(rows)
        })
        .collect::<Result<Vec<_>>>()?;
    matrices
        .try_into()
        .map_err(|_| Error::InvalidModel(format!("tensor '{name}': {N} parts expected")))
}

/// A weight vector (a norm's weights, a bias) of `n` values; NaN or infinity in it is a
/// model error.
fn vector(file: &GgufFile<'_>, name: &str, n: Dim) -> Result<Vec<f32>> {
    let view = file.tensor(name)?;
    if !shape_is(view.info.shape(), &[n]) {
        return Err(shape_error(name, view.info.shape(), &[n]));
    }
    let values = dequantize_to_vec(view.info.dtype(), view.data, n.size)?;
    if let Some(i) = values.iter().position(|v| !v.is_finite()) {
        return Err(Error::InvalidModel(format!(
            "tensor '{name}' holds {} at index {i}",
            values[i]
        )));
    }
    Ok(values)
}

/// The weights one GPU holds: all of them; or its share of a layer split, with the
/// embedding on the share of layer 0 and the output head on the share of the last layer;
/// or its share of a tensor split.
pub struct DeviceShare {
    token_embd: Option<GpuMatrix>,
    first_layer: usize,
    layers: Vec<LayerWeights<GpuMatrix, DeviceBuffer<f32>>>,
    head: Option<(DeviceBuffer<f32>, GpuMatrix)>,
    partial_sums: bool,
}

impl DeviceShare {
    pub fn stage(&self) -> Stage<'_, GpuMatrix, DeviceBuffer<f32>> {
        Stage {
            token_embd: self.token_embd.as_ref(),
            first_layer: self.first_layer,
            layers: &self.layers,
            head: self.head.as_ref().map(|(norm, output)| (norm, output)),
            partial_sums: self.partial_sums,
        }
    }
}

impl HostWeights<'_> {
    /// Uploads the matrices and norms of `layers` to `stream`'s device, with the
    /// embedding when they begin at layer 0 and the output head when they end at the
    /// last (the tied output shares the embedding's upload only on the host: on the
    /// device it is a second copy, simple and rare enough for small models).
    pub fn upload(
        &self,
        stream: &Stream,
        ops: &GpuOps,
        layers: Range<usize>,
    ) -> Result<DeviceShare> {
        let matrix = |m: &WeightMatrix<'_>| GpuMatrix::upload(stream, ops, m);
        let vector = |v: &Vec<f32>| stream.device().upload(stream, v);
        let n_layer = self.layers.len();
        let Some(held) = self.layers.get(layers.clone()) else {
            return Err(Error::InvalidArgument(format!(
                "layers {layers:?} of a model of {n_layer} layers"
            )));
        };
        let first_layer = layers.start;
        let layers = held
            .iter()
            .map(|l| upload_layer(stream, ops, l))
            .collect::<Result<Vec<_>>>()?;
        let embeds = first_layer == 0;
        let ends = first_layer + layers.len() == n_layer;
        Ok(DeviceShare {
            token_embd: embeds.then(|| matrix(&self.token_embd)).transpose()?,
            first_layer,
            layers,
            head: match ends {
                true => Some((vector(&self.output_norm)?, matrix(&self.output)?)),
                false => None,
            },
            partial_sums: false,
        })
    }

    /// Uploads a tensor split's `share` of every layer (see `tensor_split`) to `stream`'s
    /// device: its rows of the Q, K, V, gate and up matrices, its columns of the attention
    /// output and down matrices, its part of the Q/K/V biases, and the whole norms; with
    /// the embedding, as every device of the split runs the whole residual stream, and
    /// the output head where `head` (one device computes the logits).
    pub fn upload_tensor_share(
        &self,
        stream: &Stream,
        ops: &GpuOps,
        share: &TensorShare,
        head_dim: usize,
        head: bool,
    ) -> Result<DeviceShare> {
        let values = |heads: &Range<usize>| heads.start * head_dim..heads.end * head_dim;
        let (q, kv, ff) = (values(&share.q_heads), values(&share.kv_heads), &share.ff);
        let part_of = |v: &Vec<f32>, part: &Range<usize>| {
            v.get(part.clone()).map(<[f32]>::to_vec).ok_or_else(|| {
                Error::InvalidArgument(format!("values {part:?} of a bias of {}", v.len()))
            })
        };
        let layers = self
            .layers
            .iter()
            .map(|l| {
                let wo = l.wo.column_bytes(q.clone())?;
                let down = l.w_down.column_bytes(ff.clone())?;
                let part = LayerWeights {
                    attn_norm: l.attn_norm.clone(),
                    wq: l.wq.rows(q.clone())?,
                    wk: l.wk.rows(kv.clone())?,
                    wv: l.wv.rows(kv.clone())?,
                    wo: WeightMatrix::new(l.wo.dtype, &wo, l.wo.n_rows, q.len())?,
                    ffn_norm: l.ffn_norm.clone(),
                    w_gate: l.w_gate.rows(ff.clone())?,
                    w_up: l.w_up.rows(ff.clone())?,
                    w_down: WeightMatrix::new(l.w_down.dtype, &down, l.w_down.n_rows, ff.len())?,
                    qkv_biases: match &l.qkv_biases {
                        Some(b) => Some(QkvBiases {
                            q: part_of(&b.q, &q)?,
                            k: part_of(&b.k, &kv)?,
                            v: part_of(&b.v, &kv)?,
                        }),
                        None => None,
                    },
                    qk_norms: l.qk_norms.clone(),
                    post_norms: l.post_norms.clone(),
                };
                upload_layer(stream, ops, &part)
            })
            .collect::<Result<Vec<_>>>()?;
        let matrix = |m: &WeightMatrix<'_>| GpuMatrix::upload(stream, ops, m);
        let vector = |v: &Vec<f32>| stream.device().upload(stream, v);
        Ok(DeviceShare {
            token_embd: Some(matrix(&self.token_embd)?),
            first_layer: 0,
            layers,
            head: match head {
                true => Some((vector(&self.output_norm)?, matrix(&self.output)?)),
                false => None,
            },
            partial_sums: true,
        })
    }
}

/// Uploads one layer's matrices and vectors to `stream`'s device.
fn upload_layer(
    stream: &Stream,
    ops: &GpuOps,
    l: &LayerWeights<WeightMatrix<'_>, Vec<f32>>,
) -> Result<LayerWeights<GpuMatrix, DeviceBuffer<f32>>> {
    let matrix = |m: &WeightMatrix<'_>| GpuMatrix::upload(stream, ops, m);
    let vector = |v: &Vec<f32>| stream.device().upload(stream, v);
    Ok(LayerWeights {
        attn_norm: vector(&l.attn_norm)?,
        wq: matrix(&l.wq)?,
        wk: matrix(&l.wk)?,
        wv: matrix(&l.wv)?,
        wo: matrix(&l.wo)?,
        ffn_norm: vector(&l.ffn_norm)?,
        w_gate: matrix(&l.w_gate)?,
        w_up: matrix(&l.w_up)?,
        w_down: matrix(&l.w_down)?,
        qkv_biases: match &l.qkv_biases {
            Some(b) => Some(QkvBiases {
                q: vector(&b.q)?,
                k: vector(&b.k)?,
                v: vector(&b.v)?,
            }),
            None => None,
        },
        qk_norms: match &l.qk_norms {
            Some(n) => Some(QkNorms {
                q: vector(&n.q)?,
                k: vector(&n.k)?,
            }),
            None => None,
        },
        post_norms: match &l.post_norms {
            Some(n) => Some(PostNorms {
                attention: vector(&n.attention)?,
                ffn: vector(&n.ffn)?,
            }),
            None => None,
        },
    })
}

impl DeviceShare {
    /// Bytes the weights hold in device memory.
    pub fn device_bytes(&self) -> u64 {
        let vector = |v: &DeviceBuffer<f32>| v.size_bytes() as u64;
        let layers: u64 = self
            .layers
            .iter()
            .map(|l| {
                [&l.wq, &l.wk, &l.wv, &l.wo, &l.w_gate, &l.w_up, &l.w_down]
                    .iter()
                    .map(|m| m.bytes())
                    .sum::<u64>()
                    + vector(&l.attn_norm)
                    + vector(&l.ffn_norm)
                    + l.qkv_biases
                        .as_ref()
                        .map_or(0, |b| vector(&b.q) + vector(&b.k) + vector(&b.v))
                    + l.qk_norms
                        .as_ref()
                        .map_or(0, |n| vector(&n.q) + vector(&n.k))
                    + l.post_norms
                        .as_ref()
                        .map_or(0, |n| vector(&n.attention) + vector(&n.ffn))
            })
            .sum();
        let embedding = self.token_embd.as_ref().map_or(0, GpuMatrix::bytes);
        let head = self
            .head
            .as_ref()
            .map_or(0, |(norm, output)| vector(norm) + output.bytes());
        layers + embedding + head
    }
}
