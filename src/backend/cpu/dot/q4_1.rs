//! Q4_1 weights: 32 values in 20 bytes, `d: f16 @0, m: f16 @2, qs: [u8; 16] @4`, each value
//! `q * d + m` with `q` in 0..16. Against Q8 activations `dy * qy` a block contributes
//! `d * dy * Σ q * qy + m * (dy * Σ qy)`: the min term comes from the block's scaled sum.

use super::{RowDot, f16_at};
use crate::backend::cpu::activations::Q8Row;

const BLOCK_BYTES: usize = 20;

/// `VNNI`: the SIMD kernel sums its products with AVX-512 VNNI (see
/// [`super::avx2::dot_u8_i8_vnni`]); the scalar reference is the same either way.
pub(super) struct Q4_1<const VNNI: bool = false>;

impl<const VNNI: bool> RowDot<Q8Row<'_>> for Q4_1<VNNI> {
    fn dot(row: &[u8], token: &Q8Row<'_>) -> f32 {
        let blocks = row
            .chunks_exact(BLOCK_BYTES)
            .zip(token.quants)
            .zip(token.scales.iter().zip(token.scaled_sums));
        let mut sum = 0.0;
        for ((block, qy), (&dy, &sy)) in blocks {
            let (qy_low, qy_high) = qy.split_at(16);
            let isum: i32 = block[4..]
                .iter()
                .zip(qy_low.iter().zip(qy_high))
                .map(|(&q, (&y0, &y1))| {
                    i32::from(q & 0x0F) * i32::from(y0) + i32::from(q >> 4) * i32::from(y1)
                })
                .sum();
            sum += (f16_at(block, 0) * dy) * isum as f32 + f16_at(block, 2) * sy;
        }
        sum
    }
}

#[cfg(target_arch = "x86_64")]
mod avx2 {
    use super::{BLOCK_BYTES, Q4_1};
    use crate::backend::cpu::activations::Q8Row;
    use crate::backend::cpu::dot::Avx2TileDot;
    use crate::backend::cpu::dot::avx2::{f16_pair_at, unpack_nibbles, unsigned_blocks_tile};

    impl<const VNNI: bool> Avx2TileDot<Q8Row<'_>> for Q4_1<VNNI> {
        #[target_feature(enable = "avx2,fma,f16c")]
        unsafe fn dot_tile<const T: usize>(row: &[u8], tokens: &[Q8Row<'_>; T]) -> [f32; T] {
            unsigned_blocks_tile::<BLOCK_BYTES, T, VNNI>(row, tokens, |block| {
                let (d, m) = f16_pair_at(block, 0);
                (d, m, unpack_nibbles(&block[4..]))
            })
        }
    }
}
