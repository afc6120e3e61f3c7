//! Synthetic llama-architecture models: seeded random weights of any shape and of every
//! GGML type with a dequantizer, written with [`GgufWriter`]. The tiny-model tests build
//! their models with it in memory, and `rocmforge-synth` writes benchmark models of real
//! sizes. The values carry no meaning; what matters is that they are reproducible and that
//! their spread keeps every activation of a deep stack near unit size, so a forward pass
//! neither saturates nor vanishes and its errors show.

use half::{bf16, f16};

use super::value::OwnedValue;
use super::writer::GgufWriter;
use crate::error::{Error, Result};
use crate::tensor::{GgmlType, dequantize_to_vec};

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

/// The weight type of every matrix of a llama model.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LlamaWeightTypes {
    pub token_embd: GgmlType,
    pub attn_q: GgmlType,
    pub attn_k: GgmlType,
    pub attn_v: GgmlType,
    pub attn_output: GgmlType,
    pub ffn_gate: GgmlType,
    pub ffn_up: GgmlType,
    pub ffn_down: GgmlType,
    /// `None`: no `output.weight`, the output head reuses the token embedding (tied).
    pub output: Option<GgmlType>,
}

impl LlamaWeightTypes {
    /// Every matrix of type `dtype`, with an output matrix of its own unless `tied`.
    pub fn uniform(dtype: GgmlType, tied: bool) -> LlamaWeightTypes {
        LlamaWeightTypes {
            token_embd: dtype,
            attn_q: dtype,
            attn_k: dtype,
            attn_v: dtype,
            attn_output: dtype,
            ffn_gate: dtype,
            ffn_up: dtype,
            ffn_down: dtype,
            output: (!tied).then_some(dtype),
        }
    }

    /// Every type used, the output's included.
    pub fn all(&self) -> Vec<GgmlType> {
        let mut types = vec![
            self.token_embd,
            self.attn_q,
            self.attn_k,
            self.attn_v,
            self.attn_output,
            self.ffn_gate,
            self.ffn_up,
            self.ffn_down,
        ];
        types.extend(self.output);
        types
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
}

impl SyntheticLlama {
    /// Adds the llama hyperparameters and every weight tensor to `w`. Each matrix holds
    /// values of root-mean-square `1 / sqrt(row length)`, so it maps unit-sized inputs to
    /// unit-sized outputs (the embedding's rows have root-mean-square 1); norm weights are
    /// F32 in [0.75, 1.25], so a pass that skips them shows.
    pub fn add_to(&self, w: &mut GgufWriter) -> Result<()> {
        self.add_hyperparameters(w)?;
        let rng = &mut SplitMix64(self.seed);
        let t = &self.types;
        let (embd, vocab, ff) = (self.n_embd, self.n_vocab, self.n_ff);
        let (q_dim, kv_dim) = (
            values(self.n_head, self.head_dim)?,
            values(self.n_head_kv, self.head_dim)?,
        );
        let embedding = random_weights(t.token_embd, values(vocab, embd)?, 1.0, rng)?;
        w.add_tensor("token_embd.weight", t.token_embd, &[embd, vocab], embedding)?;
        for i in 0..self.n_layer {
            let name = |tensor: &str| format!("blk.{i}.{tensor}.weight");
            self.add_norm(w, name("attn_norm"), rng)?;
            add_matrix(w, name("attn_q"), t.attn_q, [q_dim, embd], rng)?;
            add_matrix(w, name("attn_k"), t.attn_k, [kv_dim, embd], rng)?;
            add_matrix(w, name("attn_v"), t.attn_v, [kv_dim, embd], rng)?;
            add_matrix(w, name("attn_output"), t.attn_output, [embd, q_dim], rng)?;
            self.add_norm(w, name("ffn_norm"), rng)?;
            add_matrix(w, name("ffn_gate"), t.ffn_gate, [ff, embd], rng)?;
            add_matrix(w, name("ffn_up"), t.ffn_up, [ff, embd], rng)?;
            add_matrix(w, name("ffn_down"), t.ffn_down, [embd, ff], rng)?;
        }
        self.add_norm(w, "output_norm.weight".into(), rng)?;
        if let Some(dtype) = t.output {
            add_matrix(w, "output.weight".into(), dtype, [vocab, embd], rng)?;
        }
        Ok(())
    }

