//! Q5_K weights: 256 values in 176 bytes, `d: f16 @0, dmin: f16 @2, scales: [u8; 12] @4`
//! (as Q4_K), `qh: [u8; 32] @16` (bit `j` of byte `l`: the fifth bit of value `l` of group
//! `j`), `qs: [u8; 128] @48` (the low 4 bits, as Q4_K).

use super::k_scales::k4_scales_and_mins;
use super::q4_k::min_sum;
use super::{RowDot, f16_at};
use crate::backend::cpu::activations::Q8KRow;

const BLOCK_BYTES: usize = 176;

pub(super) struct Q5K;

impl RowDot<Q8KRow<'_>> for Q5K {
    fn dot(row: &[u8], token: &Q8KRow<'_>) -> f32 {
        let blocks = row
            .chunks_exact(BLOCK_BYTES)
            .zip(token.quants)
            .zip(token.scales.iter().zip(token.group_sums));
        let mut sum = 0.0;
        for ((block, qy), (&dy, group_sums)) in blocks {
            let scales_and_mins = k4_scales_and_mins(&block[4..16]);
            let (scales, mins) = scales_and_mins.split_at(8);
            let (qh, qs) = (&block[16..48], &block[48..]);
            let mut isum = 0;
            for (j, (qy, &scale)) in qy.chunks_exact(32).zip(scales).enumerate() {
                let (bytes, shift) = (&qs[32 * (j / 2)..][..32], 4 * (j % 2));
                let group: i32 = bytes
                    .iter()
                    .zip(qh)
                    .zip(qy)
                    .map(|((&q, &h), &y)| {
                        let q = ((q >> shift) & 0x0F) | (((h >> j) & 1) << 4);
                        i32::from(q) * i32::from(y)
                    })
                    .sum();
                isum += i32::from(scale) * group;
            }
            let min_sum = min_sum(mins, group_sums);
            sum += (dy * f16_at(block, 0)) * isum as f32 - (dy * f16_at(block, 2)) * min_sum as f32;
        }
        sum
    }
}

#[cfg(target_arch = "x86_64")]
mod avx2 {
    use std::arch::x86_64::*;

    use super::{BLOCK_BYTES, Q5K};
    use crate::backend::cpu::activations::Q8KRow;
    use crate::backend::cpu::dot::Avx2TileDot;
    use crate::backend::cpu::dot::avx2::{
        Columns, broadcast_i16, f16_pair_at, k4_min_terms, k4_scales_and_mins, load_i8x32,
        load_u8x32, prefetch_ahead, q8k_columns, sums_minus_mins, zeros,
    };

    impl Avx2TileDot<Q8KRow<'_>> for Q5K {
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
            let fifth_bit = _mm256_set1_epi8(0x10);
            for (b, block) in row.chunks_exact(BLOCK_BYTES).enumerate() {
                prefetch_ahead(row, b * BLOCK_BYTES, BLOCK_BYTES);
                let (d, dmin) = f16_pair_at(block, 0);
                let (group_scales, mins) = k4_scales_and_mins(&block[4..16]);
                for t in 0..T {
                    let min_terms = k4_min_terms(mins, &group_sums[t][b]);
                    let dmin_y = _mm_set1_ps(dmin * scales[t][b]);
                    acc_mins[t] = _mm_fmadd_ps(dmin_y, min_terms, acc_mins[t]);
                }
                let high_bits = load_u8x32(&block[16..48]);
                let mut isums = [_mm256_setzero_si256(); T];
                for (pair, bytes) in block[48..].chunks_exact(32).enumerate() {
                    let packed = load_u8x32(bytes);
                    // Bits 2 * pair and 2 * pair + 1 of `qh` complete the two groups.
                    let fifth = |group: usize| {
                        let bit = _mm256_set1_epi8(1 << group);
                        let set = _mm256_cmpeq_epi8(_mm256_and_si256(high_bits, bit), bit);
                        _mm256_and_si256(set, fifth_bit)
                    };
                    let low = _mm256_or_si256(_mm256_and_si256(packed, low_4), fifth(2 * pair));
                    let high = _mm256_or_si256(
                        _mm256_and_si256(_mm256_srli_epi16::<4>(packed), low_4),
                        fifth(2 * pair + 1),
                    );
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
