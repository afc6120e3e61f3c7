//! The llama-family forward pass, written once for every backend and read top to bottom
//! like the paper: embed → layers (norm, qkv, rope, attention, out, residual, norm, ffn,
//! residual) → norm → logits. Gemma 3 and Qwen 2/3 are the same pass with their variations
//! switched on by the config and weights: scaled embeddings, Q/K/V biases, per-head Q/K
//! norms, a norm on each sublayer's output before the residual add, GELU, and
//! sliding-window layers.

use std::sync::atomic::{AtomicBool, Ordering};

use super::config::{FfnActivation, ModelConfig};
use super::weights::Stage;
use crate::backend::{Act, Backend};
use crate::error::{Error, Result};

/// Runs the step the backend was given (`Backend::begin_step`) through a stage of the
/// model (all of it, or one device's share of a layer split, whose residual stream `X`
/// the earlier stage left in the backend): each token's K and V go into the cache, the
/// logits of the tokens that want them into the backend's logits. Checks `cancel`
/// between layers.
pub fn forward<'w, B: Backend>(
    c: &ModelConfig,
    w: Stage<'_, B::Matrix<'w>, B::Vector>,
    b: &mut B,
    cancel: &AtomicBool,
) -> Result<()> {
    let attention_scale = 1.0 / (c.head_dim as f32).sqrt();
    if let Some(token_embd) = w.token_embd {
        b.embed(token_embd)?; // X [n, n_embd]
        if let Some(factor) = c.embedding_scale {
            b.scale(Act::X, factor)?;
        }
    }
    for (i, (layer, lw)) in (w.first_layer..).zip(w.layers).enumerate() {
        if cancel.load(Ordering::Relaxed) {
            return Err(Error::Cancelled);
        }
        // Attention sublayer. Its norm: for the stage's first layer here, for every other
        // one with the residual product of the layer before (`into_residual`'s next norm).
        // A later share of a layer split prepares it as that product would have on one
        // device (where there is no post-norm, with which the product leaves it alone).
        if i == 0 {
            let norm = NextNorm {
                weight: &lw.attn_norm,
                readers: [&lw.wq, &lw.wk, &lw.wv],
            };
            norm.of_stream(b, c.rms_eps, layer > 0 && lw.post_norms.is_none())?;
        }
        b.matmul(
            Act::Xn,
            &[(&lw.wq, Act::Q), (&lw.wk, Act::K), (&lw.wv, Act::V)],
        )?;
        if let Some(biases) = &lw.qkv_biases {
            b.add_bias(Act::Q, &biases.q)?;
            b.add_bias(Act::K, &biases.k)?;
            b.add_bias(Act::V, &biases.v)?;
        }
        if let Some(norms) = &lw.qk_norms {
            b.head_rms_norm(Act::Q, &norms.q, c.rms_eps)?;
            b.head_rms_norm(Act::K, &norms.k, c.rms_eps)?;
        }
        b.rope_and_store_kv(layer, &c.layer_rope(layer))?;
        let window = c.layer_window(layer).map(|w| w.window);
        b.attention(layer, attention_scale, window)?; // Attn [n, q_dim]
        let ffn_norm = NextNorm {
            weight: &lw.ffn_norm,
            readers: [&lw.w_gate, &lw.w_up],
        };
        let post_norms = lw.post_norms.as_ref();
        let residual = Residual {
            post_norm: post_norms.map(|n| &n.attention),
            eps: c.rms_eps,
            partial: w.partial_sums,
        };
        into_residual(b, Act::Attn, &lw.wo, residual, Some(ffn_norm))?;

        // Feed-forward sublayer (Xn holds its norm).
        match c.ffn_activation {
            FfnActivation::Silu => b.matmul_swiglu(Act::Xn, &lw.w_gate, &lw.w_up)?, // Gate [n, n_ff]
            FfnActivation::Gelu => {
                b.matmul(Act::Xn, &[(&lw.w_gate, Act::Gate), (&lw.w_up, Act::Up)])?;
                b.geglu()?;
            }
        }
        let next = w.layers.get(i + 1).map(|next| NextNorm {
            weight: &next.attn_norm,
            readers: [&next.wq, &next.wk, &next.wv],
        });
        let residual = Residual {
            post_norm: post_norms.map(|n| &n.ffn),
            ..residual
        };
        into_residual(b, Act::Gate, &lw.w_down, residual, next)?;
    }
    // Output head, only for the tokens that asked for logits.
    match w.head {
        Some((norm, output)) => b.output_logits(norm, c.rms_eps, output),
        None => Ok(()),
    }
}

/// The norm that reads the residual stream after a sublayer, into `Xn`, and the products
/// that read its result.
struct NextNorm<'a, 'w, B: Backend, const N: usize> {
    weight: &'a B::Vector,
    readers: [&'a B::Matrix<'w>; N],
}

impl<'w, B: Backend, const N: usize> NextNorm<'_, 'w, B, N> {
    /// `Xn = rms_norm(X)` where no residual product with this norm came before it (the
    /// first layer of a split's share, a tensor split's sums), `prepared` as one device's
    /// residual product prepares it, so that a split computes what one device does; not
    /// `prepared` after a post-norm (which that product leaves alone) or at layer 0.
    fn of_stream(&self, b: &mut B, eps: f32, prepared: bool) -> Result<()> {
        match prepared {
            true => b.prepare_norm(self.weight, eps, Act::Xn, &self.readers),
            false => b.rms_norm(Act::X, self.weight, eps, Act::Xn),
        }
    }
}

/// How a sublayer's output joins the residual stream.
struct Residual<'a, B: Backend> {
    /// The norm of the sublayer's output before it joins (Gemma 3).
    post_norm: Option<&'a B::Vector>,
    eps: f32,
    /// Whether the product gives this device's part of a tensor split's sum.
    partial: bool,
}

impl<B: Backend> Clone for Residual<'_, B> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<B: Backend> Copy for Residual<'_, B> {}

/// `X += W · x`, or with a post-norm (Gemma) `X += rms_norm(W · x)`, where a tensor split's
/// devices add up their parts of `W · x` first; then `Xn = rms_norm(X)` with the `next`
/// norm, if any.
fn into_residual<'w, B: Backend, const N: usize>(
    b: &mut B,
    x: Act,
    w: &B::Matrix<'w>,
    residual: Residual<'_, B>,
    next: Option<NextNorm<'_, 'w, B, N>>,
) -> Result<()> {
    let eps = residual.eps;
    if residual.post_norm.is_none() && !residual.partial {
        return match next {
            Some(next) => {
                b.matmul_into_residual_and_norm(x, w, next.weight, eps, Act::Xn, &next.readers)
            }
            None => b.matmul_into_residual(x, w),
        };
    }
    b.matmul(x, &[(w, Act::Proj)])?;
    match residual.post_norm {
        None => b.add_sum_to_residual(Act::Proj)?,
        Some(norm) => {
            b.sum_in_place(Act::Proj)?;
            // Xn is free here: the sublayer's input was consumed by its first product.
            b.rms_norm(Act::Proj, norm, eps, Act::Xn)?;
            b.add_to_residual(Act::Xn)?;
        }
    }
    match next {
        Some(next) => next.of_stream(b, eps, residual.post_norm.is_none()),
        None => Ok(()),
    }
}
