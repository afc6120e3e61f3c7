//! The CPU matmul on real tensors of the two test models, whose scales, mins and quant
//! distributions random bytes do not have, against the oracle at every SIMD level: one
//! token (decode) and a batch (prefill), for every weight type the models use.

mod common;
#[path = "cpu_matmul/oracle.rs"]
mod oracle;

use common::{GEMMA3, SMOLLM2, model_path};
use oracle::{Rng, assert_close, expected, random_activations, relative_rms_error};
use rocmforge::backend::cpu::{CpuMatmul, SimdLevel};
use rocmforge::gguf::OwnedGguf;
use rocmforge::tensor::GgmlType;
use rocmforge::tensor::WeightMatrix;

/// Float rounding allowed, relative to the sum of the magnitudes of an output's terms.
const ROUNDING: f64 = 2e-5;

fn check_tensors(model: &str, tensors: &[(&str, GgmlType)]) {
    let gguf = OwnedGguf::open(&model_path(model)).expect("model opens");
    let file = gguf.file();
    let mut levels = vec![SimdLevel::Scalar];
    if SimdLevel::detect() != SimdLevel::Scalar {
        levels.push(SimdLevel::detect());
    }
    let matmuls: Vec<CpuMatmul> = levels
        .into_iter()
        .map(|simd| CpuMatmul::with_simd(2, simd).unwrap())
        .collect();
    let mut rng = Rng(7);
    for &(name, dtype) in tensors {
        let tensor = file.tensor(name).expect("tensor exists");
        let w = WeightMatrix::from_tensor(&tensor).expect("tensor is a matrix");
        assert_eq!(w.dtype, dtype, "{name}");
        for n_tokens in [1, 6] {
            let x = random_activations(n_tokens * w.n_cols, &mut rng);
            let want = expected(&w, &x, n_tokens);
            for matmul in &matmuls {
                let mut y = vec![f32::NAN; n_tokens * w.n_rows];
                matmul.matmul(&w, &x, n_tokens, &mut y).unwrap();
                let context = format!("{name} ({dtype}), {n_tokens} tokens, {}", matmul.simd());
                assert_close(&y, &want, ROUNDING, &context);
                let error = relative_rms_error(&y, &want);
                assert!(error < 4e-2, "{context}: relative RMS error {error:.2e}");
            }
        }
    }
}

#[test]
fn smollm2_tensors() {
    check_tensors(
        SMOLLM2,
        &[
            ("blk.0.attn_q.weight", GgmlType::Q4_1),
            ("blk.0.attn_k.weight", GgmlType::Q4_1),
            ("blk.0.ffn_down.weight", GgmlType::Q4_1),
            ("blk.29.ffn_up.weight", GgmlType::Q4_1),
            ("token_embd.weight", GgmlType::Q8_0),
        ],
    );
}

#[test]
fn gemma3_tensors() {
    check_tensors(
        GEMMA3,
        &[
            ("blk.0.attn_q.weight", GgmlType::Q5_0),
            ("blk.0.attn_v.weight", GgmlType::Q8_0),
            ("blk.0.attn_output.weight", GgmlType::Q4K),
            ("blk.0.ffn_down.weight", GgmlType::Q6K),
            ("blk.0.ffn_gate.weight", GgmlType::Q5_0),
        ],
    );
}
