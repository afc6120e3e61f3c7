//! IQ4_XS weights: 256 values in 136 bytes, `d: f16 @0, scales_h: u16 @2, scales_l: [u8; 4]
//! @4, qs: [u8; 128] @8`. Eight groups of 32, each laid out as an IQ4_NL block's quants with
//! a 6-bit scale: low 4 bits in nibble `i % 2` of `scales_l[i / 2]`, top 2 bits at bit `2 * i`
//! of `scales_h`; a value is `d * (scale - 32) * LEVELS[q]`.

use super::iq4_nl::{LEVELS, level_dot};
use super::{RowDot, f16_at};
use crate::backend::cpu::activations::Q8KRow;

const BLOCK_BYTES: usize = 136;

pub(super) struct Iq4Xs;

impl RowDot<Q8KRow<'_>> for Iq4Xs {
    fn dot(row: &[u8], token: &Q8KRow<'_>) -> f32 {
        let blocks = row
            .chunks_exact(BLOCK_BYTES)
            .zip(token.quants)
            .zip(token.scales);
        let mut sum = 0.0;
        for ((block, qy), &dy) in blocks {
            let scales_h = u16::from_le_bytes([block[2], block[3]]);
            let (scales_l, qs) = (&block[4..8], &block[8..]);
            let mut isum = 0;
            for (i, (bytes, qy)) in qs.chunks_exact(16).zip(qy.chunks_exact(32)).enumerate() {
                let low = (scales_l[i / 2] >> (4 * (i % 2))) & 0x0F;
                let high = ((scales_h >> (2 * i)) & 3) as u8;
                let scale = i32::from(low | (high << 4)) - 32;
                isum += scale * level_dot(&LEVELS, bytes, qy);
            }
            sum += (f16_at(block, 0) * dy) * isum as f32;
        }
        sum
    }
}

#[cfg(target_arch = "x86_64")]
mod avx2 {
    use std::arch::x86_64::*;

    use super::{BLOCK_BYTES, Iq4Xs};
    use crate::backend::cpu::activations::Q8KRow;
    use crate::backend::cpu::dot::Avx2TileDot;
    use crate::backend::cpu::dot::avx2::{
        Columns, f16_at, hsums, load_i8x32, look_up_levels, prefetch_ahead, q8k_columns,
        unpack_nibbles, zeros,
    };
    use crate::backend::cpu::dot::iq4_nl::LEVELS;

    impl Avx2TileDot<Q8KRow<'_>> for Iq4Xs {
        #[target_feature(enable = "avx2,fma,f16c")]
        unsafe fn dot_tile<const T: usize>(row: &[u8], tokens: &[Q8KRow<'_>; T]) -> [f32; T] {
            let n = row.len() / BLOCK_BYTES;
            let Columns { quants, scales, .. } = q8k_columns(tokens, n);
            let mut acc = zeros::<T>();
            let levels = look_up_levels(&LEVELS);
            for (b, block) in row.chunks_exact(BLOCK_BYTES).enumerate() {
                prefetch_ahead(row, b * BLOCK_BYTES, BLOCK_BYTES);
                let scales_h = u16::from_le_bytes([block[2], block[3]]);
                let mut isums = [_mm256_setzero_si256(); T];
                for (group, bytes) in block[8..].chunks_exact(16).enumerate() {
                    let low = (block[4 + group / 2] >> (4 * (group % 2))) & 0x0F;
                    let high = ((scales_h >> (2 * group)) & 3) as u8;
                    let scale = _mm256_set1_epi16(i16::from(low | (high << 4)) - 32);
                    let values = _mm256_shuffle_epi8(levels, unpack_nibbles(bytes));
                    // |values| against signed activations, as in the legacy kernels; the
                    // group scale takes the place of the pairwise sum's ones.
                    let abs_values = _mm256_sign_epi8(values, values);
                    for t in 0..T {
                        let qy = load_i8x32(&quants[t][b][32 * group..]);
                        let products =
                            _mm256_maddubs_epi16(abs_values, _mm256_sign_epi8(qy, values));
                        isums[t] = _mm256_add_epi32(isums[t], _mm256_madd_epi16(scale, products));
                    }
                }
                let d = f16_at(block, 0);
                for t in 0..T {
                    let d_y = _mm256_set1_ps(d * scales[t][b]);
                    acc[t] = _mm256_fmadd_ps(d_y, _mm256_cvtepi32_ps(isums[t]), acc[t]);
                }
            }
            hsums(acc)
        }
    }
}
