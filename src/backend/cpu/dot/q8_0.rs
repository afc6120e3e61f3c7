//! Q8_0 weights: 32 values in 34 bytes, `d: f16 @0, qs: [i8; 32] @2`, each value `q * d`.

use super::{RowDot, f16_at};
use crate::backend::cpu::activations::Q8Row;

const BLOCK_BYTES: usize = 34;

pub(super) struct Q8_0;

impl RowDot<Q8Row<'_>> for Q8_0 {
    fn dot(row: &[u8], token: &Q8Row<'_>) -> f32 {
        dot_i8_blocks::<BLOCK_BYTES>(row, 2, token)
    }
}

/// Blocks of a scale `d: f16 @0` and 32 signed quants at `quants_at`: Q8_0, and Q8_1 (whose
/// cached sum `s @2` a weight has no use for).
pub(super) fn dot_i8_blocks<const BLOCK_BYTES: usize>(
    row: &[u8],
    quants_at: usize,
    token: &Q8Row<'_>,
) -> f32 {
    let blocks = row
        .chunks_exact(BLOCK_BYTES)
        .zip(token.quants)
        .zip(token.scales);
    let mut sum = 0.0;
    for ((block, qy), &dy) in blocks {
        let isum: i32 = block[quants_at..]
            .iter()
            .zip(qy)
            .map(|(&q, &y)| i32::from(q as i8) * i32::from(y))
            .sum();
        sum += (f16_at(block, 0) * dy) * isum as f32;
    }
    sum
}

#[cfg(target_arch = "x86_64")]
mod avx2 {

    use super::{BLOCK_BYTES, Q8_0};
    use crate::backend::cpu::activations::Q8Row;
    use crate::backend::cpu::dot::Avx2TileDot;
    use crate::backend::cpu::dot::avx2::{f16_at, load_u8x32, signed_blocks_tile};

    impl Avx2TileDot<Q8Row<'_>> for Q8_0 {
        #[target_feature(enable = "avx2,fma,f16c")]
        unsafe fn dot_tile<const T: usize>(row: &[u8], tokens: &[Q8Row<'_>; T]) -> [f32; T] {
            signed_blocks_tile::<BLOCK_BYTES, T>(row, tokens, |block| {
                (f16_at(block, 0), load_u8x32(&block[2..]))
            })
        }
    }
}
