//! K-quants: 256-value super-blocks split into 16 groups of 16 (Q2_K, Q3_K, Q6_K) or 8
//! groups of 32 (Q4_K, Q5_K), each group with its own small scale (and min) that an f16
//! super-scale multiplies. Q8_K is ggml's activation format: one f32 scale.

use super::f16_at;

const QK_K: usize = 256;

/// `scales: [u8; 16] @0` (low nibble scale, high nibble min, per group of 16),
/// `qs: [u8; 64] @16` (2-bit quants), `d: f16 @80`, `dmin: f16 @82`;
/// `y = (d * sc) * q - dmin * m`.
pub(super) fn dequantize_row_q2_k(blocks: &[u8], out: &mut [f32]) {
    for (block, y) in blocks.chunks_exact(84).zip(out.chunks_exact_mut(QK_K)) {
        let (scales, qs) = (&block[..16], &block[16..80]);
        let d = f16_at(block, 80);
        let dmin = f16_at(block, 82);
        for (i, group) in y.chunks_exact_mut(16).enumerate() {
            let dl = d * f32::from(scales[i] & 0x0F);
            let ml = dmin * f32::from(scales[i] >> 4);
            let (bytes, shift) = two_bit_quants(qs, i);
            for (y, &q) in group.iter_mut().zip(bytes) {
                *y = dl * f32::from((q >> shift) & 3) - ml;
            }
        }
    }
}

/// `hmask: [u8; 32] @0` (third bit of each quant), `qs: [u8; 64] @32` (low 2 bits),
/// `scales: [u8; 12] @96` (16 6-bit scales, see [`q3_k_scale`]), `d: f16 @108`;
/// `y = (d * (sc - 32)) * q` with `q` in -4..=3.
pub(super) fn dequantize_row_q3_k(blocks: &[u8], out: &mut [f32]) {
    for (block, y) in blocks.chunks_exact(110).zip(out.chunks_exact_mut(QK_K)) {
        let (hmask, qs, scales) = (&block[..32], &block[32..96], &block[96..108]);
        let d = f16_at(block, 108);
        for (i, group) in y.chunks_exact_mut(16).enumerate() {
            let dl = d * f32::from(i16::from(q3_k_scale(scales, i)) - 32);
            let (bytes, shift) = two_bit_quants(qs, i);
            // hmask is read like qs, 16 bytes per group, one bit further up per pass.
            let high = &hmask[16 * (i % 2)..][..16];
            let bit = i / 2;
            for ((y, &q), &h) in group.iter_mut().zip(bytes).zip(high) {
                // The stored third bit is inverted: set means the quant is not lowered by 4.
                let offset = if (h >> bit) & 1 == 1 { 0 } else { 4 };
                *y = dl * f32::from(i16::from((q >> shift) & 3) - offset);
            }
        }
    }
}

/// `d: f16 @0, dmin: f16 @2, scales: [u8; 12] @4` (see [`k4_scale_min`]),
/// `qs: [u8; 128] @16`; `y = (d * sc) * q - dmin * m`.
pub(super) fn dequantize_row_q4_k(blocks: &[u8], out: &mut [f32]) {
    for (block, y) in blocks.chunks_exact(144).zip(out.chunks_exact_mut(QK_K)) {
        let d = f16_at(block, 0);
        let dmin = f16_at(block, 2);
        let (scales, qs) = (&block[4..16], &block[16..]);
        for (i, group) in y.chunks_exact_mut(32).enumerate() {
            let (sc, m) = k4_scale_min(scales, i);
            let (d1, m1) = (d * f32::from(sc), dmin * f32::from(m));
            let (bytes, shift) = nibbles(qs, i);
            for (y, &q) in group.iter_mut().zip(bytes) {
                *y = d1 * f32::from((q >> shift) & 0x0F) - m1;
            }
        }
    }
}

/// `d: f16 @0, dmin: f16 @2, scales: [u8; 12] @4` (see [`k4_scale_min`]),
/// `qh: [u8; 32] @16` (bit `i` of byte `l`: fifth bit of value `l` in group `i`),
/// `qs: [u8; 128] @48`; `y = (d * sc) * q - dmin * m`.
pub(super) fn dequantize_row_q5_k(blocks: &[u8], out: &mut [f32]) {
    for (block, y) in blocks.chunks_exact(176).zip(out.chunks_exact_mut(QK_K)) {
        let d = f16_at(block, 0);
        let dmin = f16_at(block, 2);
        let (scales, qh, qs) = (&block[4..16], &block[16..48], &block[48..]);
        for (i, group) in y.chunks_exact_mut(32).enumerate() {
            let (sc, m) = k4_scale_min(scales, i);
            let (d1, m1) = (d * f32::from(sc), dmin * f32::from(m));
            let (bytes, shift) = nibbles(qs, i);
            for ((y, &q), &h) in group.iter_mut().zip(bytes).zip(qh) {
                let q = ((q >> shift) & 0x0F) | (((h >> i) & 1) << 4);
                *y = d1 * f32::from(q) - m1;
            }
        }
    }
}

