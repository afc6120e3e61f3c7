//! IQ4_NL and IQ4_XS: 4-bit indices into a fixed non-uniform table of levels.

use super::f16_at;

/// ggml's `kvalues_iq4nl`: the 16 levels, denser near zero where weights cluster.
const IQ4_NL_LEVELS: [i8; 16] = [
    -127, -104, -83, -65, -49, -35, -22, -10, 1, 13, 25, 38, 53, 69, 89, 113,
];

/// `d: f16 @0, qs: [u8; 16] @2` (value `j` in the low nibble of byte `j`, value `j + 16`
/// in the high nibble); `y = d * level`.
pub(super) fn dequantize_row_iq4_nl(blocks: &[u8], out: &mut [f32]) {
    for (block, y) in blocks.chunks_exact(18).zip(out.chunks_exact_mut(32)) {
        levels_times(f16_at(block, 0), &block[2..], y);
    }
}

/// `d: f16 @0, scales_h: u16 @2, scales_l: [u8; 4] @4, qs: [u8; 128] @8`. Eight groups of
/// 32, each with a 6-bit scale: low 4 bits in nibble `i % 2` of `scales_l[i / 2]`, top 2
/// bits at bit `2 * i` of `scales_h`; each group's 16 bytes of `qs` are laid out as one
/// IQ4_NL block's. `y = (d * (scale - 32)) * level`.
pub(super) fn dequantize_row_iq4_xs(blocks: &[u8], out: &mut [f32]) {
    for (block, y) in blocks.chunks_exact(136).zip(out.chunks_exact_mut(256)) {
        let d = f16_at(block, 0);
        let scales_h = u16::from_le_bytes([block[2], block[3]]);
        let (scales_l, qs) = (&block[4..8], &block[8..]);
        for (i, (group, bytes)) in y.chunks_exact_mut(32).zip(qs.chunks_exact(16)).enumerate() {
            let low = (scales_l[i / 2] >> (4 * (i % 2))) & 0x0F;
            let high = ((scales_h >> (2 * i)) & 3) as u8;
            let scale = i16::from(low | (high << 4)) - 32;
            levels_times(d * f32::from(scale), bytes, group);
        }
    }
}

/// Fills 32 values from 16 bytes of nibble indices, scaled by `d`.
fn levels_times(d: f32, qs: &[u8], out: &mut [f32]) {
    let (lo, hi) = out.split_at_mut(16);
    for ((&q, lo), hi) in qs.iter().zip(lo).zip(hi) {
        *lo = d * f32::from(IQ4_NL_LEVELS[usize::from(q & 0x0F)]);
        *hi = d * f32::from(IQ4_NL_LEVELS[usize::from(q >> 4)]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn iq4_xs_group_scale_combines_both_halves() {
        let mut block = [0_u8; 136];
        block[..2].copy_from_slice(&0x3C00_u16.to_le_bytes()); // d = 1.0
        // Group 1: low nibble 0x1 (high nibble of scales_l[0]), top bits 2 -> scale 0x21.
        block[2..4].copy_from_slice(&(2_u16 << 2).to_le_bytes());
        block[4] = 0x10;
        block[8 + 16] = 0xF8; // group 1: value 0 -> level 8 (1), value 16 -> level 15 (113)
        let mut out = [f32::NAN; 256];
        dequantize_row_iq4_xs(&block, &mut out);
        assert_eq!(out[0], -32.0 * -127.0); // group 0: scale 0 - 32, index 0
        assert_eq!(out[32], 1.0);
        assert_eq!(out[48], 113.0);
    }
}
