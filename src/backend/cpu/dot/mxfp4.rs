//! MXFP4 weights (OCP Microscaling): 32 values in 17 bytes, `e: u8 @0` (an E8M0 power-of-two
//! scale), `qs: [u8; 16] @1` (nibbles as in Q4_0, each an E2M1 code), each value
//! `E2M1[q] * 2^(e - 127)`.

use super::RowDot;
use super::iq4_nl::level_dot;
use crate::backend::cpu::activations::Q8Row;

const BLOCK_BYTES: usize = 17;

/// The E2M1 values by 4-bit code (sign bit on top), doubled to integers (ggml's
/// `kvalues_mxfp4`); [`half_scale`] halves the scale to make up for it.
pub(super) const LEVELS: [i8; 16] = [0, 1, 2, 3, 4, 6, 8, 12, 0, -1, -2, -3, -4, -6, -8, -12];

pub(super) struct Mxfp4;

impl RowDot<Q8Row<'_>> for Mxfp4 {
    fn dot(row: &[u8], token: &Q8Row<'_>) -> f32 {
        let blocks = row
            .chunks_exact(BLOCK_BYTES)
            .zip(token.quants)
            .zip(token.scales);
        let mut sum = 0.0;
        for ((block, qy), &dy) in blocks {
            let isum = level_dot(&LEVELS, &block[1..], qy);
            sum += (dy * half_scale(block[0])) * isum as f32;
        }
        sum
    }
}

/// Half the E8M0 scale `2^(e - 127)`, built from its bits (ggml's `GGML_E8M0_TO_FP32_HALF`);
/// `e` 0 and 1 give the f32 subnormals 2^-128 and 2^-127.
#[inline]
pub(super) fn half_scale(e: u8) -> f32 {
    if e < 2 {
        f32::from_bits(0x0020_0000 << e)
    } else {
        f32::from_bits(u32::from(e - 1) << 23)
    }
}

#[cfg(target_arch = "x86_64")]
mod avx2 {
    use std::arch::x86_64::*;

    use super::{BLOCK_BYTES, LEVELS, Mxfp4, half_scale};
    use crate::backend::cpu::activations::Q8Row;
    use crate::backend::cpu::dot::Avx2TileDot;
    use crate::backend::cpu::dot::avx2::{look_up_levels, signed_blocks_tile, unpack_nibbles};

    impl Avx2TileDot<Q8Row<'_>> for Mxfp4 {
        #[target_feature(enable = "avx2,fma,f16c")]
        unsafe fn dot_tile<const T: usize>(row: &[u8], tokens: &[Q8Row<'_>; T]) -> [f32; T] {
            let levels = look_up_levels(&LEVELS);
            signed_blocks_tile::<BLOCK_BYTES, T>(row, tokens, |block| {
                let values = _mm256_shuffle_epi8(levels, unpack_nibbles(&block[1..]));
                (half_scale(block[0]), values)
            })
        }
    }
}