/// `ql: [u8; 128] @0` (low 4 bits), `qh: [u8; 64] @128` (high 2 bits),
/// `scales: [i8; 16] @192`, `d: f16 @208`; `y = (d * sc) * (q - 32)`.
///
/// Each 128-value half reads 64 bytes of `ql` (values 0..32 and 64..96 of the half from
/// bytes 0..32, low then high nibble; 32..64 and 96..128 from bytes 32..64) and 32 bytes of
/// `qh` (the four quarters of the half at bits 0, 2, 4 and 6).
pub(super) fn dequantize_row_q6_k(blocks: &[u8], out: &mut [f32]) {
    for (block, y) in blocks.chunks_exact(210).zip(out.chunks_exact_mut(QK_K)) {
        let (ql, qh, scales) = (&block[..128], &block[128..192], &block[192..208]);
        let d = f16_at(block, 208);
        for (i, group) in y.chunks_exact_mut(16).enumerate() {
            let (half, quarter, part) = (i / 8, (i / 2) % 4, i % 2);
            let low = &ql[64 * half + 32 * (quarter % 2) + 16 * part..][..16];
            let high = &qh[32 * half + 16 * part..][..16];
            let (low_shift, high_shift) = (4 * (quarter / 2), 2 * quarter);
            let dl = d * f32::from(scales[i] as i8);
            for ((y, &lo), &hi) in group.iter_mut().zip(low).zip(high) {
                let q = ((lo >> low_shift) & 0x0F) | (((hi >> high_shift) & 3) << 4);
                *y = dl * f32::from(i16::from(q) - 32);
            }
        }
    }
}

/// `d: f32 @0, qs: [i8; 256] @4, bsums: [i16; 16] @260` (group sums for dot products,
/// unused here); `y = d * q`.
pub(super) fn dequantize_row_q8_k(blocks: &[u8], out: &mut [f32]) {
    for (block, y) in blocks.chunks_exact(292).zip(out.chunks_exact_mut(QK_K)) {
        let d = f32::from_le_bytes([block[0], block[1], block[2], block[3]]);
        for (y, &q) in y.iter_mut().zip(&block[4..260]) {
            *y = d * f32::from(q as i8);
        }
    }
}

/// The bytes and shift of the 2-bit quants of group `i` (of 16) in Q2_K and Q3_K: each
/// 128-value half reads its 32 bytes four times, two bits further up on each pass, the first
/// 16 bytes for one group and the next 16 for the following one.
fn two_bit_quants(qs: &[u8], i: usize) -> (&[u8], usize) {
    let (half, pass, part) = (i / 8, (i / 2) % 4, i % 2);
    (&qs[32 * half + 16 * part..][..16], 2 * pass)
}

/// The bytes and shift of the 4-bit quants of group `i` (of 32) in Q4_K and Q5_K: 32 bytes
/// per pair of groups, low nibbles first.
fn nibbles(qs: &[u8], i: usize) -> (&[u8], usize) {
    (&qs[32 * (i / 2)..][..32], 4 * (i % 2))
}

/// Scale `i` (of 16, 6 bits) of a Q3_K block: its low 4 bits are nibbles of bytes 0..8
/// (scales 0..8 low nibbles, 8..16 high nibbles), its top 2 bits sit in byte `8 + i % 4`
/// at bit `2 * (i / 4)`.
fn q3_k_scale(scales: &[u8], i: usize) -> u8 {
    let low = if i < 8 {
        scales[i] & 0x0F
    } else {
        scales[i - 8] >> 4
    };
    let high = (scales[8 + i % 4] >> (2 * (i / 4))) & 3;
    low | (high << 4)
}

/// Scale and min `j` (of 8, 6 bits each) of a Q4_K or Q5_K block. Bytes 0..4 hold scales
/// 0..4 and bytes 4..8 mins 0..4 in their low 6 bits; scales and mins 4..8 keep their low
/// 4 bits in bytes 8..12 (scale low nibble, min high nibble) and their top 2 bits in the
/// spare top bits of bytes 0..4 (scales) and 4..8 (mins).
fn k4_scale_min(scales: &[u8], j: usize) -> (u8, u8) {
    if j < 4 {
        (scales[j] & 0x3F, scales[j + 4] & 0x3F)
    } else {
        let packed = scales[j + 4];
        (
            (packed & 0x0F) | ((scales[j - 4] >> 6) << 4),
            (packed >> 4) | ((scales[j] >> 6) << 4),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn k4_scales_and_mins_unpack_their_top_bits() {
        let mut scales = [0_u8; 12];
        scales[0] = 0b1100_0001; // scale 0 = 1, top bits of scale 4 = 3
        scales[4] = 0b1000_0010; // min 0 = 2, top bits of min 4 = 2
        scales[8] = 0x5A; // scale 4 low nibble 0xA, min 4 low nibble 0x5
        assert_eq!(k4_scale_min(&scales, 0), (1, 2));
        assert_eq!(k4_scale_min(&scales, 4), (0x3A, 0x25));
    }

    #[test]
    fn q3_k_scales_unpack_their_top_bits() {
        let mut scales = [0_u8; 12];
        scales[1] = 0x7C; // scale 1 low nibble 0xC, scale 9 low nibble 0x7
        scales[9] = 0b0100_1000; // top bits: scale 1 -> 0, scale 5 -> 2, scale 13 -> 1
        assert_eq!(q3_k_scale(&scales, 1), 0x0C);
        assert_eq!(q3_k_scale(&scales, 5), 0x20);
        assert_eq!(q3_k_scale(&scales, 9), 0x07);
        assert_eq!(q3_k_scale(&scales, 13), 0x10);
    }

    #[test]
    fn q8_k_scales_by_an_f32() {
        let mut block = [0_u8; 292];
        block[..4].copy_from_slice(&0.25_f32.to_le_bytes());
        block[4] = (-4_i8) as u8;
        block[259] = 8;
        let mut out = [f32::NAN; 256];
        dequantize_row_q8_k(&block, &mut out);
        assert_eq!((out[0], out[1], out[255]), (-1.0, 0.0, 2.0));
    }
}
