//! Q4_K weights: 256 values in 144 bytes, `d: f16 @0, dmin: f16 @2, scales: [u8; 12] @4`
//! (8 scales and 8 mins, see [`k4_scales_and_mins`]), `qs: [u8; 128] @16`. Group `j` of 32
//! values reads the low (even `j`) or high (odd `j`) nibbles of bytes `32 * (j / 2)..`; a
//! value is `d * sc_j * q - dmin * m_j`. Against Q8_K activations the min term needs only the
//! activations' group sums.

use super::k_scales::k4_scales_and_mins;
use super::{RowDot, f16_at};
use crate::backend::cpu::activations::Q8KRow;

const BLOCK_BYTES: usize = 144;

pub(super) struct Q4K;

impl RowDot<Q8KRow<'_>> for Q4K {
    fn dot(row: &[u8], token: &Q8KRow<'_>) -> f32 {
        let blocks = row
            .chunks_exact(BLOCK_BYTES)
            .zip(token.quants)
            .zip(token.scales.iter().zip(token.group_sums));
        let mut sum = 0.0;
        for ((block, qy), (&dy, group_sums)) in blocks {
            let scales_and_mins = k4_scales_and_mins(&block[4..16]);
            let (scales, mins) = scales_and_mins.split_at(8);
            let qs = &block[16..];
            let mut isum = 0;
            for (j, (qy, &scale)) in qy.chunks_exact(32).zip(scales).enumerate() {
                let (bytes, shift) = (&qs[32 * (j / 2)..][..32], 4 * (j % 2));
                let group: i32 = bytes
                    .iter()
                    .zip(qy)
                    .map(|(&q, &y)| i32::from((q >> shift) & 0x0F) * i32::from(y))
                    .sum();
                isum += i32::from(scale) * group;
            }
            let min_sum = min_sum(mins, group_sums);
            sum += (dy * f16_at(block, 0)) * isum as f32 - (dy * f16_at(block, 2)) * min_sum as f32;
        }
        sum
    }
}

/// `Σ m_j * Σ qy` over the 8 groups of 32, from the 16 activation group sums of 16.
#[inline]
pub(super) fn min_sum(mins: &[u8], group_sums: &[i16; 16]) -> i32 {
    mins.iter()
        .zip(group_sums.chunks_exact(2))
        .map(|(&m, pair)| i32::from(m) * (i32::from(pair[0]) + i32::from(pair[1])))
        .sum()
}

#[cfg(target_arch = "x86_64")]
mod avx2 {
    use std::arch::x86_64::*;

    use super::{BLOCK_BYTES, Q4K};
    use crate::backend::cpu::activations::Q8KRow;
    use crate::backend::cpu::dot::Avx2TileDot;
    use crate::backend::cpu::dot::avx2::{
        Columns, broadcast_i16, f16_pair_at, k4_min_terms, k4_scales_and_mins, load_i8x32,
        load_u8x32, prefetch_ahead, q8k_columns, sums_minus_mins, zeros,
    };

    impl Avx2TileDot<Q8KRow<'_>> for Q4K {
        #[target_feature(enable = "avx2,fma,f16c")]
        unsafe fn dot_tile<const T: usize>(row: &[u8], tokens: &[Q8KRow<'_>; T]) -> [f32; T] {
            let n = row.len() / BLOCK_BYTES;
            let Columns {
                quants,
                scales,
                sums: group_sums,
            } = q8k_columns(tokens, n);
            let mut acc = zeros::<T>();
            let mut acc_mins = [_mm_setzero_ps(); T];
            let low_4 = _mm256_set1_epi8(0x0F);
            for (b, block) in row.chunks_exact(BLOCK_BYTES).enumerate() {
                prefetch_ahead(row, b * BLOCK_BYTES, BLOCK_BYTES);
                let (d, dmin) = f16_pair_at(block, 0);
                let (group_scales, mins) = k4_scales_and_mins(&block[4..16]);
                for t in 0..T {
                    let min_terms = k4_min_terms(mins, &group_sums[t][b]);
                    let dmin_y = _mm_set1_ps(dmin * scales[t][b]);
                    acc_mins[t] = _mm_fmadd_ps(dmin_y, min_terms, acc_mins[t]);
                }
                let mut isums = [_mm256_setzero_si256(); T];
                for (pair, bytes) in block[16..].chunks_exact(32).enumerate() {
                    let packed = load_u8x32(bytes);
                    let low = _mm256_and_si256(packed, low_4);
                    let high = _mm256_and_si256(_mm256_srli_epi16::<4>(packed), low_4);
                    let scale_low = broadcast_i16(group_scales, 2 * pair);
                    let scale_high = broadcast_i16(group_scales, 2 * pair + 1);
                    for t in 0..T {
                        let qy = &quants[t][b][64 * pair..];
                        let y_low = _mm256_maddubs_epi16(low, load_i8x32(qy));
                        let y_high = _mm256_maddubs_epi16(high, load_i8x32(&qy[32..]));
                        let sum = _mm256_add_epi32(
                            _mm256_madd_epi16(scale_low, y_low),
                            _mm256_madd_epi16(scale_high, y_high),
                        );
                        isums[t] = _mm256_add_epi32(isums[t], sum);
                    }
                }
                for t in 0..T {
                    let d_y = _mm256_set1_ps(d * scales[t][b]);
                    acc[t] = _mm256_fmadd_ps(d_y, _mm256_cvtepi32_ps(isums[t]), acc[t]);
                }
            }
            sums_minus_mins(acc, acc_mins)
        }
    }
}
