//! The KV cache in F32 and Q8_0 on the CPU: SmolLM2 stays within the CPU engine's bounds
//! against llama.cpp's logits (tests/cpu_parity_smollm2.rs: each prompt's mean top-10
//! |Δlogit| at most 0.22, argmax agreement at least 95%), a Q8_0 cache takes 17/32 of
//! F16's bytes, and a saved state restores exactly into a context of its own type only.

mod common;

use common::SMOLLM2;
use common::parity::{Reference, assert_teacher_forced_logits_match, context_with_kv};
use rocmforge::backend::KvType;
use rocmforge::context::Batch;
use rocmforge::sampler::Sampler;

const MAX_PROMPT_MEAN_ABS_DIFF: f64 = 0.22;

fn references() -> Vec<Reference> {
    common::parity::references("reference/smollm2/greedy.jsonl")
}

#[test]
fn teacher_forced_logits_match_llama_cpp_with_q8_0_and_f32_caches() {
    for kv_type in [KvType::Q8_0, KvType::F32] {
        println!("{kv_type:?} KV cache:");
        let mut ctx = context_with_kv(SMOLLM2, kv_type);
        assert_teacher_forced_logits_match(&mut ctx, &references(), MAX_PROMPT_MEAN_ABS_DIFF);
    }
}

#[test]
fn a_q8_0_cache_takes_17_32_of_f16_s_bytes_and_f32_twice() {
    let f16 = context_with_kv(SMOLLM2, KvType::F16)
        .memory()
        .kv
        .bytes_total;
    let q8_0 = context_with_kv(SMOLLM2, KvType::Q8_0)
        .memory()
        .kv
        .bytes_total;
    let f32 = context_with_kv(SMOLLM2, KvType::F32)
        .memory()
        .kv
        .bytes_total;
    assert_eq!(q8_0 * 32, f16 * 17);
    assert_eq!(f32, 2 * f16);
}

/// The next 16 greedy tokens of a restored Q8_0 state are the uninterrupted run's; the
/// blob refuses a context of another KV type.
#[test]
fn a_q8_0_state_restores_exactly_into_a_q8_0_context_only() {
    let prompt = &references()[0].prompt_ids;
    let continuation = |ctx: &mut rocmforge::context::Context| -> Vec<u32> {
        let mut sampler = Sampler::greedy();
        (0..16)
            .map(|_| {
                let token = ctx.sample(&mut sampler, -1).unwrap();
                ctx.decode(&Batch {
                    tokens: &[token as i32],
                    ..Batch::default()
                })
                .unwrap();
                token
            })
            .collect()
    };
    let mut original = context_with_kv(SMOLLM2, KvType::Q8_0);
    original
        .decode(&Batch {
            tokens: prompt,
            ..Batch::default()
        })
        .unwrap();
    let mut blob = Vec::new();
    original.state_seq_save(0, &mut blob).unwrap();
    let expected = continuation(&mut original);

    let mut restored = context_with_kv(SMOLLM2, KvType::Q8_0);
    restored.state_seq_load(0, &blob).unwrap();
    assert_eq!(continuation(&mut restored), expected);

    let mut other = context_with_kv(SMOLLM2, KvType::F16);
    let message = other.state_seq_load(0, &blob).unwrap_err().to_string();
    assert!(
        message.contains("(Q8_0), this context stores 1 (F16)"),
        "{message}"
    );
}
