//! Synthetic llama-architecture models: seeded random weights of any shape and of every
//! GGML type with a dequantizer, written with [`GgufWriter`]. The tiny-model tests build
//! their models with it in memory, and `rocmforge-synth` writes benchmark models of real
//! sizes, laid out as llama.cpp's quantizer lays out a real model. The values carry no
//! meaning; what matters is that they are reproducible and that their spread keeps every
//! activation of a deep stack near unit size, so a forward pass neither saturates nor
//! vanishes and its errors show.

mod random;
mod weight_types;

pub use random::random_weights;
pub use weight_types::{LlamaFileType, LlamaWeightTypes, MoreBits, RowLengths, use_more_bits};

use super::value::OwnedValue;
use super::writer::GgufWriter;
use crate::error::{Error, Result};
use crate::tensor::GgmlType;

/// SplitMix64: small, seeded and good enough for weights.
#[derive(Clone, Debug)]
pub struct SplitMix64(pub u64);

impl SplitMix64 {
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in [-1, 1).
    pub fn symmetric(&mut self) -> f32 {
        (self.next_u64() >> 40) as f32 / (1u64 << 23) as f32 - 1.0
    }

    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }
}

/// The hyperparameters and weight types of a synthetic llama. The tokenizer is the
/// caller's: [`SyntheticLlama::add_to`] writes everything else.
#[derive(Clone, Debug, PartialEq)]
pub struct SyntheticLlama {
    /// Rows of the embedding and output matrices: the caller's token count.
    pub n_vocab: u64,
    pub n_embd: u64,
    pub n_layer: u64,
    pub n_head: u64,
    pub n_head_kv: u64,
    /// Written as `attention.key_length` and `value_length`, so it need not be
    /// `n_embd / n_head`.
    pub head_dim: u64,
    pub n_ff: u64,
    /// Leading dimensions of each head that RoPE rotates.
    pub rope_dims: u64,
    pub rope_base: f32,
    pub rms_eps: f32,
    pub context_length: u32,
    pub types: LlamaWeightTypes,
    pub seed: u64,
    pub family: SyntheticFamily,
}

/// The family a synthetic model declares (`general.architecture`), with what it adds to
/// a llama's tensors and metadata, as llama.cpp reads them.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum SyntheticFamily {
    #[default]
    Llama,
    /// `qwen2`: biases on the Q, K and V products (`attn_q.bias`, ...).
    Qwen2,
    /// `qwen3`: per-head Q/K norm weights (`attn_q_norm`, `attn_k_norm`).
    Qwen3,
    /// `gemma3`: Q/K norms, norms after each sublayer (`post_attention_norm`,
    /// `post_ffw_norm`) and `attention.sliding_window`. Gemma ties its output head.
    Gemma3 { sliding_window: u32 },
    /// `phi3`: Q, K and V stored as one matrix (`attn_qkv`), gate and up as one
    /// (`ffn_up`, `2 n_ff` rows: gate first).
    Phi3,
    /// Mistral: a `llama` file that also says `llama.attention.sliding_window`, the window
    /// Mistral's own config declares (4096 in 7B v0.1). llama.cpp's converter leaves the
    /// key out and llama.cpp ignores it in a `llama` file; writing it shows that this
    /// library ignores it too.
    Mistral { sliding_window: u32 },
}

impl SyntheticFamily {
    /// The `general.architecture` name, which also prefixes the hyperparameter keys.
    pub fn name(self) -> &'static str {
        match self {
            SyntheticFamily::Llama | SyntheticFamily::Mistral { .. } => "llama",
            SyntheticFamily::Qwen2 => "qwen2",
            SyntheticFamily::Qwen3 => "qwen3",
            SyntheticFamily::Gemma3 { .. } => "gemma3",
            SyntheticFamily::Phi3 => "phi3",
        }
    }

    /// Whether the family's files leave out `output.weight`: Gemma's output head is its
    /// embedding.
    pub fn ties_output(self) -> bool {
        matches!(self, SyntheticFamily::Gemma3 { .. })
    }
}

/// One tensor of a synthetic llama: its name, type and shape, and the values it holds.
#[derive(Clone, Debug, PartialEq)]
pub struct SyntheticTensor {
    pub name: String,
    pub dtype: GgmlType,
    /// In GGML order: values per row first.
    pub shape: Vec<u64>,
    pub values: SyntheticValues,
}

