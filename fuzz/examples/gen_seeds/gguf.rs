//! GGUF seeds: tiny models (model_load and gguf_parse) and files that reach the reader's
//! corners: every value type, nested arrays, a wider alignment, version 2.

use rocmforge::Result;
use rocmforge::gguf::synthetic::LlamaWeightTypes;
use rocmforge::gguf::{GgufWriter, OwnedValue, ValueType};
use rocmforge::tensor::GgmlType;
use rocmforge_fuzz::models::{SEED, tiny_llama, vocabulary_file};
use rocmforge_fuzz::vocabularies::{ByteFallback, byte_level, sentencepiece};

use super::Seeds;

/// A Jinja chat template of no built-in family, so loading runs it.
const TEMPLATE: &str = "{% for m in messages %}{{ m.role | upper }}: {{ m.content | trim }}\n\
                        {% endfor %}{% if add_generation_prompt %}ASSISTANT:{% endif %}";

/// Tiny models: small vocabularies, one layer, 4-, 5- and 8-bit weights, tied and untied
/// output heads, with and without a chat template.
pub fn models() -> Result<Seeds> {
    let small_spm = sentencepiece(ByteFallback::None, true, true);
    let bpe = byte_level(Some("smollm"), &[]);
    let untied = LlamaWeightTypes {
        attn_q: GgmlType::Q8_0,
        output: Some(GgmlType::Q4_1),
        ..LlamaWeightTypes::uniform(GgmlType::Q4_0, true)
    };
    let mixed = LlamaWeightTypes {
        attn_v: GgmlType::Q4_1,
        ffn_down: GgmlType::Q5_0,
        ..LlamaWeightTypes::uniform(GgmlType::Q4_0, true)
    };
    Ok(vec![
        (
            "spm-q4_0-tied".into(),
            tiny_llama(
                &small_spm,
                SEED,
                LlamaWeightTypes::uniform(GgmlType::Q4_0, true),
                1,
                None,
            )?,
        ),
        (
            "spm-untied-template".into(),
            tiny_llama(&small_spm, SEED, untied, 2, Some(TEMPLATE))?,
        ),
        (
            "spm-mixed".into(),
            tiny_llama(&small_spm, SEED, mixed, 3, None)?,
        ),
        (
            "bpe-q4_0-chatml".into(),
            tiny_llama(
                &bpe,
                SEED,
                LlamaWeightTypes::uniform(GgmlType::Q4_0, true),
                4,
                Some("{{ '<|im_start|>' }}"),
            )?,
        ),
    ])
}

/// The reader's corners, beside the models.
pub fn edge_files(models: &Seeds) -> Result<Seeds> {
    let mut zoo = GgufWriter::new();
    let values = [
        ("u8", OwnedValue::U8(200)),
        ("i8", OwnedValue::I8(-100)),
        ("u16", OwnedValue::U16(60_000)),
        ("i16", OwnedValue::I16(-30_000)),
        ("u32", OwnedValue::U32(4_000_000_000)),
        ("i32", OwnedValue::I32(-2_000_000_000)),
        ("f32", OwnedValue::F32(f32::NAN)),
        ("bool", OwnedValue::Bool(true)),
        ("string", OwnedValue::String("ünïcødé ✓".into())),
        ("u64", OwnedValue::U64(u64::MAX)),
        ("i64", OwnedValue::I64(i64::MIN)),
        ("f64", OwnedValue::F64(-0.0)),
        ("empty", OwnedValue::string_array(Vec::<String>::new())),
        ("floats", OwnedValue::f32_array([1.0, -2.5, f32::INFINITY])),
        (
            "nested",
            OwnedValue::Array {
                elem_type: ValueType::Array,
                items: vec![
                    OwnedValue::i32_array([1, 2, 3]),
                    OwnedValue::string_array(["a", "bc"]),
                ],
            },
        ),
        ("general.alignment", OwnedValue::U32(64)),
    ];
    for (key, value) in values {
        zoo.add_metadata(key, value)?;
    }
    zoo.add_tensor("t.f32", GgmlType::F32, &[3, 2], vec![0x3f; 24])?;
    zoo.add_tensor("t.q4_0", GgmlType::Q4_0, &[32], vec![0x11; 18])?;
    let vocabulary = vocabulary_file(&sentencepiece(ByteFallback::None, false, true))?.to_bytes();
    // Version 2 differs from 3 only in what it promises about byte order.
    let mut version_2 = models[0].1.clone();
    version_2[4..8].copy_from_slice(&2u32.to_le_bytes());
    Ok(vec![
        ("value-zoo".into(), zoo.to_bytes()),
        ("vocabulary-only".into(), vocabulary),
        ("version-2".into(), version_2),
        ("header-only".into(), GgufWriter::new().to_bytes()),
    ])
}
