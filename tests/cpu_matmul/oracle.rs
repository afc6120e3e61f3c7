//! The oracle for the CPU matmul tests, written apart from the library's kernels: f64 dot
//! products of the dequantized weights (the bit-exact reference dequantizers) with the
//! activations quantized here the way ggml quantizes them. A kernel that computes the same
//! integer sums must land within float rounding of it. Also: random weights with sane
//! scales, and random activations.
#![allow(dead_code)] // each test crate uses its own subset

use half::f16;
use rocmforge::tensor::WeightMatrix;
use rocmforge::tensor::{GgmlType, dequantize_to_vec};

/// Every type the matmul supports.
pub const SUPPORTED: [GgmlType; 22] = [
    GgmlType::F32,
    GgmlType::F16,
    GgmlType::Bf16,
    GgmlType::F64,
    GgmlType::I8,
    GgmlType::I16,
    GgmlType::I32,
    GgmlType::Q4_0,
    GgmlType::Q4_1,
    GgmlType::Q5_0,
    GgmlType::Q5_1,
    GgmlType::Q8_0,
    GgmlType::Q8_1,
    GgmlType::Iq4Nl,
    GgmlType::Mxfp4,
    GgmlType::Q2K,
    GgmlType::Q3K,
    GgmlType::Q4K,
    GgmlType::Q5K,
    GgmlType::Q6K,
    GgmlType::Q8K,
    GgmlType::Iq4Xs,
];

/// How ggml feeds activations to a weight type's dot product.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Activations {
    /// As they are, in f32.
    Float,
    /// Q8_0 blocks of 32 (with Q8_1's scaled sums where the weights have a min).
    Q8,
    /// Q8_K super-blocks of 256.
    Q8K,
}

pub fn activations_for(dtype: GgmlType) -> Activations {
    use GgmlType::*;
    match dtype {
        Q4_0 | Q4_1 | Q5_0 | Q5_1 | Q8_0 | Q8_1 | Iq4Nl | Mxfp4 => Activations::Q8,
        Q2K | Q3K | Q4K | Q5K | Q6K | Q8K | Iq4Xs => Activations::Q8K,
        _ => Activations::Float,
    }
}

/// The library's seeded generator, for reproducible test data.
pub use rocmforge::gguf::synthetic::SplitMix64 as Rng;

/// Random bytes for an `n_rows` x `n_cols` matrix, with every scale field replaced by a
/// moderate value of random sign (random f16 bits would give infinities and NaNs) and
/// float weights drawn as values.
pub fn random_weights(dtype: GgmlType, n_rows: usize, n_cols: usize, rng: &mut Rng) -> Vec<u8> {
    let n_values = n_rows * n_cols;
    let scale = |rng: &mut Rng| rng.symmetric() * 0.05;
    match dtype {
        GgmlType::F32 => return floats(n_values, rng, |v| v.to_le_bytes().to_vec()),
        GgmlType::F64 => return floats(n_values, rng, |v| f64::from(v).to_le_bytes().to_vec()),
        GgmlType::F16 => return floats(n_values, rng, |v| f16::from_f32(v).to_le_bytes().to_vec()),
        GgmlType::Bf16 => {
            return floats(n_values, rng, |v| {
                ((v.to_bits() >> 16) as u16).to_le_bytes().to_vec()
            });
        }
        _ => {}
    }
    let block_bytes = dtype.block_bytes() as usize;
    let n_bytes = dtype.bytes_for(n_values as u64).expect("whole blocks") as usize;
    let mut data: Vec<u8> = (0..n_bytes).map(|_| rng.next_u64() as u8).collect();
    let f16_scales: &[usize] = match dtype {
        GgmlType::Q4_0 | GgmlType::Q5_0 | GgmlType::Q8_0 | GgmlType::Iq4Nl | GgmlType::Iq4Xs => {
            &[0]
        }
        GgmlType::Q4_1 | GgmlType::Q5_1 | GgmlType::Q8_1 | GgmlType::Q4K | GgmlType::Q5K => &[0, 2],
        GgmlType::Q2K => &[80, 82],
        GgmlType::Q3K => &[108],
        GgmlType::Q6K => &[208],
        _ => &[],
    };
    for block in data.chunks_exact_mut(block_bytes) {
        for &offset in f16_scales {
            block[offset..offset + 2].copy_from_slice(&f16::from_f32(scale(rng)).to_le_bytes());
        }
        match dtype {
            GgmlType::Q8K => block[..4].copy_from_slice(&scale(rng).to_le_bytes()),
            // E8M0 exponents around 2^-7..2^2.
            GgmlType::Mxfp4 => block[0] = 120 + rng.below(10) as u8,
            _ => {}
        }
    }
    data
}

fn floats(n: usize, rng: &mut Rng, encode: impl Fn(f32) -> Vec<u8>) -> Vec<u8> {
    (0..n).flat_map(|_| encode(rng.symmetric())).collect()
}

/// Activations like a normalized hidden state: mostly small, a few outliers.
pub fn random_activations(n: usize, rng: &mut Rng) -> Vec<f32> {
    (0..n)
        .map(|_| {
            let v = rng.symmetric();
            if rng.below(50) == 0 { v * 20.0 } else { v }
        })
        .collect()
}

