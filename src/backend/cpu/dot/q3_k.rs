//! Q3_K weights: 256 values in 110 bytes, `hmask: [u8; 32] @0` (the third bit of each quant,
//! inverted), `qs: [u8; 64] @32` (the low 2 bits, laid out as Q2_K's), `scales: [u8; 12] @96`
//! (16 6-bit scales, see [`q3_k_scales`]), `d: f16 @108`; a value is `d * (sc - 32) * q` with
//! `q` in -4..4. `hmask` is read like `qs`, 16 bytes per group, one bit further up per pass.

use super::k_scales::q3_k_scales;
use super::{RowDot, f16_at};
use crate::backend::cpu::activations::Q8KRow;

const BLOCK_BYTES: usize = 110;

pub(super) struct Q3K;

impl RowDot<Q8KRow<'_>> for Q3K {
    fn dot(row: &[u8], token: &Q8KRow<'_>) -> f32 {
        let blocks = row
            .chunks_exact(BLOCK_BYTES)
            .zip(token.quants)
            .zip(token.scales);
        let mut sum = 0.0;
        for ((block, qy), &dy) in blocks {
            let (hmask, qs) = (&block[..32], &block[32..96]);
            let scales = q3_k_scales(&block[96..108]);
            let mut isum = 0;
            for (i, (qy, &scale)) in qy.chunks_exact(16).zip(&scales).enumerate() {
                let (half, pass, part) = (i / 8, (i / 2) % 4, i % 2);
                let (bytes, shift) = (&qs[32 * half + 16 * part..][..16], 2 * pass);
                let (high, bit) = (&hmask[16 * part..][..16], i / 2);
                let group: i32 = bytes
                    .iter()
                    .zip(high)
                    .zip(qy)
                    .map(|((&q, &h), &y)| {
                        // A set third bit means the quant is not lowered by 4.
                        let offset = if (h >> bit) & 1 == 1 { 0 } else { 4 };
                        (i32::from((q >> shift) & 3) - offset) * i32::from(y)
                    })
                    .sum();
                isum += i32::from(scale) * group;
            }
            sum += (f16_at(block, 108) * dy) * isum as f32;
        }
        sum
    }
}

#[cfg(target_arch = "x86_64")]
mod avx2 {
    use std::arch::x86_64::*;

    use super::{BLOCK_BYTES, Q3K};
    use crate::backend::cpu::activations::Q8KRow;
    use crate::backend::cpu::dot::Avx2TileDot;
    use crate::backend::cpu::dot::avx2::{
        Columns, f16_at, group_pair_scales, hsums, load_i8x16, load_i8x32, load_u8x32,
        prefetch_ahead, q8k_columns, zeros,
    };
    use crate::backend::cpu::dot::k_scales::q3_k_scales;

    impl Avx2TileDot<Q8KRow<'_>> for Q3K {
        #[target_feature(enable = "avx2,fma,f16c")]
        unsafe fn dot_tile<const T: usize>(row: &[u8], tokens: &[Q8KRow<'_>; T]) -> [f32; T] {
            let n = row.len() / BLOCK_BYTES;
            let Columns { quants, scales, .. } = q8k_columns(tokens, n);
            let mut acc = zeros::<T>();
            let low_2 = _mm256_set1_epi8(3);
            for (b, block) in row.chunks_exact(BLOCK_BYTES).enumerate() {
                prefetch_ahead(row, b * BLOCK_BYTES, BLOCK_BYTES);
                let high_bits = load_u8x32(&block[..32]);
                let group_scales = load_i8x16(&q3_k_scales(&block[96..108]));
                let mut isums = [_mm256_setzero_si256(); T];
                for (half, bytes) in block[32..96].chunks_exact(32).enumerate() {
                    let packed = load_u8x32(bytes);
                    for pass in 0..4 {
                        let shift = _mm_cvtsi32_si128(2 * pass as i32);
                        let low = _mm256_and_si256(_mm256_srl_epi16(packed, shift), low_2);
                        // The quant is `low - 4` where its (inverted) third bit is clear:
                        // take `4 * Σ qy` there off the sum of `low * qy`.
                        let bit = _mm256_set1_epi8(1 << (4 * half + pass));
                        let clear = _mm256_cmpeq_epi8(
                            _mm256_and_si256(high_bits, bit),
                            _mm256_setzero_si256(),
                        );
                        let fours = _mm256_and_si256(clear, _mm256_set1_epi8(4));
                        let scale = group_pair_scales(group_scales, 8 * half + 2 * pass);
                        for t in 0..T {
                            let qy = load_i8x32(&quants[t][b][128 * half + 32 * pass..]);
                            let products = _mm256_sub_epi16(
                                _mm256_maddubs_epi16(low, qy),
                                _mm256_maddubs_epi16(fours, qy),
                            );
                            let scaled = _mm256_madd_epi16(scale, products);
                            isums[t] = _mm256_add_epi32(isums[t], scaled);
                        }
                    }
                }
                let d = f16_at(block, 108);
                for t in 0..T {
                    let d_y = _mm256_set1_ps(d * scales[t][b]);
                    acc[t] = _mm256_fmadd_ps(d_y, _mm256_cvtepi32_ps(isums[t]), acc[t]);
                }
            }
            hsums(acc)
        }
    }
}
