//! The tiny models: one per weight type the CPU runs (all but the integer types, which
//! no llama file stores weights in), plus mixed-type ones as real quantized files are. Between them they cover odd sizes (`n_embd` not a power of two,
//! `n_ff` an odd multiple of the block), query heads per K/V head of 1, 3 and 4, head
//! sizes 64 and 128, a partial RoPE, tied and untied output heads, one and two layers,
//! and RoPE bases and RMS epsilons other than the defaults (a pass that ignores the
//! file's values fails).

use rocmforge::gguf::GgufWriter;
use rocmforge::gguf::synthetic::{LlamaWeightTypes, SyntheticFamily, SyntheticLlama};
use rocmforge::tensor::GgmlType::{self, *};

use super::vocabulary;

/// The sizes of a tiny llama.
#[derive(Clone, Copy, Debug)]
struct Shape {
    n_embd: u64,
    n_ff: u64,
    n_head: u64,
    n_head_kv: u64,
    head_dim: u64,
    n_layer: u64,
}

/// Sizes any block type fits: rows (`n_embd`, `n_head * head_dim`, `n_ff`) of whole
/// 32-value blocks, `n_embd` and `n_ff` odd multiples of 32.
const BLOCK32: [Shape; 3] = [
    shape(160, 224, 3, 1, 64, 2),
    shape(96, 288, 4, 1, 64, 2),
    shape(224, 160, 2, 2, 128, 1),
];

/// Sizes for the 256-value block types.
const BLOCK256: [Shape; 3] = [
    shape(768, 768, 6, 2, 128, 1),
    shape(256, 768, 4, 1, 64, 2),
    shape(256, 1280, 2, 2, 128, 2),
];

const fn shape(
    n_embd: u64,
    n_ff: u64,
    n_head: u64,
    n_head_kv: u64,
    head_dim: u64,
    n_layer: u64,
) -> Shape {
    Shape {
        n_embd,
        n_ff,
        n_head,
        n_head_kv,
        head_dim,
        n_layer,
    }
}

/// A tiny model: its name in failure messages and its hyperparameters and weight types.
#[derive(Clone, Debug)]
pub struct Variant {
    pub name: String,
    pub spec: SyntheticLlama,
}

impl Variant {
    fn new(name: &str, shape: Shape, types: LlamaWeightTypes, seed: u64) -> Variant {
        // Spread the RoPE bases, epsilons and partial RoPE over the variants by seed.
        let rope_base = [10_000.0, 500_000.0, 1_000.0][seed as usize % 3];
        let rms_eps = [1e-5, 0.1, 1e-6, 0.03][seed as usize % 4];
        let rope_dims = if seed % 5 == 2 {
            shape.head_dim / 2
        } else {
            shape.head_dim
        };
        let tied = if types.output.is_none() {
            "tied"
        } else {
            "untied"
        };
        let s = shape;
        Variant {
            name: format!(
                "{name} (n_embd {}, n_ff {}, {}/{} heads of {}, rope {rope_dims} base {rope_base}, \
                 eps {rms_eps}, {} layers, {tied})",
                s.n_embd, s.n_ff, s.n_head, s.n_head_kv, s.head_dim, s.n_layer
            ),
            spec: SyntheticLlama {
                n_vocab: vocabulary::N_TOKENS,
                n_embd: s.n_embd,
                n_layer: s.n_layer,
                n_head: s.n_head,
                n_head_kv: s.n_head_kv,
                head_dim: s.head_dim,
                n_ff: s.n_ff,
                rope_dims,
                rope_base,
                rms_eps,
                context_length: 4096,
                types,
                seed,
                family: SyntheticFamily::Llama,
            },
        }
    }

    /// The model as GGUF bytes: the vocabulary's metadata, then the llama's.
    pub fn gguf(&self) -> Vec<u8> {
        let mut writer = GgufWriter::new();
        for (key, value) in vocabulary::metadata() {
            writer.add_metadata(key, value).expect("tokenizer metadata");
        }
        self.spec
            .add_to(&mut writer)
            .expect("a well-formed tiny llama");
        writer.to_bytes()
    }
}

/// One model per weight type with every matrix of that type, shapes and output heads
/// taken in turn; then the mixed ones.
pub fn variants() -> Vec<Variant> {
    let float_shapes = [
        shape(100, 151, 4, 1, 64, 2),
        shape(72, 200, 3, 1, 128, 1),
        shape(96, 120, 2, 2, 64, 2),
    ];
    let per_type: [(GgmlType, Shape); 19] = [
        (F32, float_shapes[0]),
        (F16, float_shapes[1]),
        (Bf16, float_shapes[2]),
        (Q4_0, BLOCK32[0]),
        (Q4_1, BLOCK32[1]),
        (Q5_0, BLOCK32[2]),
        (Q5_1, BLOCK32[0]),
        (Q8_0, BLOCK32[1]),
        (Iq4Nl, BLOCK32[2]),
        (Mxfp4, BLOCK32[0]),
        (Q2K, BLOCK256[1]),
        (Q3K, BLOCK256[2]),
        (Q4K, BLOCK256[0]),
        (Q5K, BLOCK256[1]),
        (Q6K, BLOCK256[2]),
        (Iq4Xs, BLOCK256[1]),
        // Types the CPU runs that llama.cpp does not write as weights.
        (F64, float_shapes[1]),
        (Q8_1, BLOCK32[2]),
        (Q8K, BLOCK256[1]),
    ];
    let mut variants: Vec<Variant> = per_type
        .iter()
        .enumerate()
        .map(|(i, &(dtype, shape))| {
            let types = LlamaWeightTypes::uniform(dtype, i % 2 == 0);
            Variant::new(dtype.name(), shape, types, i as u64 + 1)
        })
        .collect();
    // As llama.cpp's Q4_K_M: Q6_K for V, the FFN's down projection and the output head.
    let q4_k_m = LlamaWeightTypes {
        attn_v: Q6K,
        ffn_down: Q6K,
        output: Some(Q6K),
        ..LlamaWeightTypes::uniform(Q4K, true)
    };
    variants.push(Variant::new("Q4_K_M mix", BLOCK256[2], q4_k_m, 22));
    // Float embedding and output head around 32-value blocks of two kinds.
    let q8_0_mix = LlamaWeightTypes {
        token_embd: F16,
        attn_k: Q4_1,
        ffn_up: Iq4Nl,
        output: Some(F32),
        ..LlamaWeightTypes::uniform(Q8_0, true)
    };
    variants.push(Variant::new("Q8_0 mix", BLOCK32[0], q8_0_mix, 21));
    variants
}
