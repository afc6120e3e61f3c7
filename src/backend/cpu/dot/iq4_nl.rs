//! IQ4_NL weights: 32 values in 18 bytes, `d: f16 @0, qs: [u8; 16] @2` (nibbles laid out as
//! in Q4_0), each value `d * LEVELS[q]`: 4-bit indices into a fixed table of levels, denser
//! near zero where weights cluster.

use super::{RowDot, f16_at};
use crate::backend::cpu::activations::Q8Row;

const BLOCK_BYTES: usize = 18;

/// ggml's `kvalues_iq4nl`.
pub(super) const LEVELS: [i8; 16] = [
    -127, -104, -83, -65, -49, -35, -22, -10, 1, 13, 25, 38, 53, 69, 89, 113,
];

pub(super) struct Iq4Nl;

impl RowDot<Q8Row<'_>> for Iq4Nl {
    fn dot(row: &[u8], token: &Q8Row<'_>) -> f32 {
        let blocks = row
            .chunks_exact(BLOCK_BYTES)
            .zip(token.quants)
            .zip(token.scales);
        let mut sum = 0.0;
        for ((block, qy), &dy) in blocks {
            let isum = level_dot(&LEVELS, &block[2..], qy);
            sum += (f16_at(block, 0) * dy) * isum as f32;
        }
        sum
    }
}

/// `Σ levels[q] * qy` over the 32 nibble indices in `qs` (value `j` in the low nibble of
/// byte `j`, value `j + 16` in its high nibble).
#[inline]
pub(super) fn level_dot(levels: &[i8; 16], qs: &[u8], qy: &[i8]) -> i32 {
    let (qy_low, qy_high) = qy.split_at(16);
    qs.iter()
        .zip(qy_low.iter().zip(qy_high))
        .map(|(&q, (&y0, &y1))| {
            i32::from(levels[usize::from(q & 0x0F)]) * i32::from(y0)
                + i32::from(levels[usize::from(q >> 4)]) * i32::from(y1)
        })
        .sum()
}

#[cfg(target_arch = "x86_64")]
mod avx2 {
    use std::arch::x86_64::*;

    use super::{BLOCK_BYTES, Iq4Nl, LEVELS};
    use crate::backend::cpu::activations::Q8Row;
    use crate::backend::cpu::dot::Avx2TileDot;
    use crate::backend::cpu::dot::avx2::{
        f16_at, look_up_levels, signed_blocks_tile, unpack_nibbles,
    };

    impl Avx2TileDot<Q8Row<'_>> for Iq4Nl {
        #[target_feature(enable = "avx2,fma,f16c")]
        unsafe fn dot_tile<const T: usize>(row: &[u8], tokens: &[Q8Row<'_>; T]) -> [f32; T] {
            let levels = look_up_levels(&LEVELS);
            signed_blocks_tile::<BLOCK_BYTES, T>(row, tokens, |block| {
                let values = _mm256_shuffle_epi8(levels, unpack_nibbles(&block[2..]));
                (f16_at(block, 0), values)
            })
        }
    }
}
