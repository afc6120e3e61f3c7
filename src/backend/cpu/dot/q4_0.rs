//! Q4_0 weights: 32 values in 18 bytes, `d: f16 @0, qs: [u8; 16] @2`, each value
//! `(q - 8) * d` with `q` in 0..16.

use super::{RowDot, f16_at};
use crate::backend::cpu::activations::Q8Row;

const BLOCK_BYTES: usize = 18;

pub(super) struct Q4_0;

impl RowDot<Q8Row<'_>> for Q4_0 {
    fn dot(row: &[u8], token: &Q8Row<'_>) -> f32 {
        let blocks = row
            .chunks_exact(BLOCK_BYTES)
            .zip(token.quants)
            .zip(token.scales);
        let mut sum = 0.0;
        for ((block, qy), &dy) in blocks {
            let (qy_low, qy_high) = qy.split_at(16);
            let isum: i32 = block[2..]
                .iter()
                .zip(qy_low.iter().zip(qy_high))
                .map(|(&q, (&y0, &y1))| {
                    (i32::from(q & 0x0F) - 8) * i32::from(y0)
                        + (i32::from(q >> 4) - 8) * i32::from(y1)
                })
                .sum();
            sum += (f16_at(block, 0) * dy) * isum as f32;
        }
        sum
    }
}

#[cfg(target_arch = "x86_64")]
mod avx2 {
    use std::arch::x86_64::*;

    use super::{BLOCK_BYTES, Q4_0};
    use crate::backend::cpu::activations::Q8Row;
    use crate::backend::cpu::dot::Avx2TileDot;
    use crate::backend::cpu::dot::avx2::{f16_at, signed_blocks_tile, unpack_nibbles};

    impl Avx2TileDot<Q8Row<'_>> for Q4_0 {
        #[target_feature(enable = "avx2,fma,f16c")]
        unsafe fn dot_tile<const T: usize>(row: &[u8], tokens: &[Q8Row<'_>; T]) -> [f32; T] {
            signed_blocks_tile::<BLOCK_BYTES, T>(row, tokens, |block| {
                let values = _mm256_sub_epi8(unpack_nibbles(&block[2..]), _mm256_set1_epi8(8));
                (f16_at(block, 0), values)
            })
        }
    }
}
