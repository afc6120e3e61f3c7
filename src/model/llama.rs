//! The llama-family forward pass, written once for every backend and read top to bottom
//! like the paper: embed → layers (norm, qkv, rope, attention, out, residual, norm, ffn,
//! residual) → norm → logits.

use std::sync::atomic::{AtomicBool, Ordering};

use super::config::ModelConfig;
use super::weights::LlamaWeights;
use crate::backend::{Act, Backend};
use crate::error::{Error, Result};

/// Runs the step the backend was given (`Backend::begin_step`) through the model: each
/// token's K and V go into the cache, the logits of the tokens that want them into the
/// backend's logits. Checks `cancel` between layers.
pub fn forward<'w, B: Backend>(
    c: &ModelConfig,
    w: &LlamaWeights<B::Matrix<'w>, B::Vector>,
    b: &mut B,
    cancel: &AtomicBool,
) -> Result<()> {
    let rope = c.rope();
    let attention_scale = 1.0 / (c.head_dim as f32).sqrt();
    b.embed(&w.token_embd)?; // X [n, n_embd]
    for (layer, lw) in w.layers.iter().enumerate() {
        if cancel.load(Ordering::Relaxed) {
            return Err(Error::Cancelled);
        }
        // Attention sublayer.
        b.rms_norm(Act::X, &lw.attn_norm, c.rms_eps, Act::Xn)?;
        b.matmul(
            Act::Xn,
            &[(&lw.wq, Act::Q), (&lw.wk, Act::K), (&lw.wv, Act::V)],
        )?;
        b.rope_and_store_kv(layer, &rope)?;
        b.attention(layer, attention_scale)?; // Attn [n, q_dim]
        b.matmul_into_residual(Act::Attn, &lw.wo)?;

        // Feed-forward sublayer.
        b.rms_norm(Act::X, &lw.ffn_norm, c.rms_eps, Act::Xn)?;
        b.matmul_swiglu(Act::Xn, &lw.w_gate, &lw.w_up)?; // Gate [n, n_ff]
        b.matmul_into_residual(Act::Gate, &lw.w_down)?;
    }
    // Output head, only for the tokens that asked for logits.
    b.output_logits(&w.output_norm, c.rms_eps, &w.output)
}
