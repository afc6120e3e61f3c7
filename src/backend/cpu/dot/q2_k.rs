//! Q2_K weights: 256 values in 84 bytes, `scales: [u8; 16] @0` (per group of 16: scale in the
//! low nibble, min in the high one), `qs: [u8; 64] @16` (2-bit quants), `d: f16 @80`,
//! `dmin: f16 @82`; a value is `d * sc * q - dmin * m`. Each 128-value half reads its 32
//! bytes four times, two bits further up on each pass, the first 16 bytes for one group and
//! the next 16 for the following one.

use super::{RowDot, f16_at};
use crate::backend::cpu::activations::Q8KRow;

const BLOCK_BYTES: usize = 84;

pub(super) struct Q2K;

impl RowDot<Q8KRow<'_>> for Q2K {
    fn dot(row: &[u8], token: &Q8KRow<'_>) -> f32 {
        let blocks = row
            .chunks_exact(BLOCK_BYTES)
            .zip(token.quants)
            .zip(token.scales.iter().zip(token.group_sums));
        let mut sum = 0.0;
        for ((block, qy), (&dy, group_sums)) in blocks {
            let (scales, qs) = (&block[..16], &block[16..80]);
            let mut isum = 0;
            for (i, (qy, &scale)) in qy.chunks_exact(16).zip(scales).enumerate() {
                let (half, pass, part) = (i / 8, (i / 2) % 4, i % 2);
                let (bytes, shift) = (&qs[32 * half + 16 * part..][..16], 2 * pass);
                let group: i32 = bytes
                    .iter()
                    .zip(qy)
                    .map(|(&q, &y)| i32::from((q >> shift) & 3) * i32::from(y))
                    .sum();
                isum += i32::from(scale & 0x0F) * group;
            }
            let min_sum: i32 = scales
                .iter()
                .zip(group_sums)
                .map(|(&scale, &group_sum)| i32::from(scale >> 4) * i32::from(group_sum))
                .sum();
            sum +=
                (dy * f16_at(block, 80)) * isum as f32 - (dy * f16_at(block, 82)) * min_sum as f32;
        }
        sum
    }
}

#[cfg(target_arch = "x86_64")]
mod avx2 {
    use std::arch::x86_64::*;

    use super::{BLOCK_BYTES, Q2K};
    use crate::backend::cpu::activations::Q8KRow;
    use crate::backend::cpu::dot::Avx2TileDot;
    use crate::backend::cpu::dot::avx2::{
        Columns, f16_pair_at, group_pair_scales, hsum_f32x8, load_i8x32, load_i16x16, load_u8x16,
        load_u8x32, prefetch_ahead, q8k_columns, zeros,
    };

    impl Avx2TileDot<Q8KRow<'_>> for Q2K {
        #[target_feature(enable = "avx2,fma,f16c")]
        unsafe fn dot_tile<const T: usize>(row: &[u8], tokens: &[Q8KRow<'_>; T]) -> [f32; T] {
            let n = row.len() / BLOCK_BYTES;
            let Columns {
                quants,
                scales,
                sums: group_sums,
            } = q8k_columns(tokens, n);
            let mut acc = zeros::<T>();
            let mut acc_mins = zeros::<T>();
            let low_2 = _mm256_set1_epi8(3);
            for (b, block) in row.chunks_exact(BLOCK_BYTES).enumerate() {
                prefetch_ahead(row, b * BLOCK_BYTES, BLOCK_BYTES);
                let (d, dmin) = f16_pair_at(block, 80);
                let packed_scales = load_u8x16(&block[..16]);
                let group_scales = _mm_and_si128(packed_scales, _mm_set1_epi8(0x0F));
                let mins = _mm256_cvtepu8_epi16(_mm_and_si128(
                    _mm_srli_epi16::<4>(packed_scales),
                    _mm_set1_epi8(0x0F),
                ));
                for t in 0..T {
                    let min_terms = _mm256_madd_epi16(mins, load_i16x16(&group_sums[t][b]));
                    let dmin_y = _mm256_set1_ps(dmin * scales[t][b]);
                    acc_mins[t] =
                        _mm256_fmadd_ps(dmin_y, _mm256_cvtepi32_ps(min_terms), acc_mins[t]);
                }
                let mut isums = [_mm256_setzero_si256(); T];
                for (half, bytes) in block[16..80].chunks_exact(32).enumerate() {
                    let packed = load_u8x32(bytes);
                    for pass in 0..4 {
                        let shift = _mm_cvtsi32_si128(2 * pass as i32);
                        let values = _mm256_and_si256(_mm256_srl_epi16(packed, shift), low_2);
                        let scale = group_pair_scales(group_scales, 8 * half + 2 * pass);
                        for t in 0..T {
                            let qy = &quants[t][b][128 * half + 32 * pass..];
                            let products = _mm256_maddubs_epi16(values, load_i8x32(qy));
                            let scaled = _mm256_madd_epi16(scale, products);
                            isums[t] = _mm256_add_epi32(isums[t], scaled);
                        }
                    }
                }
                for t in 0..T {
                    let d_y = _mm256_set1_ps(d * scales[t][b]);
                    acc[t] = _mm256_fmadd_ps(d_y, _mm256_cvtepi32_ps(isums[t]), acc[t]);
                }
            }
            std::array::from_fn(|t| hsum_f32x8(acc[t]) - hsum_f32x8(acc_mins[t]))
        }
    }
}
