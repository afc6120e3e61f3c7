//! The original 32-value block formats: Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, Q8_1.
//!
//! In the 4- and 5-bit formats byte `j` of `qs` holds value `j` in its low nibble and value
//! `j + 16` in its high nibble.

use super::f16_at;

const QK: usize = 32;

/// `d: f16 @0, qs: [u8; 16] @2`; `y = (q - 8) * d`.
pub(super) fn dequantize_row_q4_0(blocks: &[u8], out: &mut [f32]) {
    for (block, y) in blocks.chunks_exact(18).zip(out.chunks_exact_mut(QK)) {
        let d = f16_at(block, 0);
        let (lo, hi) = y.split_at_mut(QK / 2);
        for ((&q, lo), hi) in block[2..].iter().zip(lo).zip(hi) {
            *lo = f32::from(i16::from(q & 0x0F) - 8) * d;
            *hi = f32::from(i16::from(q >> 4) - 8) * d;
        }
    }
}

/// `d: f16 @0, m: f16 @2, qs: [u8; 16] @4`; `y = q * d + m`.
pub(super) fn dequantize_row_q4_1(blocks: &[u8], out: &mut [f32]) {
    for (block, y) in blocks.chunks_exact(20).zip(out.chunks_exact_mut(QK)) {
        let d = f16_at(block, 0);
        let m = f16_at(block, 2);
        let (lo, hi) = y.split_at_mut(QK / 2);
        for ((&q, lo), hi) in block[4..].iter().zip(lo).zip(hi) {
            *lo = f32::from(q & 0x0F) * d + m;
            *hi = f32::from(q >> 4) * d + m;
        }
    }
}

/// `d: f16 @0, qh: u32 @2, qs: [u8; 16] @6`; bit `j` of `qh` is the fifth bit of value `j`;
/// `y = (q - 16) * d`.
pub(super) fn dequantize_row_q5_0(blocks: &[u8], out: &mut [f32]) {
    for (block, y) in blocks.chunks_exact(22).zip(out.chunks_exact_mut(QK)) {
        let d = f16_at(block, 0);
        let quants = five_bit_quants(u32_at(block, 2), &block[6..]);
        for (y, q) in y.iter_mut().zip(quants) {
            *y = f32::from(i16::from(q) - 16) * d;
        }
    }
}

/// `d: f16 @0, m: f16 @2, qh: u32 @4, qs: [u8; 16] @8`; `y = q * d + m`.
pub(super) fn dequantize_row_q5_1(blocks: &[u8], out: &mut [f32]) {
    for (block, y) in blocks.chunks_exact(24).zip(out.chunks_exact_mut(QK)) {
        let d = f16_at(block, 0);
        let m = f16_at(block, 2);
        let quants = five_bit_quants(u32_at(block, 4), &block[8..]);
        for (y, q) in y.iter_mut().zip(quants) {
            *y = f32::from(q) * d + m;
        }
    }
}

/// `d: f16 @0, qs: [i8; 32] @2`; `y = q * d`.
pub(super) fn dequantize_row_q8_0(blocks: &[u8], out: &mut [f32]) {
    for (block, y) in blocks.chunks_exact(34).zip(out.chunks_exact_mut(QK)) {
        scale_i8(f16_at(block, 0), &block[2..], y);
    }
}

/// `d: f16 @0, s: f16 @2, qs: [i8; 32] @4`; `y = q * d`. `s` caches `d * sum(q)` for dot
/// products and plays no part here. ggml itself has no Q8_1 dequantizer (the type only
/// carries activations), so this one follows Q8_0.
pub(super) fn dequantize_row_q8_1(blocks: &[u8], out: &mut [f32]) {
    for (block, y) in blocks.chunks_exact(36).zip(out.chunks_exact_mut(QK)) {
        scale_i8(f16_at(block, 0), &block[4..], y);
    }
}

/// Joins the low 4 bits in `qs` with the fifth bits in `qh`, in value order.
fn five_bit_quants(qh: u32, qs: &[u8]) -> [u8; QK] {
    let mut quants = [0; QK];
    let (lo, hi) = quants.split_at_mut(QK / 2);
    for (j, ((&q, lo), hi)) in qs.iter().zip(lo).zip(hi).enumerate() {
        let high_bit = |value: usize| (((qh >> value) & 1) as u8) << 4;
        *lo = (q & 0x0F) | high_bit(j);
        *hi = (q >> 4) | high_bit(j + QK / 2);
    }
    quants
}

fn scale_i8(d: f32, qs: &[u8], out: &mut [f32]) {
    for (y, &q) in out.iter_mut().zip(qs) {
        *y = f32::from(q as i8) * d;
    }
}

fn u32_at(bytes: &[u8], offset: usize) -> u32 {
    u32::from_le_bytes([
        bytes[offset],
        bytes[offset + 1],
        bytes[offset + 2],
        bytes[offset + 3],
    ])
}

#[cfg(test)]
mod tests {
    use super::*;

    const HALF: [u8; 2] = 0x3800_u16.to_le_bytes(); // 0.5 as f16

    #[test]
    fn q8_0_scales_signed_bytes() {
        let mut block = [0; 34];
        block[..2].copy_from_slice(&HALF);
        block[2] = (-3_i8) as u8;
        block[33] = 127;
        let mut out = [f32::NAN; 32];
        dequantize_row_q8_0(&block, &mut out);
        assert_eq!(out[0], -1.5);
        assert_eq!(out[1], 0.0);
        assert_eq!(out[31], 63.5);
    }

    #[test]
    fn q5_0_high_bits_come_from_qh() {
        let mut block = [0; 22];
        block[..2].copy_from_slice(&HALF);
        // Fifth bit set for value 0 and value 17; nibbles 0x1 (value 1) and 0xF (value 17).
        block[2..6].copy_from_slice(&(1_u32 | (1 << 17)).to_le_bytes());
        block[6 + 1] = 0xF1;
        let mut out = [f32::NAN; 32];
        dequantize_row_q5_0(&block, &mut out);
        assert_eq!(out[0], 0.0); // 16 - 16
        assert_eq!(out[1], -7.5); // 1 - 16
        assert_eq!(out[16], -8.0); // 0 - 16
        assert_eq!(out[17], 7.5); // 31 - 16
    }
}