    fn add_hyperparameters(&self, w: &mut GgufWriter) -> Result<()> {
        let u32_of = |name: &str, v: u64| {
            u32::try_from(v)
                .map(OwnedValue::U32)
                .map_err(|_| Error::InvalidArgument(format!("{name} {v} does not fit a UINT32")))
        };
        w.add_metadata("general.architecture", OwnedValue::String("llama".into()))?;
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
            w.add_metadata(format!("llama.{key}"), u32_of(key, value)?)?;
        }
        let floats = [
            ("llama.rope.freq_base", self.rope_base),
            ("llama.attention.layer_norm_rms_epsilon", self.rms_eps),
        ];
        for (key, value) in floats {
            w.add_metadata(key, OwnedValue::F32(value))?;
        }
        w.add_metadata("llama.context_length", OwnedValue::U32(self.context_length))
    }

    fn add_norm(&self, w: &mut GgufWriter, name: String, rng: &mut SplitMix64) -> Result<()> {
        let data = (0..self.n_embd)
            .flat_map(|_| (1.0 + 0.25 * rng.symmetric()).to_le_bytes())
            .collect();
        w.add_tensor(name, GgmlType::F32, &[self.n_embd], data)
    }
}

/// A matrix of `rows` rows of `cols` values (GGUF shape `[cols, rows]`) whose values have
/// root-mean-square `1 / sqrt(cols)`: unit-sized inputs give unit-sized outputs.
fn add_matrix(
    w: &mut GgufWriter,
    name: String,
    dtype: GgmlType,
    [rows, cols]: [u64; 2],
    rng: &mut SplitMix64,
) -> Result<()> {
    let data = random_weights(dtype, values(rows, cols)?, 1.0 / (cols as f32).sqrt(), rng)?;
    w.add_tensor(name, dtype, &[cols, rows], data)
}

/// The number of values of a `rows` x `cols` matrix, checked (the sizes may come from a
/// command line).
fn values(rows: u64, cols: u64) -> Result<u64> {
    rows.checked_mul(cols)
        .ok_or_else(|| Error::InvalidArgument(format!("a {rows} x {cols} matrix overflows")))
}

/// `n_values` seeded random values of `dtype` (a whole number of its blocks) whose
/// root-mean-square, as the reference dequantizer reads them, is about `rms`.
///
/// Float types hold uniform values. Block types hold random quants and random scale
/// fields of either sign; every value is linear in a block's scale fields, so the tensor
/// is dequantized once and its scales multiplied to give it the wanted spread. Integer
/// types have no scale to make sane and are refused.
pub fn random_weights(
    dtype: GgmlType,
    n_values: u64,
    rms: f32,
    rng: &mut SplitMix64,
) -> Result<Vec<u8>> {
    let n = usize::try_from(n_values)
        .ok()
        .filter(|_| dtype.bytes_for(n_values).is_some())
        .ok_or_else(|| {
            Error::InvalidArgument(format!(
                "{n_values} values are not a whole number of {dtype} blocks"
            ))
        })?;
    // A uniform value in [-a, a) has root-mean-square a / sqrt(3).
    let amplitude = rms * 3f32.sqrt();
    let mut uniform = || amplitude * rng.symmetric();
    let bytes = match dtype {
        GgmlType::F32 => (0..n).flat_map(|_| uniform().to_le_bytes()).collect(),
        GgmlType::F64 => (0..n)
            .flat_map(|_| f64::from(uniform()).to_le_bytes())
            .collect(),
        GgmlType::F16 => (0..n)
            .flat_map(|_| f16::from_f32(uniform()).to_le_bytes())
            .collect(),
        GgmlType::Bf16 => (0..n)
            .flat_map(|_| bf16::from_f32(uniform()).to_le_bytes())
            .collect(),
        _ => random_blocks(dtype, n, rms, rng)?,
    };
    Ok(bytes)
}

/// Where a block type keeps the scales every value of the block is a multiple of.
enum ScaleFields {
    /// f16 fields at these byte offsets of each block.
    F16(&'static [usize]),
    /// An f32 at offset 0 (Q8_K).
    F32,
    /// An E8M0 power-of-two exponent byte at offset 0 (MXFP4).
    E8M0,
}

impl ScaleFields {
    fn of(dtype: GgmlType) -> Result<ScaleFields> {
        use GgmlType::*;
        Ok(match dtype {
            Q4_0 | Q5_0 | Q8_0 | Iq4Nl | Iq4Xs => ScaleFields::F16(&[0]),
            // Q4_1 and Q5_1: scale and min; Q8_1: scale and scaled sum; Q4_K and Q5_K:
            // super-block scale and min scale.
            Q4_1 | Q5_1 | Q8_1 | Q4K | Q5K => ScaleFields::F16(&[0, 2]),
            Q2K => ScaleFields::F16(&[80, 82]),
            Q3K => ScaleFields::F16(&[108]),
            Q6K => ScaleFields::F16(&[208]),
            Q8K => ScaleFields::F32,
            Mxfp4 => ScaleFields::E8M0,
            _ => {
                return Err(Error::Unsupported(format!(
                    "random weights of type {dtype}"
                )));
            }
        })
    }

