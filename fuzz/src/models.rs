//! Tiny llama models built in memory with the library's writer (`gguf::synthetic`): a few
//! kilobytes each, so loading one reaches every check of the loader (hyperparameters,
//! tensor names, shapes and types, the tokenizer) and a decode step takes microseconds.

use rocmforge::Result;
use rocmforge::gguf::synthetic::{LlamaWeightTypes, SyntheticFamily, SyntheticLlama};
use rocmforge::gguf::{GgufWriter, OwnedValue};
use rocmforge::tensor::GgmlType;

use crate::vocabularies::Vocabulary;

/// The sizes of a tiny llama.
#[derive(Clone, Copy, Debug)]
pub struct TinyShape {
    pub n_embd: u64,
    pub n_ff: u64,
    pub n_head: u64,
    pub n_head_kv: u64,
    pub head_dim: u64,
    pub n_layer: u64,
}

/// Two layers, grouped-query attention (2 query heads per K/V head), rows of one 32-value
/// block: the smallest shape every 32-value block type fits.
pub const SMALL: TinyShape = TinyShape {
    n_embd: 32,
    n_ff: 64,
    n_head: 4,
    n_head_kv: 2,
    head_dim: 8,
    n_layer: 2,
};

/// A tiny llama with `vocab`'s tokenizer, weights of `types` drawn from `seed`, and
/// `template` as its chat template when given.
pub fn tiny_llama(
    vocab: &Vocabulary,
    shape: TinyShape,
    types: LlamaWeightTypes,
    seed: u64,
    template: Option<&str>,
) -> Result<Vec<u8>> {
    tiny_model(vocab, shape, types, seed, template, SyntheticFamily::Llama)
}

/// [`tiny_llama`] of another family's architecture (its extra tensors and metadata).
pub fn tiny_model(
    vocab: &Vocabulary,
    shape: TinyShape,
    types: LlamaWeightTypes,
    seed: u64,
    template: Option<&str>,
    family: SyntheticFamily,
) -> Result<Vec<u8>> {
    let mut writer = vocabulary_file(vocab)?;
    if let Some(template) = template {
        writer.add_metadata(
            "tokenizer.chat_template",
            OwnedValue::String(template.into()),
        )?;
    }
    SyntheticLlama {
        n_vocab: u64::from(vocab.n_tokens),
        n_embd: shape.n_embd,
        n_layer: shape.n_layer,
        n_head: shape.n_head,
        n_head_kv: shape.n_head_kv,
        head_dim: shape.head_dim,
        n_ff: shape.n_ff,
        rope_dims: shape.head_dim,
        rope_base: 10_000.0,
        rms_eps: 1e-5,
        context_length: 256,
        types,
        seed,
        family,
    }
    .add_to(&mut writer)?;
    Ok(writer.to_bytes())
}

/// A writer holding `vocab`'s tokenizer metadata and nothing else.
pub fn vocabulary_file(vocab: &Vocabulary) -> Result<GgufWriter> {
    let mut writer = GgufWriter::new();
    for (key, value) in &vocab.metadata {
        writer.add_metadata(key.as_str(), value.clone())?;
    }
    Ok(writer)
}

/// The weight types of the decode target's model: quantized matrices of two kinds around
/// a float embedding, as real files mix them.
pub fn mixed_types() -> LlamaWeightTypes {
    LlamaWeightTypes {
        token_embd: GgmlType::F16,
        attn_v: GgmlType::Q4_1,
        ffn_down: GgmlType::Q8_0,
        output: Some(GgmlType::Q8_0),
        ..LlamaWeightTypes::uniform(GgmlType::Q4_0, true)
    }
}

/// One layer with grouped-query attention and rows of one 32-value block: the seeds'
/// shape, a few kilobytes in a 4-bit type.
pub const SEED: TinyShape = TinyShape {
    n_embd: 32,
    n_ff: 32,
    n_head: 2,
    n_head_kv: 1,
    head_dim: 16,
    n_layer: 1,
};