/// One token's activations as the kernels see them.
struct QuantizedToken {
    /// The value each activation stands for.
    values: Vec<f64>,
    /// Per 32-value block: the scaled sum `s` (the unrounded `d` times the quant sum, where
    /// ggml's Q8_1 rounds it to f16) minus what `values` sum to. Q4_1 and Q5_1 weights take
    /// their min term from `s`.
    sum_errors: Vec<f64>,
}

fn quantize_q8(x: &[f32]) -> QuantizedToken {
    let mut values = Vec::with_capacity(x.len());
    let mut sum_errors = Vec::new();
    for block in x.chunks_exact(32) {
        let amax = block.iter().fold(0.0_f32, |m, v| m.max(v.abs()));
        let d = amax / 127.0;
        let inverse = if amax == 0.0 { 0.0 } else { 127.0 / amax };
        let quants: Vec<f32> = block
            .iter()
            .map(|v| (v * inverse).round_ties_even())
            .collect();
        let d_f16 = f64::from(f16::from_f32(d).to_f32());
        let sum: f32 = quants.iter().sum();
        let s = f64::from(d * sum);
        values.extend(quants.iter().map(|&q| d_f16 * f64::from(q)));
        sum_errors.push(s - d_f16 * f64::from(sum));
    }
    QuantizedToken { values, sum_errors }
}

fn quantize_q8_k(x: &[f32]) -> QuantizedToken {
    let mut values = Vec::with_capacity(x.len());
    for block in x.chunks_exact(256) {
        let (mut amax, mut max) = (0.0_f32, 0.0_f32);
        for &v in block {
            if v.abs() > amax {
                (amax, max) = (v.abs(), v);
            }
        }
        if amax == 0.0 {
            values.extend(std::iter::repeat_n(0.0, 256));
            continue;
        }
        let inverse = -127.0 / max;
        let d = f64::from(1.0 / inverse);
        values.extend(
            block
                .iter()
                .map(|v| d * f64::from((inverse * v).round_ties_even().min(127.0))),
        );
    }
    QuantizedToken {
        values,
        sum_errors: Vec::new(),
    }
}

/// What a matmul should return, and the scale of its rounding.
pub struct Expected {
    /// `[n_tokens, n_rows]`.
    pub y: Vec<f64>,
    /// Per output, the sum of the magnitudes of its terms: f32 rounding scales with it.
    pub magnitude: Vec<f64>,
    /// Per output, the exact product with the activations before quantization.
    pub exact: Vec<f64>,
}

pub fn expected(w: &WeightMatrix<'_>, x: &[f32], n_tokens: usize) -> Expected {
    let weights = dequantize_to_vec(w.dtype, w.data, w.n_rows * w.n_cols).expect("dequantize");
    let row_bytes = w.data.len() / w.n_rows;
    let format = activations_for(w.dtype);
    let with_min = matches!(w.dtype, GgmlType::Q4_1 | GgmlType::Q5_1);
    let mut out = Expected {
        y: Vec::new(),
        magnitude: Vec::new(),
        exact: Vec::new(),
    };
    for token in x.chunks_exact(w.n_cols) {
        let quantized = match format {
            Activations::Float => QuantizedToken {
                values: token.iter().map(|&v| f64::from(v)).collect(),
                sum_errors: Vec::new(),
            },
            Activations::Q8 => quantize_q8(token),
            Activations::Q8K => quantize_q8_k(token),
        };
        for (r, row) in weights.chunks_exact(w.n_cols).enumerate() {
            let (mut y, mut magnitude, mut exact) = (0.0, 0.0, 0.0);
            for ((&wv, &xq), &xv) in row.iter().zip(&quantized.values).zip(token) {
                y += f64::from(wv) * xq;
                magnitude += (f64::from(wv) * xq).abs();
                exact += f64::from(wv) * f64::from(xv);
            }
            if with_min {
                let row_data = &w.data[r * row_bytes..][..row_bytes];
                let block_bytes = w.dtype.block_bytes() as usize;
                for (block, &error) in row_data
                    .chunks_exact(block_bytes)
                    .zip(&quantized.sum_errors)
                {
                    let m = f64::from(f16::from_le_bytes([block[2], block[3]]).to_f32());
                    y += m * error;
                }
            }
            out.y.push(y);
            out.magnitude.push(magnitude);
            out.exact.push(exact);
        }
    }
    debug_assert_eq!(out.y.len(), n_tokens * w.n_rows);
    out
}

/// Asserts `actual` is within `relative` of each output's magnitude of `expected`.
pub fn assert_close(actual: &[f32], expected: &Expected, relative: f64, context: &str) {
    assert_eq!(actual.len(), expected.y.len(), "{context}: length");
    for (i, ((&a, &e), &m)) in actual
        .iter()
        .zip(&expected.y)
        .zip(&expected.magnitude)
        .enumerate()
    {
        let tolerance = relative * m + 1e-30;
        assert!(
            (f64::from(a) - e).abs() <= tolerance,
            "{context}: output {i} is {a}, expected {e} (tolerance {tolerance:.3e}, magnitude {m:.3e})"
        );
    }
}

/// The root-mean-square error of `actual` against the exact products, relative to their
/// root-mean-square.
pub fn relative_rms_error(actual: &[f32], expected: &Expected) -> f64 {
    let (mut error, mut norm) = (0.0, 0.0);
    for (&a, &e) in actual.iter().zip(&expected.exact) {
        error += (f64::from(a) - e).powi(2);
        norm += e * e;
    }
    (error / norm).sqrt()
}
