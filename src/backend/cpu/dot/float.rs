//! F32, F16 and BF16 weights against f32 activations: plain dot products, accumulated in
//! f32. No activation quantization: these types are kept at full precision for a reason.

use super::RowDot;

/// How a floating-point weight type stores one value.
pub(super) trait FloatFormat {
    const BYTES: usize;
    fn decode(bytes: &[u8]) -> f32;
}

pub(super) struct F32;
pub(super) struct F16;
pub(super) struct Bf16;

impl FloatFormat for F32 {
    const BYTES: usize = 4;
    fn decode(bytes: &[u8]) -> f32 {
        f32::from_le_bytes([bytes[0], bytes[1], bytes[2], bytes[3]])
    }
}

impl FloatFormat for F16 {
    const BYTES: usize = 2;
    fn decode(bytes: &[u8]) -> f32 {
        half::f16::from_le_bytes([bytes[0], bytes[1]]).to_f32()
    }
}

impl FloatFormat for Bf16 {
    const BYTES: usize = 2;
    /// BF16 is the top half of an f32.
    fn decode(bytes: &[u8]) -> f32 {
        f32::from_bits(u32::from(u16::from_le_bytes([bytes[0], bytes[1]])) << 16)
    }
}

/// Eight running sums, summed pairwise at the end: more accurate than one long sum, and
/// the order the SIMD kernel adds in.
impl<F: FloatFormat> RowDot<&[f32]> for F {
    fn dot(row: &[u8], x: &&[f32]) -> f32 {
        let mut lanes = [0.0_f32; 8];
        for (i, (w, &x)) in row.chunks_exact(F::BYTES).zip(x.iter()).enumerate() {
            lanes[i % 8] += F::decode(w) * x;
        }
        lanes.iter().sum()
    }
}

#[cfg(target_arch = "x86_64")]
mod avx2 {
    use std::arch::x86_64::*;

    use super::{Bf16, F16, F32, FloatFormat};
    use crate::backend::cpu::dot::Avx2TileDot;
    use crate::backend::cpu::dot::avx2::{
        even_odd_blocks, hsums, load_f32x8, load_f32x8_le, load_u8x16, prefetch_ahead, zeros,
    };

    /// Eight weights as f32, with AVX2.
    trait Avx2Load: FloatFormat {
        /// # Safety
        /// The CPU must have AVX2, FMA and F16C.
        unsafe fn load8(bytes: &[u8]) -> __m256;
    }

    impl Avx2Load for F32 {
        #[target_feature(enable = "avx2,fma,f16c")]
        unsafe fn load8(bytes: &[u8]) -> __m256 {
            load_f32x8_le(bytes)
        }
    }

    impl Avx2Load for F16 {
        #[target_feature(enable = "avx2,fma,f16c")]
        unsafe fn load8(bytes: &[u8]) -> __m256 {
            _mm256_cvtph_ps(load_u8x16(bytes))
        }
    }

    impl Avx2Load for Bf16 {
        #[target_feature(enable = "avx2,fma,f16c")]
        unsafe fn load8(bytes: &[u8]) -> __m256 {
            let widened = _mm256_cvtepu16_epi32(load_u8x16(bytes));
            _mm256_castsi256_ps(_mm256_slli_epi32::<16>(widened))
        }
    }

    impl<F: Avx2Load> Avx2TileDot<&[f32]> for F {
        #[target_feature(enable = "avx2,fma,f16c")]
        unsafe fn dot_tile<const T: usize>(row: &[u8], tokens: &[&[f32]; T]) -> [f32; T] {
            let n = row.len() / F::BYTES;
            let mut xs = [&[][..]; T];
            for (xs, token) in xs.iter_mut().zip(tokens) {
                *xs = &token[..n];
            }
            let full = n - n % 8;
            macro_rules! add_chunk {
                ($acc:ident, $chunk:expr, $weights:expr) => {
                    let i = 8 * $chunk;
                    prefetch_ahead(row, i * F::BYTES, 8 * F::BYTES);
                    // SAFETY: this function's own target features are `load8`'s.
                    let w = unsafe { F::load8($weights) };
                    for (acc, x) in $acc.iter_mut().zip(xs) {
                        *acc = _mm256_fmadd_ps(w, load_f32x8(&x[i..]), *acc);
                    }
                };
            }
            let (mut even, mut odd) = (zeros::<T>(), zeros::<T>());
            even_odd_blocks!(row[..full * F::BYTES], 8 * F::BYTES, even, odd, add_chunk);
            let sums = hsums::<T>(std::array::from_fn(|t| _mm256_add_ps(even[t], odd[t])));
            std::array::from_fn(|t| {
                let tail: f32 = (full..n)
                    .map(|i| F::decode(&row[i * F::BYTES..]) * xs[t][i])
                    .sum();
                sums[t] + tail
            })
        }
    }
}