#[derive(Clone, Copy, Debug, PartialEq)]
pub enum SyntheticValues {
    /// An RMS norm's weights: F32 in [0.75, 1.25], so a pass that skips them shows.
    Norm,
    /// Random values of this root-mean-square.
    Random { rms: f32 },
}

impl SyntheticTensor {
    /// Values in the tensor; errors when the shape overflows.
    pub fn n_values(&self) -> Result<u64> {
        self.shape
            .iter()
            .try_fold(1u64, |n, &d| n.checked_mul(d))
            .ok_or_else(|| {
                Error::InvalidArgument(format!(
                    "tensor {} of {:?} overflows",
                    self.name, self.shape
                ))
            })
    }

    /// Bytes of its data in a file; errors when the shape overflows or does not fit
    /// whole blocks of its type.
    pub fn n_bytes(&self) -> Result<u64> {
        let n = self.n_values()?;
        self.dtype.bytes_for(n).ok_or_else(|| {
            Error::InvalidArgument(format!(
                "tensor {}: {n} values are not a whole number of {} blocks",
                self.name, self.dtype
            ))
        })
    }
}

impl SyntheticLlama {
    /// A llama of `n_vocab` tokens and shape `[n_embd, n_layer, n_head, n_head_kv, n_ff]`
    /// as `rocmforge-synth` writes one: heads of `n_embd / n_head` values wholly rotated
    /// at RoPE base 10000, norm epsilon 1e-5, every matrix F32 and its own output head
    /// until the caller sets `types` (say, from [`LlamaFileType::weight_types`]).
    pub fn of_shape(
        n_vocab: u64,
        [n_embd, n_layer, n_head, n_head_kv, n_ff]: [u64; 5],
        seed: u64,
    ) -> SyntheticLlama {
        let head_dim = n_embd / n_head.max(1);
        SyntheticLlama {
            n_vocab,
            n_embd,
            n_layer,
            n_head,
            n_head_kv,
            head_dim,
            n_ff,
            rope_dims: head_dim,
            rope_base: 10_000.0,
            rms_eps: 1e-5,
            context_length: 8192,
            types: LlamaWeightTypes::uniform(GgmlType::F32, false),
            seed,
            family: SyntheticFamily::Llama,
        }
    }

    /// Adds the llama hyperparameters and every weight tensor of [`SyntheticLlama::layout`]
    /// to `w`, each tensor's values drawn from its own seed.
    pub fn add_to(&self, w: &mut GgufWriter) -> Result<()> {
        self.add_hyperparameters(w)?;
        let rng = &mut SplitMix64(self.seed);
        for tensor in self.layout() {
            let n_values = tensor.n_values()?;
            let data = match tensor.values {
                SyntheticValues::Norm => (0..n_values)
                    .flat_map(|_| (1.0 + 0.25 * rng.symmetric()).to_le_bytes())
                    .collect(),
                SyntheticValues::Random { rms } => {
                    random_weights(tensor.dtype, n_values, rms, rng)?
                }
            };
            w.add_tensor(tensor.name, tensor.dtype, &tensor.shape, data)?;
        }
        Ok(())
    }

