//! Hyperparameters of a model, read from its GGUF metadata and checked for consistency.

use crate::backend::{Rope, RopeStyle, Shape, is_window_layer};
use crate::error::{Error, Result};
use crate::gguf::{ArrayView, GgufFile};

/// The model families with a forward pass.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Architecture {
    /// Llama 2/3, SmolLM, Mistral and others stored as `llama`.
    Llama,
    /// Gemma 3 (`gemma3`): scaled embeddings, Q/K norms, norms after each sublayer, a
    /// GELU-gated feed-forward, and sliding-window attention on five layers of six.
    Gemma3,
    /// Qwen 2 and 2.5 (`qwen2`): llama with Q/K/V biases and NeoX RoPE.
    Qwen2,
    /// Qwen 3 (`qwen3`): llama with per-head Q/K norms and NeoX RoPE.
    Qwen3,
    /// Phi-3 and Phi-4-mini (`phi3`): llama with NeoX RoPE, its Q/K/V and gate/up matrices
    /// each stored as one (`attn_qkv`, `ffn_up`).
    Phi3,
}

/// The feed-forward's gate activation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FfnActivation {
    Silu,
    /// GELU, tanh form.
    Gelu,
}

/// Local layers attend to the last `window` positions only, with RoPE base `rope_base`.
/// Every `global_every`-th layer (Gemma 3: 6) is global and the others local.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct SlidingWindow {
    pub window: usize,
    pub global_every: usize,
    pub rope_base: f32,
}

/// llama.cpp's Gemma 3 constants, which the GGUF metadata does not carry: five local
/// layers to one global, and the local layers' RoPE base.
const GEMMA3_SWA_PERIOD: usize = 6;
const GEMMA3_LOCAL_ROPE_BASE: f32 = 10_000.0;

#[derive(Clone, Debug, PartialEq)]
pub struct ModelConfig {
    pub architecture: Architecture,
    pub n_embd: usize,
    pub n_layer: usize,
    pub n_head: usize,
    pub n_head_kv: usize,
    pub head_dim: usize,
    pub n_ff: usize,
    pub n_vocab: usize,
    pub n_ctx_train: usize,
    pub rms_eps: f32,
    pub rope_style: RopeStyle,
    pub rope_base: f32,
    /// Leading dimensions of each head that RoPE rotates (the rest pass through).
    pub rope_dims: usize,
    /// Whether the output head reuses the token embedding (no `output.weight`).
    pub tied_output: bool,
    /// What the embedded tokens are multiplied by (Gemma: sqrt(n_embd)).
    pub embedding_scale: Option<f32>,
    pub ffn_activation: FfnActivation,
    /// Local layers, for the families that have them.
    pub sliding_window: Option<SlidingWindow>,
}

impl ModelConfig {
    pub fn from_gguf(file: &GgufFile<'_>) -> Result<ModelConfig> {
        let arch_name: &str = file.require("general.architecture")?;
        let (architecture, rope_style) = match arch_name {
            "llama" => (Architecture::Llama, RopeStyle::Normal),
            "gemma3" => (Architecture::Gemma3, RopeStyle::Neox),
            "qwen2" => (Architecture::Qwen2, RopeStyle::Neox),
            "qwen3" => (Architecture::Qwen3, RopeStyle::Neox),
            "phi3" => (Architecture::Phi3, RopeStyle::Neox),
            other => {
                return Err(Error::Unsupported(format!(
                    "architecture '{other}' (this build runs: llama, gemma3, qwen2, qwen3, phi3)"
                )));
            }
        };
        let key = |name: &str| format!("{arch_name}.{name}");
        let n_embd: usize = file.require(&key("embedding_length"))?;
        let n_head: usize = file.require(&key("attention.head_count"))?;
        let n_head_kv: usize = file.get(&key("attention.head_count_kv"))?.unwrap_or(n_head);
        let head_dim = match file.get::<usize>(&key("attention.key_length"))? {
            Some(d) => d,
            None if n_head > 0 => n_embd / n_head,
            None => 0,
        };
        let n_vocab = vocabulary_size(file, &key("vocab_size"))?;
        let context_key = key("context_length");
        let n_ctx_train = file.get(&context_key)?.unwrap_or(2048);
        if n_ctx_train == 0 {
            return Err(Error::InvalidModel(format!("{context_key} is 0")));
        }
        let config = ModelConfig {
            architecture,
            n_embd,
            n_layer: file.require(&key("block_count"))?,
            n_head,
            n_head_kv,
            head_dim,
            n_ff: file.require(&key("feed_forward_length"))?,
            n_vocab,
            n_ctx_train,
            rms_eps: file.require(&key("attention.layer_norm_rms_epsilon"))?,
            rope_style,
            rope_base: file.get(&key("rope.freq_base"))?.unwrap_or(10_000.0),
            rope_dims: file.get(&key("rope.dimension_count"))?.unwrap_or(head_dim),
            tied_output: file.tensor_info("output.weight").is_none(),
            embedding_scale: None,
            ffn_activation: FfnActivation::Silu,
            sliding_window: None,
        };
        let window_key = key("attention.sliding_window");
        let config = match architecture {
            // llama.attention.sliding_window (Mistral's config declares one) is not read:
            // llama.cpp's `llama` model never reads it (src/models/llama.cpp,
            // load_arch_hparams), so a llama file that declares a window runs there with
            // full attention on every layer, and these files are made for llama.cpp.
            Architecture::Llama | Architecture::Qwen2 | Architecture::Qwen3 => config,
            Architecture::Phi3 => {
                // LongRoPE's per-dimension frequency factors (the 128k-context models).
                if let Some(factors) = ["rope_factors_long.weight", "rope_factors_short.weight"]
                    .into_iter()
                    .find(|name| file.tensor_info(name).is_some())
                {
                    return Err(Error::Unsupported(format!(
                        "tensor '{factors}': LongRoPE frequency factors"
                    )));
                }
                // phi3.attention.sliding_window is read, so a malformed one is refused as
                // llama.cpp refuses it, but not applied: llama.cpp runs every layer with
                // full attention (the converted windows are unreliable, llama.cpp #13676),
                // and these files are made for llama.cpp.
                file.get::<usize>(&window_key)?;
                config
            }
            Architecture::Gemma3 => {
                let softcap_key = key("final_logit_softcapping");
                if file.get::<f32>(&softcap_key)?.is_some() {
                    return Err(Error::Unsupported(format!(
                        "{softcap_key}: final logit soft-capping"
                    )));
                }
                ModelConfig {
                    embedding_scale: Some((config.n_embd as f32).sqrt()),
                    ffn_activation: FfnActivation::Gelu,
                    sliding_window: file.get(&window_key)?.map(|window| SlidingWindow {
                        window,
                        global_every: GEMMA3_SWA_PERIOD,
                        rope_base: GEMMA3_LOCAL_ROPE_BASE,
                    }),
                    ..config
                }
            }
        };
        config.validate()?;
        Ok(config)
    }

