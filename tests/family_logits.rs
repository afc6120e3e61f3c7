//! The families beyond llama, and Mistral, against llama.cpp on the same file: a synthetic
//! model of each (SmolLM2's vocabulary size, F32 weights, written by `gguf::synthetic`
//! exactly as `rocmforge-synth` writes it), 64 teacher-forced positions, and llama.cpp's
//! logits at every 16th token (tests/fixtures/families/, made by
//! scripts/gen-family-fixtures.py).
//! Each position's relative L2 error must be at most 1e-2. On the device
//! `ROCMFORGE_TEST_DEVICE` names (a GPU), each position's logits are also held to the
//! CPU's, within the same 1e-2.

mod common;

use std::sync::Arc;

use common::parity::test_device;
use common::relative_l2;
use half::f16;
use rocmforge::backend::{DeviceChoice, enumerate};
use rocmforge::context::{Context, ContextParams};
use rocmforge::gguf::synthetic::{LlamaWeightTypes, SyntheticFamily, SyntheticLlama};
use rocmforge::gguf::{GgufWriter, OwnedGguf};
use rocmforge::model::{Model, Placement};
use rocmforge::tensor::GgmlType;

const MAX_RELATIVE_L2: f64 = 1e-2;

struct Fixture {
    model: SyntheticLlama,
    tokens: Vec<i32>,
    stride: usize,
    /// llama.cpp's logits, `[tokens, n_vocab / stride]`.
    logits: Vec<f32>,
}

fn fixture(family: &str) -> Fixture {
    let json = common::read_json(&format!("families/{family}.json"));
    let args: Vec<&str> = json["synth_args"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap())
        .collect();
    let value = |flag: &str| -> u64 { value_of(&args, flag).parse().unwrap() };
    assert_eq!(
        value_of(&args, "--type"),
        "F32",
        "the test writes F32 weights"
    );
    let shape = ["--n-embd", "--n-layer", "--n-head", "--n-head-kv", "--n-ff"].map(value);
    let n_vocab = json["n_vocab"].as_u64().unwrap();
    let mut model = SyntheticLlama::of_shape(n_vocab, shape, value("--seed"));
    model.family = match value_of(&args, "--arch") {
        "qwen2" => SyntheticFamily::Qwen2,
        "qwen3" => SyntheticFamily::Qwen3,
        "phi3" => SyntheticFamily::Phi3,
        "gemma3" => SyntheticFamily::Gemma3 {
            sliding_window: value("--sliding-window") as u32,
        },
        "mistral" => SyntheticFamily::Mistral {
            sliding_window: value("--sliding-window") as u32,
        },
        other => panic!("family {other}"),
    };
    if let Some(base) = optional_value(&args, "--rope-base") {
        model.rope_base = base.parse().unwrap();
    }
    model.types = LlamaWeightTypes::uniform(GgmlType::F32, model.family.ties_output());
    let tokens: Vec<i32> = json["tokens"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t.as_i64().unwrap() as i32)
        .collect();
    let bytes = std::fs::read(common::fixture_path(&format!(
        "families/{family}.logits.f16"
    )))
    .unwrap();
    let logits = bytes
        .chunks_exact(2)
        .map(|b| f16::from_le_bytes([b[0], b[1]]).to_f32())
        .collect();
    Fixture {
        model,
        tokens,
        stride: json["stride"].as_u64().unwrap() as usize,
        logits,
    }
}

fn value_of<'a>(args: &[&'a str], flag: &str) -> &'a str {
    optional_value(args, flag).unwrap_or_else(|| panic!("{flag} is missing"))
}

fn optional_value<'a>(args: &[&'a str], flag: &str) -> Option<&'a str> {
    let at = args.iter().position(|a| *a == flag)?;
    Some(args[at + 1])
}