    /// Every tensor in file order, as llama.cpp names and shapes them. Each matrix holds
    /// values of root-mean-square `1 / sqrt(row length)`, so it maps unit-sized inputs to
    /// unit-sized outputs; the embedding's rows have root-mean-square 1.
    pub fn layout(&self) -> Vec<SyntheticTensor> {
        let t = &self.types;
        let (embd, vocab, ff) = (self.n_embd, self.n_vocab, self.n_ff);
        let (q_dim, kv_dim) = (
            self.n_head.saturating_mul(self.head_dim),
            self.n_head_kv.saturating_mul(self.head_dim),
        );
        let norm_of = |name: String, n: u64| SyntheticTensor {
            name,
            dtype: GgmlType::F32,
            shape: vec![n],
            values: SyntheticValues::Norm,
        };
        let norm = |name: String| norm_of(name, embd);
        // `rows` rows of `cols` values.
        let matrix = |name: String, dtype, [rows, cols]: [u64; 2]| SyntheticTensor {
            name,
            dtype,
            shape: vec![cols, rows],
            values: SyntheticValues::Random {
                rms: 1.0 / (cols as f32).sqrt(),
            },
        };
        let mut tensors = vec![SyntheticTensor {
            values: SyntheticValues::Random { rms: 1.0 },
            ..matrix("token_embd.weight".into(), t.token_embd, [vocab, embd])
        }];
        for i in 0..self.n_layer {
            let name = |tensor: &str| format!("blk.{i}.{tensor}.weight");
            let attn_v = t.attn_v_at(i, self.n_layer);
            let ffn_down = t.ffn_down_at(i, self.n_layer);
            tensors.push(norm(name("attn_norm")));
            if self.family == SyntheticFamily::Phi3 {
                let qkv_rows = q_dim.saturating_add(kv_dim.saturating_mul(2));
                tensors.push(matrix(name("attn_qkv"), t.attn_q, [qkv_rows, embd]));
            } else {
                tensors.extend([
                    matrix(name("attn_q"), t.attn_q, [q_dim, embd]),
                    matrix(name("attn_k"), t.attn_k, [kv_dim, embd]),
                    matrix(name("attn_v"), attn_v, [kv_dim, embd]),
                ]);
            }
            tensors.extend([
                matrix(name("attn_output"), t.attn_output, [embd, q_dim]),
                norm(name("ffn_norm")),
            ]);
            if self.family == SyntheticFamily::Phi3 {
                let gate_up_rows = ff.saturating_mul(2);
                tensors.push(matrix(name("ffn_up"), t.ffn_up, [gate_up_rows, embd]));
            } else {
                tensors.extend([
                    matrix(name("ffn_gate"), t.ffn_gate, [ff, embd]),
                    matrix(name("ffn_up"), t.ffn_up, [ff, embd]),
                ]);
            }
            tensors.push(matrix(name("ffn_down"), ffn_down, [embd, ff]));
            if self.family == SyntheticFamily::Qwen2 {
                // Biases of root-mean-square 0.5: they move the products visibly.
                let bias = |tensor: &str, n: u64| SyntheticTensor {
                    name: format!("blk.{i}.{tensor}.bias"),
                    dtype: GgmlType::F32,
                    shape: vec![n],
                    values: SyntheticValues::Random { rms: 0.5 },
                };
                tensors.extend([
                    bias("attn_q", q_dim),
                    bias("attn_k", kv_dim),
                    bias("attn_v", kv_dim),
                ]);
            }
            if matches!(
                self.family,
                SyntheticFamily::Qwen3 | SyntheticFamily::Gemma3 { .. }
            ) {
                tensors.push(norm_of(name("attn_q_norm"), self.head_dim));
                tensors.push(norm_of(name("attn_k_norm"), self.head_dim));
            }
            if let SyntheticFamily::Gemma3 { .. } = self.family {
                tensors.push(norm(name("post_attention_norm")));
                tensors.push(norm(name("post_ffw_norm")));
            }
        }
        tensors.push(norm("output_norm.weight".into()));
        if let Some(dtype) = t.output {
            tensors.push(matrix("output.weight".into(), dtype, [vocab, embd]));
        }
        tensors
    }

    /// The row lengths that decide which of llama.cpp's block types fit this shape.
    pub fn row_lengths(&self) -> RowLengths {
        RowLengths {
            n_embd: self.n_embd,
            q_dim: self.n_head.saturating_mul(self.head_dim),
            n_ff: self.n_ff,
        }
    }