    /// Gives every scale of `block` a random value of magnitude 0.5 to 1 (MXFP4: an
    /// exponent of 2^-1 to 2^1).
    fn randomize(&self, block: &mut [u8], rng: &mut SplitMix64) {
        let mut unit = || {
            let magnitude = 0.75 + 0.25 * rng.symmetric();
            if rng.below(2) == 0 {
                magnitude
            } else {
                -magnitude
            }
        };
        match self {
            ScaleFields::F16(offsets) => {
                for &o in *offsets {
                    block[o..o + 2].copy_from_slice(&f16::from_f32(unit()).to_le_bytes());
                }
            }
            ScaleFields::F32 => block[..4].copy_from_slice(&unit().to_le_bytes()),
            ScaleFields::E8M0 => block[0] = 126 + rng.below(3) as u8,
        }
    }

    /// Multiplies every scale of `block` by `gain` (MXFP4: by the nearest power of two).
    fn scale(&self, block: &mut [u8], gain: f32) {
        match self {
            ScaleFields::F16(offsets) => {
                for &o in *offsets {
                    let v = f16::from_le_bytes([block[o], block[o + 1]]).to_f32();
                    block[o..o + 2].copy_from_slice(&f16::from_f32(v * gain).to_le_bytes());
                }
            }
            ScaleFields::F32 => {
                let v = f32::from_le_bytes([block[0], block[1], block[2], block[3]]);
                block[..4].copy_from_slice(&(v * gain).to_le_bytes());
            }
            ScaleFields::E8M0 => {
                let shift = gain.log2().round() as i32;
                block[0] = (i32::from(block[0]) + shift).clamp(1, 254) as u8;
            }
        }
    }
}

fn random_blocks(dtype: GgmlType, n: usize, rms: f32, rng: &mut SplitMix64) -> Result<Vec<u8>> {
    let fields = ScaleFields::of(dtype)?;
    let n_bytes = dtype.bytes_for(n as u64).unwrap_or(0) as usize;
    let mut data: Vec<u8> = (0..n_bytes).map(|_| rng.next_u64() as u8).collect();
    let block_bytes = dtype.block_bytes() as usize;
    for block in data.chunks_exact_mut(block_bytes) {
        fields.randomize(block, rng);
    }
    let values = dequantize_to_vec(dtype, &data, n)?;
    let sum_sq: f64 = values.iter().map(|&v| f64::from(v) * f64::from(v)).sum();
    let actual = (sum_sq / n.max(1) as f64).sqrt() as f32;
    if actual > 0.0 {
        for block in data.chunks_exact_mut(block_bytes) {
            fields.scale(block, rms / actual);
        }
    }
    Ok(data)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn measured_rms(dtype: GgmlType, data: &[u8], n: usize) -> f64 {
        let values = dequantize_to_vec(dtype, data, n).unwrap();
        assert!(values.iter().all(|v| v.is_finite()), "{dtype}");
        (values.iter().map(|&v| f64::from(v).powi(2)).sum::<f64>() / n as f64).sqrt()
    }

    #[test]
    fn every_block_type_gets_the_spread_asked_for() {
        use GgmlType::*;
        let types = [
            F32, F64, F16, Bf16, Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, Q8_1, Q2K, Q3K, Q4K, Q5K, Q6K, Q8K,
            Iq4Nl, Iq4Xs,
        ];
        for dtype in types {
            let n = 256 * 64;
            let data = random_weights(dtype, n as u64, 0.05, &mut SplitMix64(3)).unwrap();
            let rms = measured_rms(dtype, &data, n);
            assert!((rms / 0.05 - 1.0).abs() < 0.01, "{dtype}: rms {rms}");
        }
        // MXFP4 scales by powers of two only.
        let data = random_weights(Mxfp4, 1024, 0.05, &mut SplitMix64(3)).unwrap();
        let rms = measured_rms(Mxfp4, &data, 1024);
        assert!((0.05 / 1.5..=0.05 * 1.5).contains(&rms), "MXFP4: rms {rms}");
    }

    #[test]
    fn partial_blocks_and_integer_types_are_refused() {
        let rng = &mut SplitMix64(1);
        assert!(random_weights(GgmlType::Q4_0, 33, 1.0, rng).is_err());
        assert!(random_weights(GgmlType::I8, 32, 1.0, rng).is_err());
    }
}
