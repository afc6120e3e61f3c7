//! Q6_K weights: 256 values in 210 bytes, `ql: [u8; 128] @0` (low 4 bits), `qh: [u8; 64] @128`
//! (top 2 bits), `scales: [i8; 16] @192` (one per group of 16), `d: f16 @208`; a value is
//! `d * sc * (q - 32)`.
//!
//! Each 128-value half reads 64 bytes of `ql` and 32 of `qh`: its values 0..32 come from
//! `ql[0..32]` low nibbles and `qh` bits 0-1, 32..64 from `ql[32..64]` low nibbles and bits
//! 2-3, 64..96 from `ql[0..32]` high nibbles and bits 4-5, 96..128 from `ql[32..64]` high
//! nibbles and bits 6-7. The `- 32` is taken out of the sum through the activations' group
//! sums: `Σ sc * (q - 32) * qy = Σ sc * q * qy - 32 * Σ_groups sc * Σ qy`.

use super::{RowDot, f16_at};
use crate::backend::cpu::activations::Q8KRow;

const BLOCK_BYTES: usize = 210;

pub(super) struct Q6K;

impl RowDot<Q8KRow<'_>> for Q6K {
    fn dot(row: &[u8], token: &Q8KRow<'_>) -> f32 {
        let blocks = row
            .chunks_exact(BLOCK_BYTES)
            .zip(token.quants)
            .zip(token.scales);
        let mut sum = 0.0;
        for ((block, qy), &dy) in blocks {
            let (ql, qh, scales) = (&block[..128], &block[128..192], &block[192..208]);
            let mut isum = 0;
            for (i, (qy, &scale)) in qy.chunks_exact(16).zip(scales).enumerate() {
                let (half, quarter, part) = (i / 8, (i / 2) % 4, i % 2);
                let low = &ql[64 * half + 32 * (quarter % 2) + 16 * part..][..16];
                let high = &qh[32 * half + 16 * part..][..16];
                let (low_shift, high_shift) = (4 * (quarter / 2), 2 * quarter);
                let group: i32 = low
                    .iter()
                    .zip(high)
                    .zip(qy)
                    .map(|((&lo, &hi), &y)| {
                        let q = ((lo >> low_shift) & 0x0F) | (((hi >> high_shift) & 3) << 4);
                        (i32::from(q) - 32) * i32::from(y)
                    })
                    .sum();
                isum += i32::from(scale as i8) * group;
            }
            sum += (f16_at(block, 208) * dy) * isum as f32;
        }
        sum
    }
}

#[cfg(target_arch = "x86_64")]
mod avx2 {
    use std::arch::x86_64::*;

    use super::{BLOCK_BYTES, Q6K};
    use crate::backend::cpu::activations::Q8KRow;
    use crate::backend::cpu::dot::Avx2TileDot;
    use crate::backend::cpu::dot::avx2::{
        Columns, f16_at, group_pair_scales, hsums, load_i8x32, load_i16x16, load_u8x16, load_u8x32,
        prefetch_ahead, q8k_columns, zeros,
    };

    impl Avx2TileDot<Q8KRow<'_>> for Q6K {
        #[target_feature(enable = "avx2,fma,f16c")]
        unsafe fn dot_tile<const T: usize>(row: &[u8], tokens: &[Q8KRow<'_>; T]) -> [f32; T] {
            let n = row.len() / BLOCK_BYTES;
            let Columns {
                quants,
                scales,
                sums: group_sums,
            } = q8k_columns(tokens, n);
            let mut acc = zeros::<T>();
            let low_4 = _mm256_set1_epi8(0x0F);
            for (b, block) in row.chunks_exact(BLOCK_BYTES).enumerate() {
                prefetch_ahead(row, b * BLOCK_BYTES, BLOCK_BYTES);
                let (ql, qh) = (&block[..128], &block[128..192]);
                let group_scales = load_u8x16(&block[192..208]);
                // Start each token's sum at -32 * Σ sc * Σ qy.
                let scales16 = _mm256_cvtepi8_epi16(group_scales);
                let mut isums = [_mm256_setzero_si256(); T];
                for (isum, group_sums) in isums.iter_mut().zip(group_sums) {
                    let offsets = _mm256_madd_epi16(scales16, load_i16x16(&group_sums[b]));
                    *isum = _mm256_sub_epi32(*isum, _mm256_slli_epi32::<5>(offsets));
                }
                for half in 0..2 {
                    let low_a = load_u8x32(&ql[64 * half..]);
                    let low_b = load_u8x32(&ql[64 * half + 32..]);
                    let high = load_u8x32(&qh[32 * half..]);
                    // Each quarter's two bits moved to bits 4-5 of its byte; the masks
                    // keep the 16-bit shifts from carrying bits across bytes.
                    let mask = |bits: i8| _mm256_and_si256(high, _mm256_set1_epi8(bits));
                    let quarters = [
                        _mm256_or_si256(
                            _mm256_and_si256(low_a, low_4),
                            _mm256_slli_epi16::<4>(mask(0x03)),
                        ),
                        _mm256_or_si256(
                            _mm256_and_si256(low_b, low_4),
                            _mm256_slli_epi16::<2>(mask(0x0C)),
                        ),
                        _mm256_or_si256(
                            _mm256_and_si256(_mm256_srli_epi16::<4>(low_a), low_4),
                            mask(0x30),
                        ),
                        _mm256_or_si256(
                            _mm256_and_si256(_mm256_srli_epi16::<4>(low_b), low_4),
                            _mm256_srli_epi16::<2>(mask(0xC0_u8 as i8)),
                        ),
                    ];
                    for (quarter, values) in quarters.into_iter().enumerate() {
                        let scale = group_pair_scales(group_scales, 8 * half + 2 * quarter);
                        for t in 0..T {
                            let qy = &quants[t][b][128 * half + 32 * quarter..];
                            let products = _mm256_maddubs_epi16(values, load_i8x32(qy));
                            let scaled = _mm256_madd_epi16(scale, products);
                            isums[t] = _mm256_add_epi32(isums[t], scaled);
                        }
                    }
                }
                let d = f16_at(block, 208);
                for t in 0..T {
                    let d_y = _mm256_set1_ps(d * scales[t][b]);
                    acc[t] = _mm256_fmadd_ps(d_y, _mm256_cvtepi32_ps(isums[t]), acc[t]);
                }
            }
            hsums(acc)
        }
    }
}
