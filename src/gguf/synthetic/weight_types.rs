//! Which GGML type each matrix of a llama model has: one type per role, or the mix
//! llama.cpp's `llama-quantize` writes for a file type (`llama_tensor_get_type` in its
//! `src/llama-quant.cpp`), so a synthetic model is laid out byte for byte as the quantizer
//! lays out a real one of the same shape and both engines can be timed on the same file.

use crate::tensor::GgmlType;

/// The weight type of every matrix of a llama model.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LlamaWeightTypes {
    pub token_embd: GgmlType,
    pub attn_q: GgmlType,
    pub attn_k: GgmlType,
    /// On every layer, or on the layers [`use_more_bits`] leaves out when `more_bits` is set.
    pub attn_v: GgmlType,
    pub attn_output: GgmlType,
    pub ffn_gate: GgmlType,
    pub ffn_up: GgmlType,
    /// Like `attn_v`.
    pub ffn_down: GgmlType,
    /// `None`: no `output.weight`, the output head reuses the token embedding (tied).
    pub output: Option<GgmlType>,
    /// The types of `attn_v` and `ffn_down` on the layers [`use_more_bits`] picks, as
    /// llama.cpp's `_M` mixes give them; `None`: every layer alike.
    pub more_bits: Option<MoreBits>,
}

/// The types of the two matrices that llama.cpp's `_M` mixes widen on some layers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MoreBits {
    pub attn_v: GgmlType,
    pub ffn_down: GgmlType,
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
            more_bits: None,
        }
    }

    /// Every type used, the output's and the widened layers' included.
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
        types.extend(self.more_bits.iter().flat_map(|m| [m.attn_v, m.ffn_down]));
        types
    }

    /// The type of `attn_v` on layer `layer` of `n_layer`.
    pub fn attn_v_at(&self, layer: u64, n_layer: u64) -> GgmlType {
        match self.more_bits {
            Some(wide) if use_more_bits(layer, n_layer) => wide.attn_v,
            _ => self.attn_v,
        }
    }

    /// The type of `ffn_down` on layer `layer` of `n_layer`.
    pub fn ffn_down_at(&self, layer: u64, n_layer: u64) -> GgmlType {
        match self.more_bits {
            Some(wide) if use_more_bits(layer, n_layer) => wide.ffn_down,
            _ => self.ffn_down,
        }
    }
}

/// llama.cpp's `use_more_bits`: the first and last eighth of the layers and every third
/// one between them.
pub fn use_more_bits(layer: u64, n_layer: u64) -> bool {
    layer < n_layer / 8 || layer >= 7 * n_layer / 8 || (layer - n_layer / 8) % 3 == 2
}

/// A `llama_ftype`: what `general.file_type` says and which mix `llama-quantize` writes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LlamaFileType {
    AllF32,
    MostlyF16,
    MostlyBf16,
    MostlyQ4_0,
    MostlyQ4_1,
    MostlyQ5_0,
    MostlyQ5_1,
    MostlyQ8_0,
    MostlyQ4KM,
}

/// Values per row of a llama's matrices: whether a 256-value block type fits each one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RowLengths {
    /// Rows of the embedding, the output head and the Q, K, V, gate and up products.
    pub n_embd: u64,
    /// Rows of the attention output product: query heads x head size.
    pub q_dim: u64,
    /// Rows of the down product.
    pub n_ff: u64,
}

impl LlamaFileType {
    pub const ALL: [LlamaFileType; 9] = [
        LlamaFileType::AllF32,
        LlamaFileType::MostlyF16,
        LlamaFileType::MostlyBf16,
        LlamaFileType::MostlyQ4_0,
        LlamaFileType::MostlyQ4_1,
        LlamaFileType::MostlyQ5_0,
        LlamaFileType::MostlyQ5_1,
        LlamaFileType::MostlyQ8_0,
        LlamaFileType::MostlyQ4KM,
    ];

    /// The `LLAMA_FTYPE_*` number written as `general.file_type`.
    pub fn id(self) -> u32 {
        match self {
            LlamaFileType::AllF32 => 0,
            LlamaFileType::MostlyF16 => 1,
            LlamaFileType::MostlyQ4_0 => 2,
            LlamaFileType::MostlyQ4_1 => 3,
            LlamaFileType::MostlyQ8_0 => 7,
            LlamaFileType::MostlyQ5_0 => 8,
            LlamaFileType::MostlyQ5_1 => 9,
            LlamaFileType::MostlyQ4KM => 15,
            LlamaFileType::MostlyBf16 => 32,
        }
    }

