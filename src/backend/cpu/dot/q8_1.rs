//! Q8_1 weights: 32 values in 36 bytes, `d: f16 @0, s: f16 @2, qs: [i8; 32] @4`, each value
//! `q * d`. ggml only uses Q8_1 for activations, so no model stores weights in it and the
//! scalar kernel is enough.

use super::RowDot;
use super::q8_0::dot_i8_blocks;
use crate::backend::cpu::activations::Q8Row;

pub(super) struct Q8_1;

impl RowDot<Q8Row<'_>> for Q8_1 {
    fn dot(row: &[u8], token: &Q8Row<'_>) -> f32 {
        dot_i8_blocks::<36>(row, 4, token)
    }
}