    fn add_hyperparameters(&self, w: &mut GgufWriter) -> Result<()> {
        let u32_of = |name: &str, v: u64| {
            u32::try_from(v)
                .map(OwnedValue::U32)
                .map_err(|_| Error::InvalidArgument(format!("{name} {v} does not fit a UINT32")))
        };
        let arch = self.family.name();
        w.add_metadata("general.architecture", OwnedValue::String(arch.into()))?;
        w.add_metadata(
            "general.name",
            OwnedValue::String("rocmforge synthetic".into()),
        )?;
        for (key, value) in [
            ("embedding_length", self.n_embd),
            ("block_count", self.n_layer),
            ("attention.head_count", self.n_head),
            ("attention.head_count_kv", self.n_head_kv),
            ("attention.key_length", self.head_dim),
            ("attention.value_length", self.head_dim),
            ("feed_forward_length", self.n_ff),
            ("rope.dimension_count", self.rope_dims),
        ] {
            w.add_metadata(format!("{arch}.{key}"), u32_of(key, value)?)?;
        }
        let floats = [
            ("rope.freq_base", self.rope_base),
            ("attention.layer_norm_rms_epsilon", self.rms_eps),
        ];
        for (key, value) in floats {
            w.add_metadata(format!("{arch}.{key}"), OwnedValue::F32(value))?;
        }
        if let SyntheticFamily::Gemma3 { sliding_window }
        | SyntheticFamily::Mistral { sliding_window } = self.family
        {
            w.add_metadata(
                format!("{arch}.attention.sliding_window"),
                OwnedValue::U32(sliding_window),
            )?;
        }
        w.add_metadata(
            format!("{arch}.context_length"),
            OwnedValue::U32(self.context_length),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gguf::GgufFile;

    const SMOLLM2_VOCAB: u64 = 49_152;

    fn llama(shape: [u64; 5], file_type: LlamaFileType) -> SyntheticLlama {
        let mut model = SyntheticLlama::of_shape(SMOLLM2_VOCAB, shape, 1);
        model.types = file_type.weight_types(model.row_lengths(), false);
        model
    }

    #[test]
    fn peer_models_have_the_sizes_llama_bench_reported() {
        use LlamaFileType::*;
        const MIB: f64 = 1024.0 * 1024.0;
        const GIB: f64 = 1024.0 * MIB;
        let (eight_b, one_b, smol) = (
            [4096, 32, 32, 8, 14336],
            [2048, 16, 32, 8, 8192],
            [576, 30, 9, 3, 1536],
        );
        // ../shared/PEERS.md: llama-quantize's files of these shapes, the size column of
        // llama-bench, to the digits it printed.
        let peers = [
            (eight_b, MostlyQ4_0, 3.92, GIB, 0.005),
            (eight_b, MostlyQ4KM, 4.16, GIB, 0.005),
            (eight_b, MostlyQ8_0, 7.31, GIB, 0.005),
            (one_b, MostlyF16, 2.19, GIB, 0.005),
            (one_b, MostlyQ4_0, 655.0, MIB, 0.5),
            (one_b, MostlyQ4KM, 690.0, MIB, 0.5),
            (one_b, MostlyQ8_0, 1.16, GIB, 0.005),
            (smol, MostlyF16, 311.0, MIB, 0.5),
            (smol, MostlyQ4_0, 101.0, MIB, 0.5),
            (smol, MostlyQ4_1, 109.0, MIB, 0.5),
            (smol, MostlyQ4KM, 117.0, MIB, 0.5),
            (smol, MostlyQ8_0, 165.0, MIB, 0.5),
        ];
        for (shape, file_type, size, unit, half_digit) in peers {
            let bytes: u64 = llama(shape, file_type)
                .layout()
                .iter()
                .map(|t| t.n_bytes().unwrap())
                .sum();
            let ours = bytes as f64 / unit;
            assert!(
                (ours - size).abs() <= half_digit,
                "{shape:?} {}: {ours} against {size}",
                file_type.name()
            );
        }
    }

    #[test]
    fn the_file_holds_the_layouts_types_layer_by_layer() {
        let mut model = llama([256, 8, 4, 2, 512], LlamaFileType::MostlyQ4KM);
        model.n_vocab = 64;
        let mut w = GgufWriter::new();
        model.add_to(&mut w).unwrap();
        let bytes = w.to_bytes();
        let file = GgufFile::parse(&bytes).unwrap();
        let types: Vec<(String, GgmlType)> = file
            .tensors()
            .iter()
            .map(|t| (t.name().to_string(), t.dtype()))
            .collect();
        let expected: Vec<(String, GgmlType)> = model
            .layout()
            .into_iter()
            .map(|t| (t.name, t.dtype))
            .collect();
        assert_eq!(types, expected);
        // Of 8 layers llama.cpp widens 0, 3, 6 and 7.
        let dtype_of = |name: &str| types.iter().find(|(n, _)| n == name).map(|&(_, t)| t);
        assert_eq!(dtype_of("blk.0.attn_v.weight"), Some(GgmlType::Q6K));
        assert_eq!(dtype_of("blk.2.ffn_down.weight"), Some(GgmlType::Q4K));
        assert_eq!(dtype_of("blk.7.ffn_down.weight"), Some(GgmlType::Q6K));
        assert_eq!(dtype_of("output.weight"), Some(GgmlType::Q6K));
    }
}
