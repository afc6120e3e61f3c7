//! Q5_1 weights: 32 values in 24 bytes, `d: f16 @0, m: f16 @2, qh: u32 @4, qs: [u8; 16] @8`,
//! each value `q * d + m` with `q` in 0..32 (bits as in Q5_0). The min term works as in
//! Q4_1.

use super::q5_0::five_bit_quants;
use super::{RowDot, f16_at};
use crate::backend::cpu::activations::Q8Row;

const BLOCK_BYTES: usize = 24;

/// `VNNI`: as [`super::q4_1::Q4_1`]'s.
pub(super) struct Q5_1<const VNNI: bool = false>;

impl<const VNNI: bool> RowDot<Q8Row<'_>> for Q5_1<VNNI> {
    fn dot(row: &[u8], token: &Q8Row<'_>) -> f32 {
        let blocks = row
            .chunks_exact(BLOCK_BYTES)
            .zip(token.quants)
            .zip(token.scales.iter().zip(token.scaled_sums));
        let mut sum = 0.0;
        for ((block, qy), (&dy, &sy)) in blocks {
            let quants = five_bit_quants(block, 4);
            let isum: i32 = quants
                .iter()
                .zip(qy)
                .map(|(&q, &y)| i32::from(q) * i32::from(y))
                .sum();
            sum += (f16_at(block, 0) * dy) * isum as f32 + f16_at(block, 2) * sy;
        }
        sum
    }
}

#[cfg(target_arch = "x86_64")]
mod avx2 {
    use std::arch::x86_64::*;

    use super::{BLOCK_BYTES, Q5_1};
    use crate::backend::cpu::activations::Q8Row;
    use crate::backend::cpu::dot::Avx2TileDot;
    use crate::backend::cpu::dot::avx2::{
        bits_to_bytes, f16_pair_at, unpack_nibbles, unsigned_blocks_tile,
    };

    impl<const VNNI: bool> Avx2TileDot<Q8Row<'_>> for Q5_1<VNNI> {
        #[target_feature(enable = "avx2,fma,f16c")]
        unsafe fn dot_tile<const T: usize>(row: &[u8], tokens: &[Q8Row<'_>; T]) -> [f32; T] {
            unsigned_blocks_tile::<BLOCK_BYTES, T, VNNI>(row, tokens, |block| {
                let qh = u32::from_le_bytes([block[4], block[5], block[6], block[7]]);
                let fifth_bits = _mm256_and_si256(bits_to_bytes(qh), _mm256_set1_epi8(0x10));
                let values = _mm256_or_si256(unpack_nibbles(&block[8..]), fifth_bits);
                let (d, m) = f16_pair_at(block, 0);
                (d, m, values)
            })
        }
    }
}