    /// The name `llama-quantize` takes.
    pub fn name(self) -> &'static str {
        match self {
            LlamaFileType::MostlyQ4KM => "Q4_K_M",
            other => other.default_type().name(),
        }
    }

    pub fn from_name(name: &str) -> Option<LlamaFileType> {
        LlamaFileType::ALL.into_iter().find(|t| t.name() == name)
    }

    /// The type of every matrix the mix does not single out (`llama_ftype_get_default_type`).
    pub fn default_type(self) -> GgmlType {
        match self {
            LlamaFileType::AllF32 => GgmlType::F32,
            LlamaFileType::MostlyF16 => GgmlType::F16,
            LlamaFileType::MostlyBf16 => GgmlType::Bf16,
            LlamaFileType::MostlyQ4_0 => GgmlType::Q4_0,
            LlamaFileType::MostlyQ4_1 => GgmlType::Q4_1,
            LlamaFileType::MostlyQ5_0 => GgmlType::Q5_0,
            LlamaFileType::MostlyQ5_1 => GgmlType::Q5_1,
            LlamaFileType::MostlyQ8_0 => GgmlType::Q8_0,
            LlamaFileType::MostlyQ4KM => GgmlType::Q4K,
        }
    }

    /// The types `llama-quantize` gives a llama (no experts, no importance matrix) of these
    /// row lengths: the default type, the output head (or the tied embedding) Q6_K unless
    /// the type is Q8_0 or its blocks do not fit a row, V and down Q6_K on the
    /// [`use_more_bits`] layers of Q4_K_M; then each 256-value type that does not fit its
    /// rows falls back as llama.cpp's `tensor_type_fallback` does. Float file types are
    /// not quantized: every matrix keeps the default type.
    pub fn weight_types(self, rows: RowLengths, tied: bool) -> LlamaWeightTypes {
        let default = self.default_type();
        if default.block_size() == 1 {
            return LlamaWeightTypes::uniform(default, tied);
        }
        let head = if default == GgmlType::Q8_0 || !rows.n_embd.is_multiple_of(default.block_size())
        {
            GgmlType::Q8_0
        } else {
            GgmlType::Q6K
        };
        let head = fitting(head, rows.n_embd);
        let embd = fitting(default, rows.n_embd);
        LlamaWeightTypes {
            token_embd: if tied { head } else { embd },
            attn_q: embd,
            attn_k: embd,
            attn_v: embd,
            attn_output: fitting(default, rows.q_dim),
            ffn_gate: embd,
            ffn_up: embd,
            ffn_down: fitting(default, rows.n_ff),
            output: (!tied).then_some(head),
            more_bits: (self == LlamaFileType::MostlyQ4KM).then(|| MoreBits {
                attn_v: fitting(GgmlType::Q6K, rows.n_embd),
                ffn_down: fitting(GgmlType::Q6K, rows.n_ff),
            }),
        }
    }
}

