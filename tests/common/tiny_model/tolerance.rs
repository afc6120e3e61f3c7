//! How far a backend's logits may be from its oracle's: the largest |Δlogit| of a row, as
//! a fraction of the row's largest |logit|.
//!
//! The CPU against the float64 reference, whose weights are the same dequantized values
//! and whose K/V is rounded to f16 as the engine's:
//!
//! - Float weights (F32, F16, BF16, F64 everywhere): the engine works in f32, so what is
//!   left is f32 rounding (about 1e-7 of each value, a row's sums accumulated in another
//!   order) and the K/V values whose f32 result lands that close to an f16 rounding
//!   boundary and rounds the other way (one f16 step, 2^-11 of one K or V value).
//!   Measured over every float model and step: 2.3e-5 at worst. Held to 2e-4, so the
//!   math is checked to a few parts in ten thousand: an attention scale 5% off moves
//!   these models' logits by 1.6e-2 or more, a RoPE base 1.5 times too large by 1.5e-2
//!   or more.
//! - Any block-type weight: the engine quantizes the activations of those matmuls to 8
//!   bits per block (as ggml: Q8_0 blocks of 32 values, Q8_K of 256) with the step
//!   `d = max|x| / 127`. Each activation moves by up to `d / 2`, so a dot product moves by
//!   about `d / sqrt(12)` times the weight row's norm: relative to the product,
//!   `(max|x| / rms x) / (127 sqrt(12))`, 0.6% for 32 normal values (max about 2.5 rms),
//!   0.7% for 256 (3.2 rms), more for the heavy-tailed SwiGLU outputs. A token's logits
//!   go through 15 such matmuls in two layers and read earlier tokens' K/V made the same
//!   way, and these random models amplify a relative change in their input about tenfold
//!   by the logits: a few percent of the largest logit. Measured: 4.6e-3 (IQ4_NL) to
//!   4.3e-2 (Q3_K) at worst. (With the reference quantizing its activations the same
//!   way, every model agreed to 1e-7 until one activation, within 1e-6 of a rounding
//!   boundary, rounded the other way; that one step moved the logits by up to 1e-2, so
//!   copying the quantization would not allow a much tighter bound.) Held to 1e-1: the
//!   float models check the math; these check that every weight type is read,
//!   dispatched and mixed right, which when wrong moves logits by their own size.

//!
//! A GPU against the same reference:
//!
//! - Steps of more tokens than the integer kernels take (prefill) multiply through the
//!   vendor BLAS with weights and activations rounded to f16, as llama.cpp's CUDA backend
//!   does. Float models: measured on an H200, 4.8e-4 at worst; held to 1e-3, still
//!   sixteen times under what a 5% attention-scale or 1.5x RoPE-base error moves them.
//! - Products of the types with an integer kernel (`integer_product_types`: Q4_0 … Q8_0,
//!   Q4_K, Q6_K) quantize their activations to 8 bits per 32 values in decode, as the CPU
//!   does for the 32-value types (for Q4_K and Q6_K the CPU's blocks are 256 values):
//!   measured 1.0e-2 to 3.1e-2, held to 5e-2.
//! - The other block types multiply the dequantized weights with f32 activations in
//!   decode and through f16 in prefill. The coarse types (Q2_K, Q3_K, Q5_K) make rows of
//!   a few large values that lose the most to f16: measured 1.3e-3 at worst, 1e-3 or less
//!   for every other type. Held to 3e-3, thirty times tighter than the CPU's bound.

use rocmforge::backend::gpu::ops::integer_product_types;
use rocmforge::gguf::synthetic::LlamaWeightTypes;
use rocmforge::tensor::GgmlType;

#[derive(Clone, Copy, Debug)]
pub struct Tolerance {
    /// Largest |Δlogit| allowed, as a fraction of the row's largest |logit|.
    pub relative: f64,
}

const FLOAT_WEIGHTS: Tolerance = Tolerance { relative: 2e-4 };
const BLOCK_WEIGHTS: Tolerance = Tolerance { relative: 1e-1 };
const GPU_BLOCK_WEIGHTS: Tolerance = Tolerance { relative: 3e-3 };
const GPU_FLOAT_WEIGHTS: Tolerance = Tolerance { relative: 1e-3 };
const GPU_INTEGER_PRODUCTS: Tolerance = Tolerance { relative: 5e-2 };

fn is_float(t: &GgmlType) -> bool {
    matches!(
        t,
        GgmlType::F32 | GgmlType::F16 | GgmlType::Bf16 | GgmlType::F64
    )
}

impl Tolerance {
    /// A GPU against the float64 reference, for a model of these weight types.
    pub fn gpu_against_reference(types: &LlamaWeightTypes) -> Tolerance {
        let all = types.all();
        if all.iter().all(is_float) {
            GPU_FLOAT_WEIGHTS
        } else if all.iter().any(|t| integer_product_types().any(|i| i == *t)) {
            GPU_INTEGER_PRODUCTS
        } else {
            GPU_BLOCK_WEIGHTS
        }
    }

    /// The CPU against the float64 reference, for a model of these weight types.
    pub fn cpu_against_reference(types: &LlamaWeightTypes) -> Tolerance {
        if types.all().iter().all(is_float) {
            FLOAT_WEIGHTS
        } else {
            BLOCK_WEIGHTS
        }
    }
}
