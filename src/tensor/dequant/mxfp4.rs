//! MXFP4 (OCP Microscaling): 32 FP4 (E2M1) values sharing one E8M0 power-of-two scale.

/// The E2M1 values indexed by their 4-bit code (sign bit on top), doubled so they are
/// integers: 0, 0.5, 1, 1.5, 2, 3, 4, 6 become 0, 1, 2, 3, 4, 6, 8, 12. ggml's
/// `kvalues_mxfp4`; the scale is halved to make up for it.
const E2M1_DOUBLED: [i8; 16] = [0, 1, 2, 3, 4, 6, 8, 12, 0, -1, -2, -3, -4, -6, -8, -12];

/// `e: u8 @0` (E8M0 scale exponent), `qs: [u8; 16] @1` (value `j` in the low nibble of
/// byte `j`, value `j + 16` in the high nibble); `y = level * 2^(e - 128)`.
pub(super) fn dequantize_row_mxfp4(blocks: &[u8], out: &mut [f32]) {
    for (block, y) in blocks.chunks_exact(17).zip(out.chunks_exact_mut(32)) {
        let d = e8m0_to_f32_half(block[0]);
        let (lo, hi) = y.split_at_mut(16);
        for ((&q, lo), hi) in block[1..].iter().zip(lo).zip(hi) {
            *lo = f32::from(E2M1_DOUBLED[usize::from(q & 0x0F)]) * d;
            *hi = f32::from(E2M1_DOUBLED[usize::from(q >> 4)]) * d;
        }
    }
}

/// Half the E8M0 scale `2^(e - 127)`, built from its bits (ggml's
/// `GGML_E8M0_TO_FP32_HALF`). `e` 0 and 1 give the f32 subnormals 2^-128 and 2^-127.
/// The spec's NaN code 255 is read as 2^127, as ggml does.
fn e8m0_to_f32_half(e: u8) -> f32 {
    if e < 2 {
        f32::from_bits(0x0020_0000 << e)
    } else {
        f32::from_bits(u32::from(e - 1) << 23)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scale_is_half_of_two_to_the_e_minus_127() {
        assert_eq!(e8m0_to_f32_half(127), 0.5);
        assert_eq!(e8m0_to_f32_half(128), 1.0);
        // Through f64: f32's powi overflows on the way to the subnormal 2^-128.
        let pow2 = |e: i32| 2.0_f64.powi(e) as f32;
        assert_eq!(e8m0_to_f32_half(0), pow2(-128));
        assert_eq!(e8m0_to_f32_half(1), pow2(-127));
        assert_eq!(e8m0_to_f32_half(255), pow2(127));
    }

    #[test]
    fn codes_map_to_fp4_values() {
        let mut block = [0_u8; 17];
        block[0] = 128; // halved scale 1.0, so outputs are the doubled levels
        block[1] = 0xF7; // value 0: code 7 (+6.0 doubled), value 16: code 15 (-6.0 doubled)
        let mut out = [f32::NAN; 32];
        dequantize_row_mxfp4(&block, &mut out);
        assert_eq!((out[0], out[16], out[1]), (12.0, -12.0, 0.0));
    }
}