    /// Rejects hyperparameters no forward pass can run with.
    fn validate(&self) -> Result<()> {
        let bad = |what: String| Err(Error::InvalidModel(what));
        let positive = [
            ("embedding_length", self.n_embd),
            ("block_count", self.n_layer),
            ("attention.head_count", self.n_head),
            ("attention.head_count_kv", self.n_head_kv),
            ("head dimension", self.head_dim),
            ("feed_forward_length", self.n_ff),
            ("vocabulary size", self.n_vocab),
        ];
        if let Some((name, _)) = positive.iter().find(|(_, v)| *v == 0) {
            return bad(format!("{name} is 0"));
        }
        // Caps far above any real model keep every buffer size computed from these
        // numbers small enough to multiply without overflow.
        if let Some((name, v)) = positive.iter().find(|(_, v)| *v > 1 << 24) {
            return bad(format!("{name} is {v}, above 2^24"));
        }
        if !self.n_head.is_multiple_of(self.n_head_kv) {
            return bad(format!(
                "{} query heads cannot share {} KV heads evenly",
                self.n_head, self.n_head_kv
            ));
        }
        if self.rope_dims > self.head_dim || !self.rope_dims.is_multiple_of(2) {
            return bad(format!(
                "rope.dimension_count {} must be even and at most the head dimension {}",
                self.rope_dims, self.head_dim
            ));
        }
        if !(self.rms_eps.is_finite() && self.rms_eps > 0.0) {
            return bad(format!(
                "rms epsilon {} is not a positive number",
                self.rms_eps
            ));
        }
        if self.sliding_window.is_some_and(|w| w.window == 0) {
            return bad("attention.sliding_window is 0".into());
        }
        if !(self.rope_base.is_finite() && self.rope_base > 0.0) {
            return bad(format!(
                "rope.freq_base {} is not a positive number",
                self.rope_base
            ));
        }
        Ok(())
    }

    /// The sizes a backend's buffers follow.
    pub fn shape(&self) -> Shape {
        Shape {
            n_layer: self.n_layer,
            n_embd: self.n_embd,
            n_head: self.n_head,
            n_head_kv: self.n_head_kv,
            head_dim: self.head_dim,
            n_ff: self.n_ff,
            n_vocab: self.n_vocab,
        }
    }

    pub fn rope(&self) -> Rope {
        Rope {
            style: self.rope_style,
            base: self.rope_base,
            dims: self.rope_dims,
        }
    }

    /// The sliding window of `layer`, when it is a local layer.
    pub fn layer_window(&self, layer: usize) -> Option<&SlidingWindow> {
        self.sliding_window
            .as_ref()
            .filter(|w| is_window_layer(layer, w.global_every))
    }

    /// Layer `layer`'s RoPE: a local layer's has its own base.
    pub fn layer_rope(&self, layer: usize) -> Rope {
        let base = self
            .layer_window(layer)
            .map_or(self.rope_base, |w| w.rope_base);
        Rope {
            base,
            ..self.rope()
        }
    }

    /// Width of the query projection's output.
    pub fn q_dim(&self) -> usize {
        self.n_head * self.head_dim
    }

    /// Width of the key and value projections' outputs.
    pub fn kv_dim(&self) -> usize {
        self.n_head_kv * self.head_dim
    }
}

/// The number of tokens the model embeds and predicts: the tokenizer's token count, as in
/// llama.cpp, so that the embedding and output matrices are checked against the
/// vocabulary a host sees (`rf_model_info`) and sizes its logit reads by. A file without
/// a token list falls back to `vocab_size_key`, then to the embedding's rows.
fn vocabulary_size(file: &GgufFile<'_>, vocab_size_key: &str) -> Result<usize> {
    // The tokenizer's key (its constant is private to the tokenizer module).
    if let Some(tokens) = file.get::<&ArrayView<'_>>("tokenizer.ggml.tokens")? {
        return Ok(tokens.len());
    }
    if let Some(n) = file.get::<usize>(vocab_size_key)? {
        return Ok(n);
    }
    let token_embd = file
        .tensor_info("token_embd.weight")
        .ok_or_else(|| Error::MissingTensor {
            name: "token_embd.weight".into(),
        })?;
    let rows = token_embd.shape().get(1).copied().unwrap_or(1);
    Ok(usize::try_from(rows).unwrap_or(usize::MAX))
}
