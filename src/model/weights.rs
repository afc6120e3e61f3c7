//! The weights of a llama-family model, looked up by name and checked against the config.
//! Matrices are borrowed from the file's bytes (no copy); norm vectors, a few KiB each,
//! are converted to f32 once.

use super::config::ModelConfig;
use crate::backend::cpu::WeightMatrix;
use crate::error::{Error, Result};
use crate::gguf::GgufFile;
use crate::tensor::dequantize_to_vec;

pub struct LayerWeights<'a> {
    pub attn_norm: Vec<f32>,      // [n_embd]
    pub wq: WeightMatrix<'a>,     // [q_dim rows, n_embd]
    pub wk: WeightMatrix<'a>,     // [kv_dim rows, n_embd]
    pub wv: WeightMatrix<'a>,     // [kv_dim rows, n_embd]
    pub wo: WeightMatrix<'a>,     // [n_embd rows, q_dim]
    pub ffn_norm: Vec<f32>,       // [n_embd]
    pub w_gate: WeightMatrix<'a>, // [n_ff rows, n_embd]
    pub w_up: WeightMatrix<'a>,   // [n_ff rows, n_embd]
    pub w_down: WeightMatrix<'a>, // [n_embd rows, n_ff]
}

pub struct LlamaWeights<'a> {
    pub token_embd: WeightMatrix<'a>, // [n_vocab rows, n_embd]
    pub layers: Vec<LayerWeights<'a>>,
    pub output_norm: Vec<f32>,    // [n_embd]
    pub output: WeightMatrix<'a>, // [n_vocab rows, n_embd]; token_embd when tied
}

impl<'a> LlamaWeights<'a> {
    pub fn from_gguf(file: &GgufFile<'a>, c: &ModelConfig) -> Result<LlamaWeights<'a>> {
        let token_embd = matrix(file, "token_embd.weight", c.n_vocab, c.n_embd)?;
        let output = if c.tied_output {
            token_embd
        } else {
            matrix(file, "output.weight", c.n_vocab, c.n_embd)?
        };
        let layers = (0..c.n_layer)
            .map(|i| {
                let name = |t: &str| format!("blk.{i}.{t}.weight");
                Ok(LayerWeights {
                    attn_norm: norm(file, &name("attn_norm"), c.n_embd)?,
                    wq: matrix(file, &name("attn_q"), c.q_dim(), c.n_embd)?,
                    wk: matrix(file, &name("attn_k"), c.kv_dim(), c.n_embd)?,
                    wv: matrix(file, &name("attn_v"), c.kv_dim(), c.n_embd)?,
                    wo: matrix(file, &name("attn_output"), c.n_embd, c.q_dim())?,
                    ffn_norm: norm(file, &name("ffn_norm"), c.n_embd)?,
                    w_gate: matrix(file, &name("ffn_gate"), c.n_ff, c.n_embd)?,
                    w_up: matrix(file, &name("ffn_up"), c.n_ff, c.n_embd)?,
                    w_down: matrix(file, &name("ffn_down"), c.n_embd, c.n_ff)?,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(LlamaWeights {
            token_embd,
            layers,
            output_norm: norm(file, "output_norm.weight", c.n_embd)?,
            output,
        })
    }
}

fn shape_error(name: &str, found: &[u64], expected: &[usize]) -> Error {
    Error::InvalidModel(format!(
        "tensor '{name}' has shape {found:?}, the hyperparameters need {expected:?}"
    ))
}

/// A matrix of `n_rows` rows of `n_cols` values: GGUF shape `[n_cols, n_rows]`.
fn matrix<'a>(
    file: &GgufFile<'a>,
    name: &str,
    n_rows: usize,
    n_cols: usize,
) -> Result<WeightMatrix<'a>> {
    let view = file.tensor(name)?;
    let shape = view.info.shape();
    if shape != [n_cols as u64, n_rows as u64] {
        return Err(shape_error(name, shape, &[n_cols, n_rows]));
    }
    WeightMatrix::new(view.info.dtype(), view.data, n_rows, n_cols)
}

/// A norm weight vector of `n` values; NaN or infinity in it is a model error.
fn norm(file: &GgufFile<'_>, name: &str, n: usize) -> Result<Vec<f32>> {
    let view = file.tensor(name)?;
    if view.info.shape() != [n as u64] {
        return Err(shape_error(name, view.info.shape(), &[n]));
    }
    let values = dequantize_to_vec(view.info.dtype(), view.data, n)?;
    if let Some(i) = values.iter().position(|v| !v.is_finite()) {
        return Err(Error::InvalidModel(format!(
            "tensor '{name}' holds {} at index {i}",
            values[i]
        )));
    }
    Ok(values)
}
