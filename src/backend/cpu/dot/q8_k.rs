//! Q8_K weights: 256 values in 292 bytes, `d: f32 @0, qs: [i8; 256] @4, bsums: [i16; 16]
//! @260`, each value `d * q`. ggml only uses Q8_K for activations, so no model stores
//! weights in it and the scalar kernel is enough.

use super::RowDot;
use crate::backend::cpu::activations::Q8KRow;

const BLOCK_BYTES: usize = 292;

pub(super) struct Q8K;

impl RowDot<Q8KRow<'_>> for Q8K {
    fn dot(row: &[u8], token: &Q8KRow<'_>) -> f32 {
        let blocks = row
            .chunks_exact(BLOCK_BYTES)
            .zip(token.quants)
            .zip(token.scales);
        let mut sum = 0.0;
        for ((block, qy), &dy) in blocks {
            let d = f32::from_le_bytes([block[0], block[1], block[2], block[3]]);
            let isum: i32 = block[4..260]
                .iter()
                .zip(qy)
                .map(|(&q, &y)| i32::from(q as i8) * i32::from(y))
                .sum();
            sum += (d * dy) * isum as f32;
        }
        sum
    }
}