/// `dtype` when its blocks fit rows of `row_length` values, else llama.cpp's fallback for
/// the 256-value types (Q4_K to Q5_0, Q6_K to Q8_0; F16 when even that does not fit).
/// Other types are left as they are: llama.cpp refuses such a shape, and so does the writer.
fn fitting(dtype: GgmlType, row_length: u64) -> GgmlType {
    let fits = |t: GgmlType| row_length.is_multiple_of(t.block_size());
    if fits(dtype) {
        return dtype;
    }
    let fallback = match dtype {
        GgmlType::Q4K => GgmlType::Q5_0,
        GgmlType::Q6K => GgmlType::Q8_0,
        _ => return dtype,
    };
    if fits(fallback) {
        fallback
    } else {
        GgmlType::F16
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use GgmlType::*;

    const EIGHT_B: RowLengths = RowLengths {
        n_embd: 4096,
        q_dim: 4096,
        n_ff: 14336,
    };
    const SMOL: RowLengths = RowLengths {
        n_embd: 576,
        q_dim: 576,
        n_ff: 1536,
    };

    fn widened(n_layer: u64) -> Vec<u64> {
        (0..n_layer)
            .filter(|&i| use_more_bits(i, n_layer))
            .collect()
    }

    #[test]
    fn more_bits_layers_are_llama_cpps() {
        // llama.cpp: i < n/8 || i >= 7n/8 || (i - n/8) % 3 == 2, worked out by hand.
        let eight_b = [0, 1, 2, 3, 6, 9, 12, 15, 18, 21, 24, 27, 28, 29, 30, 31];
        assert_eq!(widened(32), eight_b);
        assert_eq!(widened(16), [0, 1, 4, 7, 10, 13, 14, 15]);
        let smol = [0, 1, 2, 5, 8, 11, 14, 17, 20, 23, 26, 27, 28, 29];
        assert_eq!(widened(30), smol);
    }

    #[test]
    fn q4_k_m_widens_v_down_and_the_output_head() {
        let types = LlamaFileType::MostlyQ4KM.weight_types(EIGHT_B, false);
        assert_eq!(types.token_embd, Q4K);
        assert_eq!(types.output, Some(Q6K));
        for t in [types.attn_q, types.attn_k, types.attn_output] {
            assert_eq!(t, Q4K);
        }
        assert_eq!([types.ffn_gate, types.ffn_up], [Q4K, Q4K]);
        for layer in 0..32 {
            let wide = [0, 1, 2, 3, 6, 9, 12, 15, 18, 21, 24, 27, 28, 29, 30, 31].contains(&layer);
            let expected = if wide { Q6K } else { Q4K };
            assert_eq!(types.attn_v_at(layer, 32), expected, "attn_v {layer}");
            assert_eq!(types.ffn_down_at(layer, 32), expected, "ffn_down {layer}");
        }
        // Tied, the embedding is the output head and quantized like it.
        let tied = LlamaFileType::MostlyQ4KM.weight_types(EIGHT_B, true);
        assert_eq!((tied.token_embd, tied.output), (Q6K, None));
    }

    #[test]
    fn rows_of_576_values_fall_back_from_256_value_blocks() {
        let types = LlamaFileType::MostlyQ4KM.weight_types(SMOL, false);
        // 576 is no multiple of 256: Q4_K becomes Q5_0, Q6_K becomes Q8_0; the down
        // product's rows of 1536 keep the K types.
        assert_eq!(types.token_embd, Q5_0);
        assert_eq!(types.output, Some(Q8_0));
        assert_eq!([types.attn_q, types.attn_output, types.ffn_up], [Q5_0; 3]);
        assert_eq!(
            (types.attn_v_at(3, 30), types.attn_v_at(5, 30)),
            (Q5_0, Q8_0)
        );
        assert_eq!(
            (types.ffn_down_at(3, 30), types.ffn_down_at(5, 30)),
            (Q4K, Q6K)
        );
        // Rows that fit no 32-value block either get F16.
        assert_eq!(fitting(Q4K, 48), F16);
    }

    #[test]
    fn legacy_types_get_a_q6_k_head_unless_q8_0_or_unfitting() {
        let q4_0 = LlamaFileType::MostlyQ4_0.weight_types(EIGHT_B, false);
        assert_eq!((q4_0.token_embd, q4_0.output), (Q4_0, Some(Q6K)));
        assert_eq!((q4_0.ffn_down_at(0, 32), q4_0.more_bits), (Q4_0, None));
        let q8_0 = LlamaFileType::MostlyQ8_0.weight_types(EIGHT_B, false);
        assert_eq!(q8_0, LlamaWeightTypes::uniform(Q8_0, false));
        let smol = LlamaFileType::MostlyQ4_1.weight_types(SMOL, false);
        assert_eq!((smol.token_embd, smol.output), (Q4_1, Some(Q8_0)));
        let f16 = LlamaFileType::MostlyF16.weight_types(SMOL, false);
        assert_eq!(f16, LlamaWeightTypes::uniform(F16, false));
    }

    #[test]
    fn file_type_numbers_and_names_are_llama_cpps() {
        let expected = [
            ("F32", 0),
            ("F16", 1),
            ("BF16", 32),
            ("Q4_0", 2),
            ("Q4_1", 3),
            ("Q5_0", 8),
            ("Q5_1", 9),
            ("Q8_0", 7),
            ("Q4_K_M", 15),
        ];
        for (file_type, (name, id)) in LlamaFileType::ALL.into_iter().zip(expected) {
            assert_eq!((file_type.name(), file_type.id()), (name, id));
            assert_eq!(LlamaFileType::from_name(name), Some(file_type));
        }
        assert_eq!(LlamaFileType::from_name("Q4_K"), None);
    }
}
