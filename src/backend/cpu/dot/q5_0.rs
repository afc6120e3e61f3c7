//! Q5_0 weights: 32 values in 22 bytes, `d: f16 @0, qh: u32 @2, qs: [u8; 16] @6`, each value
//! `(q - 16) * d` with `q` in 0..32: its low 4 bits in `qs` (as Q4_0), bit `j` of `qh` the
//! fifth bit of value `j`.

use super::{RowDot, f16_at};
use crate::backend::cpu::activations::Q8Row;

const BLOCK_BYTES: usize = 22;

pub(super) struct Q5_0;

impl RowDot<Q8Row<'_>> for Q5_0 {
    fn dot(row: &[u8], token: &Q8Row<'_>) -> f32 {
        let blocks = row
            .chunks_exact(BLOCK_BYTES)
            .zip(token.quants)
            .zip(token.scales);
        let mut sum = 0.0;
        for ((block, qy), &dy) in blocks {
            let quants = five_bit_quants(block, 2);
            let isum: i32 = quants
                .iter()
                .zip(qy)
                .map(|(&q, &y)| (i32::from(q) - 16) * i32::from(y))
                .sum();
            sum += (f16_at(block, 0) * dy) * isum as f32;
        }
        sum
    }
}

/// The 32 5-bit values of a Q5_0 or Q5_1 block whose `qh` sits at `qh_at` and `qs` right
/// after it, in value order.
#[inline]
pub(super) fn five_bit_quants(block: &[u8], qh_at: usize) -> [u8; 32] {
    let qh = u32::from_le_bytes([
        block[qh_at],
        block[qh_at + 1],
        block[qh_at + 2],
        block[qh_at + 3],
    ]);
    let qs = &block[qh_at + 4..qh_at + 20];
    std::array::from_fn(|j| {
        let nibble = if j < 16 {
            qs[j] & 0x0F
        } else {
            qs[j - 16] >> 4
        };
        nibble | ((((qh >> j) & 1) as u8) << 4)
    })
}

#[cfg(target_arch = "x86_64")]
mod avx2 {
    use std::arch::x86_64::*;

    use super::{BLOCK_BYTES, Q5_0};
    use crate::backend::cpu::activations::Q8Row;
    use crate::backend::cpu::dot::Avx2TileDot;
    use crate::backend::cpu::dot::avx2::{
        bits_to_bytes, f16_at, signed_blocks_tile, unpack_nibbles,
    };

    impl Avx2TileDot<Q8Row<'_>> for Q5_0 {
        #[target_feature(enable = "avx2,fma,f16c")]
        unsafe fn dot_tile<const T: usize>(row: &[u8], tokens: &[Q8Row<'_>; T]) -> [f32; T] {
            signed_blocks_tile::<BLOCK_BYTES, T>(row, tokens, |block| {
                let qh = u32::from_le_bytes([block[2], block[3], block[4], block[5]]);
                // `q - 16` as a byte is the nibble with 0xF0 set where the fifth bit is clear.
                let minus_16 = _mm256_andnot_si256(bits_to_bytes(qh), _mm256_set1_epi8(-16));
                let values = _mm256_or_si256(unpack_nibbles(&block[6..]), minus_16);
                (f16_at(block, 0), values)
            })
        }
    }
}
