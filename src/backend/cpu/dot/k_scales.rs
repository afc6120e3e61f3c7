//! Unpacking the 6-bit group scales (and mins) K-quant super-blocks pack into 12 bytes.

/// The 8 scales then the 8 mins of a Q4_K or Q5_K super-block from its 12 packed bytes.
#[inline]
pub(super) fn k4_scales_and_mins(packed: &[u8]) -> [u8; 16] {
    let mut out = [0; 16];
    for (bytes, word) in out.chunks_exact_mut(4).zip(k4_scale_words(packed)) {
        bytes.copy_from_slice(&word.to_le_bytes());
    }
    out
}

/// [`k4_scales_and_mins`] as four little-endian words, the form SIMD kernels load into a
/// register without a trip through memory.
///
/// Bytes 0..4 hold scales 0..4 and bytes 4..8 mins 0..4 in their low 6 bits; scales and mins
/// 4..8 keep their low 4 bits in bytes 8..12 (scale low nibble, min high nibble) and their
/// top 2 bits in the spare top bits of bytes 0..4 (scales) and 4..8 (mins). Done on 32-bit
/// words, four values at a time, as ggml does.
#[inline(always)]
pub(super) fn k4_scale_words(packed: &[u8]) -> [u32; 4] {
    let word = |i: usize| {
        u32::from_le_bytes([
            packed[4 * i],
            packed[4 * i + 1],
            packed[4 * i + 2],
            packed[4 * i + 3],
        ])
    };
    let (w0, w1, w2) = (word(0), word(1), word(2));
    let low_6 = 0x3F3F_3F3F;
    let low_4 = 0x0F0F_0F0F;
    let top_2 = 0x0303_0303;
    [
        w0 & low_6,
        (w2 & low_4) | (((w0 >> 6) & top_2) << 4),
        w1 & low_6,
        ((w2 >> 4) & low_4) | (((w1 >> 6) & top_2) << 4),
    ]
}

/// The 16 scales of a Q3_K super-block, minus their offset of 32, from its 12 packed bytes:
/// scale `i` keeps its low 4 bits in nibble `i / 8` of byte `i % 8` and its top 2 bits at bit
/// `2 * (i / 4)` of byte `8 + i % 4`.
#[inline]
pub(super) fn q3_k_scales(packed: &[u8]) -> [i8; 16] {
    std::array::from_fn(|i| {
        let low = (packed[i % 8] >> (4 * (i / 8))) & 0x0F;
        let high = (packed[8 + i % 4] >> (2 * (i / 4))) & 3;
        (low | (high << 4)) as i8 - 32
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn k4_scales_and_mins_unpack_their_top_bits() {
        let mut packed = [0_u8; 12];
        packed[0] = 0b1100_0001; // scale 0 = 1, top bits of scale 4 = 3
        packed[4] = 0b1000_0010; // min 0 = 2, top bits of min 4 = 2
        packed[8] = 0x5A; // scale 4 low nibble 0xA, min 4 low nibble 0x5
        let unpacked = k4_scales_and_mins(&packed);
        assert_eq!((unpacked[0], unpacked[8]), (1, 2));
        assert_eq!((unpacked[4], unpacked[12]), (0x3A, 0x25));
    }

    #[test]
    fn q3_k_scales_unpack_their_top_bits() {
        let mut packed = [0_u8; 12];
        packed[1] = 0x7C; // scale 1 low nibble 0xC, scale 9 low nibble 0x7
        packed[9] = 0b0100_1000; // top bits: scale 1 -> 0, scale 5 -> 2, scale 13 -> 1
        let scales = q3_k_scales(&packed);
        assert_eq!(scales[1], 0x0C - 32);
        assert_eq!(scales[5], 0x20 - 32);
        assert_eq!(scales[9], 0x07 - 32);
        assert_eq!(scales[13], 0x10 - 32);
    }
}