/// Every position's logits of the model in `gguf` on device `device` (0: the CPU) fed
/// `tokens`: the first half in one batch, the rest one step a token (both paths of a
/// backend).
fn teacher_forced(gguf: &[u8], device: usize, tokens: &[i32]) -> Vec<Vec<f32>> {
    let placement = Placement::choose(&enumerate(), DeviceChoice::Index(device)).unwrap();
    let gguf = OwnedGguf::from_buffer(gguf.to_vec()).unwrap();
    let model = Arc::new(Model::from_gguf_on(gguf, placement).unwrap());
    let params = ContextParams {
        n_ctx: 128,
        n_threads: 2,
        ..ContextParams::default()
    };
    common::teacher_forced(&mut Context::new(model, &params).unwrap(), tokens)
}

fn check(family: &str) {
    let f = fixture(family);
    let mut w = GgufWriter::new();
    f.model.add_to(&mut w).unwrap();
    let bytes = w.to_bytes();
    let device = test_device();
    let rows = teacher_forced(&bytes, device, &f.tokens);
    if device != 0 {
        let cpu = teacher_forced(&bytes, 0, &f.tokens);
        for (i, (ours, cpu)) in rows.iter().zip(&cpu).enumerate() {
            let error = relative_l2(ours, cpu);
            assert!(
                error <= MAX_RELATIVE_L2,
                "{family}: device {device} against the CPU {error:.2e} at position {i}"
            );
        }
        eprintln!("{family}: device {device} within {MAX_RELATIVE_L2} of the CPU everywhere");
    }
    let width = f.logits.len() / f.tokens.len();
    let mut worst = (0.0f64, 0);
    for (i, theirs) in f.logits.chunks_exact(width).enumerate() {
        let ours = &rows[i];
        let (mut diff, mut norm) = (0.0f64, 0.0f64);
        for (j, &t) in theirs.iter().enumerate() {
            let o = f64::from(ours[j * f.stride]);
            diff += (o - f64::from(t)).powi(2);
            norm += f64::from(t).powi(2);
        }
        let error = (diff / norm).sqrt();
        if error > worst.0 {
            worst = (error, i);
        }
    }
    eprintln!(
        "{family}: worst relative L2 against llama.cpp {:.2e} at position {}",
        worst.0, worst.1
    );
    assert!(
        worst.0 <= MAX_RELATIVE_L2,
        "{family}: relative L2 {:.2e} at position {}",
        worst.0,
        worst.1
    );
}

#[test]
fn qwen2_matches_llama_cpp() {
    check("qwen2");
}

#[test]
fn qwen3_matches_llama_cpp() {
    check("qwen3");
}

#[test]
fn gemma3_matches_llama_cpp() {
    check("gemma3");
}

#[test]
fn phi3_matches_llama_cpp() {
    check("phi3");
}

/// A llama file with Mistral's metadata, including a declared sliding window of 16
/// positions that llama.cpp ignores in a llama file (and so must this library).
#[test]
fn mistral_matches_llama_cpp() {
    check("mistral");
}

/// The 128k-context Phi-3 models scale RoPE per dimension (LongRoPE); this build does not,
/// so such a file is refused by name instead of run with the wrong positions.
#[test]
fn phi3_with_longrope_factors_is_refused() {
    let mut model = SyntheticLlama::of_shape(64, [32, 1, 2, 1, 64], 1);
    model.family = SyntheticFamily::Phi3;
    let mut w = GgufWriter::new();
    model.add_to(&mut w).unwrap();
    let factors = [1.0f32; 8];
    let bytes = factors.iter().flat_map(|f| f.to_le_bytes()).collect();
    w.add_tensor("rope_factors_long.weight", GgmlType::F32, &[8], bytes)
        .unwrap();
    let gguf = OwnedGguf::from_buffer(w.to_bytes()).unwrap();
    match Model::from_gguf(gguf) {
        Err(rocmforge::Error::Unsupported(message)) => {
            assert!(message.contains("rope_factors_long"), "{message}")
        }
        other => panic!("a LongRoPE file: {:?}", other.map(|_| "loaded")),
    }
}
