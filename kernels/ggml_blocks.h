// GGML weight formats on the device: for every type the CPU runs, a dequantizer of one
// "chunk" of a row (CHUNK consecutive values). Used by the embedding and matrix-vector
// kernels, which walk a row chunk by chunk.
//
// Bit-exact with the scalar reference in src/tensor/dequant (and so with llama.cpp): each
// value is computed with the same f32 operations in the same order, and the products are
// formed with rf_mul, which the compiler may not fuse with the following add or subtract
// (a fused multiply-add rounds once where the reference rounds twice).
//
// Blocks sit at any byte offset (an 18-byte Q4_0 block leaves the next one 2-aligned, a
// Q5_0 block's u32 at byte 2), so multi-byte fields are assembled from bytes. Plain types
// (F32, F16, ...) are read as their own type: a row of them starts at a multiple of its
// element size, given an allocation aligned for it.
#pragma once

#include "compat.h"

// a * b rounded once, never contracted into an FMA with a neighbouring add.
#if defined(RF_CUDA)
RF_DEVICE float rf_mul(float a, float b) { return __fmul_rn(a, b); }
#else
RF_DEVICE float rf_mul(float a, float b) {
#pragma clang fp contract(off)
    return a * b;
}
#endif

RF_DEVICE uint32_t rf_u16_at(const uint8_t *p) { return (uint32_t)p[0] | ((uint32_t)p[1] << 8); }

RF_DEVICE uint32_t rf_u32_at(const uint8_t *p) {
    return (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) | ((uint32_t)p[3] << 24);
}

// The little-endian f16 at p, widened (exactly) to f32.
RF_DEVICE float rf_f16_at(const uint8_t *p) {
    return __half2float(__ushort_as_half((unsigned short)rf_u16_at(p)));
}

// Quantized formats: blocks of VALUES values in BYTES bytes, dequantized 8 values at a
// time (every group with its own scale spans a multiple of 8 values, so a chunk never
// straddles two scales). `dequantize8(block, j0, y)` writes values j0..j0+8 of the block.
#define RF_QUANT_CHUNK 8

// The chunk `c` of a row of blocks of type B.
template <typename B>
RF_DEVICE void rf_dequantize_block_chunk(const uint8_t *row, uint64_t c, float *y) {
    constexpr int chunks_per_block = B::VALUES / RF_QUANT_CHUNK;
    const uint8_t *block = row + (c / chunks_per_block) * B::BYTES;
    B::dequantize8(block, (int)(c % chunks_per_block) * RF_QUANT_CHUNK, y);
}

#define RF_BLOCK_TYPE(NAME, VALUES_, BYTES_)                                                      \
    struct NAME {                                                                                 \
        static constexpr int VALUES = VALUES_;                                                    \
        static constexpr int BYTES = BYTES_;                                                      \
        static constexpr int CHUNK = RF_QUANT_CHUNK;                                              \
        RF_DEVICE void dequantize8(const uint8_t *b, int j0, float *y);                           \
        RF_DEVICE void dequantize_chunk(const uint8_t *row, uint32_t, uint64_t c, float *y) {     \
            rf_dequantize_block_chunk<NAME>(row, c, y);                                           \
        }                                                                                         \
    };                                                                                            \
    __device__ __forceinline__ void NAME::dequantize8(const uint8_t *b, int j0, float *y)

// ------------------------------------------------------------ 32-value legacy formats
// In the 4- and 5-bit formats byte j of qs holds value j (low nibble) and j + 16 (high).

// Values j0..j0+8 of a 32-value group from its quants (the 16 nibble bytes, or 32 int8)
// and head, wherever the layout keeps them (the GGUF blocks here, split rows below).
// Q4_0's quant bytes may be stored XORed with `flip` (its split rows').
RF_DEVICE void rf_dequantize_q4_0_values(const uint8_t *qs, float d, int j0, float *y,
                                         uint8_t flip = 0) {
    const int shift = 4 * (j0 / 16);
    for (int k = 0; k < 8; ++k) {
        const int q = ((qs[j0 % 16 + k] ^ flip) >> shift) & 0x0F;
        y[k] = rf_mul((float)(q - 8), d);
    }
}

RF_DEVICE void rf_dequantize_q4_1_values(const uint8_t *qs, float d, float m, int j0,
                                         float *y) {
    const int shift = 4 * (j0 / 16);
    for (int k = 0; k < 8; ++k) {
        y[k] = rf_mul((float)((qs[j0 % 16 + k] >> shift) & 0x0F), d) + m;
    }
}

RF_DEVICE void rf_dequantize_q8_0_values(const uint8_t *qs, float d, int j0, float *y) {
    for (int k = 0; k < 8; ++k) {
        y[k] = rf_mul((float)(int8_t)qs[j0 + k], d);
    }
}

// d: f16 @0, qs @2; y = (q - 8) * d.
RF_BLOCK_TYPE(BlockQ4_0, 32, 18) { rf_dequantize_q4_0_values(b + 2, rf_f16_at(b), j0, y); }

// d: f16 @0, m: f16 @2, qs @4; y = q * d + m.
RF_BLOCK_TYPE(BlockQ4_1, 32, 20) {
    rf_dequantize_q4_1_values(b + 4, rf_f16_at(b), rf_f16_at(b + 2), j0, y);
}

// The 5-bit quant j: low 4 bits from qs as above, the fifth bit j of qh.
RF_DEVICE int rf_five_bit_quant(uint32_t qh, const uint8_t *qs, int j) {
    return (int)((qs[j % 16] >> (4 * (j / 16))) & 0x0F) | (int)(((qh >> j) & 1) << 4);
}

// d: f16 @0, qh: u32 @2, qs @6; y = (q - 16) * d.
RF_BLOCK_TYPE(BlockQ5_0, 32, 22) {
    const float d = rf_f16_at(b);
    const uint32_t qh = rf_u32_at(b + 2);
    for (int k = 0; k < 8; ++k) {
        y[k] = rf_mul((float)(rf_five_bit_quant(qh, b + 6, j0 + k) - 16), d);
    }
}

// d: f16 @0, m: f16 @2, qh: u32 @4, qs @8; y = q * d + m.
RF_BLOCK_TYPE(BlockQ5_1, 32, 24) {
    const float d = rf_f16_at(b);
    const float m = rf_f16_at(b + 2);
    const uint32_t qh = rf_u32_at(b + 4);
    for (int k = 0; k < 8; ++k) {
        y[k] = rf_mul((float)rf_five_bit_quant(qh, b + 8, j0 + k), d) + m;
    }
}

// d: f16 @0, qs: i8 @2; y = q * d.
RF_BLOCK_TYPE(BlockQ8_0, 32, 34) { rf_dequantize_q8_0_values(b + 2, rf_f16_at(b), j0, y); }

// d: f16 @0, s: f16 @2 (unused), qs: i8 @4; y = q * d.
RF_BLOCK_TYPE(BlockQ8_1, 32, 36) {
    const float d = rf_f16_at(b);
    for (int k = 0; k < 8; ++k) {
        y[k] = rf_mul((float)(int8_t)b[4 + j0 + k], d);
    }
}

// ggml's kvalues_iq4nl.
__device__ __constant__ int8_t rf_iq4nl_levels[16] = {-127, -104, -83, -65, -49, -35, -22, -10,
                                                      1,    13,   25,  38,  53,  69,  89,  113};

// d: f16 @0, qs @2 (nibbles as Q4_0); y = d * level.
RF_BLOCK_TYPE(BlockIQ4_NL, 32, 18) {
    const float d = rf_f16_at(b);
    const uint8_t *qs = b + 2 + j0 % 16;
    const int shift = 4 * (j0 / 16);
    for (int k = 0; k < 8; ++k) {
        y[k] = rf_mul(d, (float)rf_iq4nl_levels[(qs[k] >> shift) & 0x0F]);
    }
}

// ggml's kvalues_mxfp4: E2M1 values doubled, so the scale is halved.
__device__ __constant__ int8_t rf_e2m1_doubled[16] = {0, 1,  2,  3,  4,  6,  8,  12,
                                                      0, -1, -2, -3, -4, -6, -8, -12};

// Half of the E8M0 scale 2^(e - 127), from its bits (e 0 and 1 are f32 subnormals).
RF_DEVICE float rf_e8m0_half(uint32_t e) {
    return __uint_as_float(e < 2 ? (0x00200000u << e) : ((e - 1) << 23));
}

// e: u8 @0, qs @1 (nibbles as Q4_0); y = level * 2^(e - 128).
RF_BLOCK_TYPE(BlockMXFP4, 32, 17) {
    const float d = rf_e8m0_half(b[0]);
    const uint8_t *qs = b + 1 + j0 % 16;
    const int shift = 4 * (j0 / 16);
    for (int k = 0; k < 8; ++k) {
        y[k] = rf_mul((float)rf_e2m1_doubled[(qs[k] >> shift) & 0x0F], d);
    }
}

// ------------------------------------------------------------ 256-value K-quants

// Q2_K and Q3_K's 2-bit quants of group i (of 16): each 128-value half reads its 32 bytes
// four times, two bits further up each pass, 16 bytes for one group and 16 for the next.
RF_DEVICE const uint8_t *rf_two_bit_bytes(const uint8_t *qs, int i, int *shift) {
    *shift = 2 * ((i / 2) % 4);
    return qs + 32 * (i / 8) + 16 * (i % 2);
}

// scales @0 (low nibble scale, high nibble min, per group of 16), qs @16, d: f16 @80,
// dmin: f16 @82; y = (d * sc) * q - dmin * m.
RF_BLOCK_TYPE(BlockQ2_K, 256, 84) {
    const int i = j0 / 16;
    const float dl = rf_mul(rf_f16_at(b + 80), (float)(b[i] & 0x0F));
    const float ml = rf_mul(rf_f16_at(b + 82), (float)(b[i] >> 4));
    int shift;
    const uint8_t *bytes = rf_two_bit_bytes(b + 16, i, &shift) + j0 % 16;
    for (int k = 0; k < 8; ++k) {
        y[k] = rf_mul(dl, (float)((bytes[k] >> shift) & 3)) - ml;
    }
}

// Scale i (of 16, 6 bits) of a Q3_K block: low 4 bits in nibbles of bytes 0..8, top 2 bits
// in byte 8 + i % 4 at bit 2 * (i / 4).
RF_DEVICE int rf_q3_k_scale(const uint8_t *scales, int i) {
    const int low = i < 8 ? (scales[i] & 0x0F) : (scales[i - 8] >> 4);
    const int high = (scales[8 + i % 4] >> (2 * (i / 4))) & 3;
    return low | (high << 4);
}

// hmask @0, qs @32, scales @96, d: f16 @108; y = (d * (sc - 32)) * q, q in -4..=3 (the
// stored third bit is inverted: set means not lowered by 4).
RF_BLOCK_TYPE(BlockQ3_K, 256, 110) {
    const int i = j0 / 16;
    const float dl = rf_mul(rf_f16_at(b + 108), (float)(rf_q3_k_scale(b + 96, i) - 32));
    int shift;
    const uint8_t *bytes = rf_two_bit_bytes(b + 32, i, &shift) + j0 % 16;
    const uint8_t *high = b + 16 * (i % 2) + j0 % 16;
    const int bit = i / 2;
    for (int k = 0; k < 8; ++k) {
        const int offset = ((high[k] >> bit) & 1) ? 0 : 4;
        y[k] = rf_mul(dl, (float)((int)((bytes[k] >> shift) & 3) - offset));
    }
}

// Scale and min j (of 8, 6 bits each) of a Q4_K or Q5_K block from its 12 scale bytes,
// byte(k) giving byte k (read from memory, or picked out of registers).
template <typename Byte>
RF_DEVICE void rf_k4_scale_min_of(Byte byte, int j, int *sc, int *m) {
    if (j < 4) {
        *sc = byte(j) & 0x3F;
        *m = byte(j + 4) & 0x3F;
    } else {
        const int packed = byte(j + 4);
        *sc = (packed & 0x0F) | ((byte(j - 4) >> 6) << 4);
        *m = (packed >> 4) | ((byte(j) >> 6) << 4);
    }
}

RF_DEVICE void rf_k4_scale_min(const uint8_t *scales, int j, int *sc, int *m) {
    rf_k4_scale_min_of([&](int k) { return (int)scales[k]; }, j, sc, m);
}

// d: f16 @0, dmin: f16 @2, scales @4, qs @16 (32 bytes per pair of 32-value groups, low
// nibbles first); y = (d * sc) * q - dmin * m.
RF_BLOCK_TYPE(BlockQ4_K, 256, 144) {
    const int i = j0 / 32;
    int sc, m;
    rf_k4_scale_min(b + 4, i, &sc, &m);
    const float d1 = rf_mul(rf_f16_at(b), (float)sc);
    const float m1 = rf_mul(rf_f16_at(b + 2), (float)m);
    const uint8_t *qs = b + 16 + 32 * (i / 2) + j0 % 32;
    const int shift = 4 * (i % 2);
    for (int k = 0; k < 8; ++k) {
        y[k] = rf_mul(d1, (float)((qs[k] >> shift) & 0x0F)) - m1;
    }
}

// As Q4_K with qh @16 (bit i of byte l: fifth bit of value l of group i) and qs @48.
RF_BLOCK_TYPE(BlockQ5_K, 256, 176) {
    const int i = j0 / 32;
    int sc, m;
    rf_k4_scale_min(b + 4, i, &sc, &m);
    const float d1 = rf_mul(rf_f16_at(b), (float)sc);
    const float m1 = rf_mul(rf_f16_at(b + 2), (float)m);
    const uint8_t *qh = b + 16 + j0 % 32;
    const uint8_t *qs = b + 48 + 32 * (i / 2) + j0 % 32;
    const int shift = 4 * (i % 2);
    for (int k = 0; k < 8; ++k) {
        const int q = ((qs[k] >> shift) & 0x0F) | (((qh[k] >> i) & 1) << 4);
        y[k] = rf_mul(d1, (float)q) - m1;
    }
}

// ql @0 (low 4 bits), qh @128 (high 2 bits), scales: i8 @192, d: f16 @208;
// y = (d * sc) * (q - 32). See dequantize_row_q6_k for the layout of each half.
RF_BLOCK_TYPE(BlockQ6_K, 256, 210) {
    const int i = j0 / 16;
    const int half = i / 8, quarter = (i / 2) % 4, part = i % 2;
    const uint8_t *low = b + 64 * half + 32 * (quarter % 2) + 16 * part + j0 % 16;
    const uint8_t *high = b + 128 + 32 * half + 16 * part + j0 % 16;
    const int low_shift = 4 * (quarter / 2), high_shift = 2 * quarter;
    const float dl = rf_mul(rf_f16_at(b + 208), (float)(int8_t)b[192 + i]);
    for (int k = 0; k < 8; ++k) {
        const int q = ((low[k] >> low_shift) & 0x0F) | (((high[k] >> high_shift) & 3) << 4);
        y[k] = rf_mul(dl, (float)(q - 32));
    }
}

// d: f32 @0, qs: i8 @4, bsums @260 (unused); y = d * q.
RF_BLOCK_TYPE(BlockQ8_K, 256, 292) {
    const float d = __uint_as_float(rf_u32_at(b));
    for (int k = 0; k < 8; ++k) {
        y[k] = rf_mul(d, (float)(int8_t)b[4 + j0 + k]);
    }
}

// d: f16 @0, scales_h: u16 @2, scales_l @4, qs @8 (16 bytes per 32-value group, laid out
// as an IQ4_NL block); y = (d * (scale - 32)) * level.
RF_BLOCK_TYPE(BlockIQ4_XS, 256, 136) {
    const int i = j0 / 32;
    const int low = (b[4 + i / 2] >> (4 * (i % 2))) & 0x0F;
    const int high = (rf_u16_at(b + 2) >> (2 * i)) & 3;
    const float dd = rf_mul(rf_f16_at(b), (float)((low | (high << 4)) - 32));
    const int l0 = j0 % 32;
    const uint8_t *qs = b + 8 + 16 * i + l0 % 16;
    const int shift = 4 * (l0 / 16);
    for (int k = 0; k < 8; ++k) {
        y[k] = rf_mul(dd, (float)rf_iq4nl_levels[(qs[k] >> shift) & 0x0F]);
    }
}

// ------------------------------------------------------------ split rows
// The GPU's own layouts, written in place at upload (kernels/split_rows.hip) for matrices
// whose rows are whole 256 values: the same bytes as the GGUF layout (a row padded to a
// multiple of 16 bytes where its blocks are not, so every row starts 16-byte aligned), but
// each row's quants come first as one 16-byte aligned stretch, a
// group's quants an aligned vector, so the products read whole vectors and a warp's loads
// whole lines; the scales follow. `scatter` moves GGUF block b of a row of n_blocks into
// its places.
//
// Q4_0, Q4_1 and Q8_0: each block's quant array in order, then their heads (the f16 scale,
// and Q4_1's f16 min). Each quant byte is stored XORed with FLIP: Q4_0's with 0x88, which
// makes each nibble q - 8 as a signed 4-bit number, so the integer products multiply its
// values as they are instead of subtracting 8 times the activations' sum (matvec_q8.hip).
template <int HEAD, int QUANTS, uint8_t FLIP = 0>
struct SplitRow {
    static constexpr int BLOCK_BYTES = HEAD + QUANTS;
    static constexpr uint8_t QUANT_XOR = FLIP;
    // Byte pointers, const or not.
    template <typename Byte>
    RF_DEVICE Byte *quants(Byte *row, uint64_t g) {
        return row + QUANTS * g;
    }
    template <typename Byte>
    RF_DEVICE Byte *head(Byte *row, uint32_t n_groups, uint64_t g) {
        return row + (uint64_t)QUANTS * n_groups + HEAD * g;
    }
    RF_DEVICE void scatter(const uint8_t *block, uint8_t *row, uint32_t n_blocks, uint32_t b) {
        for (int k = 0; k < HEAD; ++k) {
            head(row, n_blocks, b)[k] = block[k];
        }
        for (int k = 0; k < QUANTS; ++k) {
            quants(row, b)[k] = block[HEAD + k] ^ QUANT_XOR;
        }
    }
};
using SplitQ4_0 = SplitRow<2, 16, 0x88>;
using SplitQ4_1 = SplitRow<4, 16>;
using SplitQ8_0 = SplitRow<2, 32>;

// The 4-bit value v (0..31) of a 32-value group whose 16 quant bytes are in the 32-value
// formats' order (byte j: value j in the low nibble, value j + 16 in the high one).
RF_DEVICE int rf_nibble_of(const uint8_t *qs, int v) {
    return (qs[v % 16] >> (4 * (v / 16))) & 0x0F;
}

// Nibble shift / 4 of the 32 bytes at src (a group kept in one half of each byte) as a
// group's 16 quant bytes in that order: the inverse of rf_nibble_of.
RF_DEVICE void rf_pack_nibbles(const uint8_t *src, int shift, uint8_t *out) {
    for (int k = 0; k < 16; ++k) {
        out[k] = (uint8_t)(((src[k] >> shift) & 0x0F) | (((src[k + 16] >> shift) & 0x0F) << 4));
    }
}

// Q4_K: each 32-value group's quants as 16 bytes in the 32-value formats' nibble order (the
// block keeps two groups in the low and high nibbles of the same 32 bytes), then each
// block's 16-byte head as it is (d, dmin, the 12 bytes of 6-bit scales and mins).
struct SplitQ4_K {
    static constexpr int BLOCK_BYTES = 144;
    template <typename Byte>
    RF_DEVICE Byte *quants(Byte *row, uint64_t g) {
        return row + 16 * g;
    }
    template <typename Byte>
    RF_DEVICE Byte *head(Byte *row, uint32_t n_groups, uint64_t g) {
        return row + 16 * (uint64_t)n_groups + 16 * (g / 8);
    }
    RF_DEVICE void scatter(const uint8_t *block, uint8_t *row, uint32_t n_blocks, uint32_t b) {
        const uint32_t n_groups = 8 * n_blocks;
        for (int k = 0; k < 16; ++k) {
            head(row, n_groups, 8 * (uint64_t)b)[k] = block[k];
        }
        for (int i = 0; i < 8; ++i) {
            uint8_t *out = quants(row, 8 * (uint64_t)b + i);
            rf_pack_nibbles(block + 16 + 32 * (i / 2), 4 * (i % 2), out);
        }
    }
};

// Q6_K: each 32-value group's low 4 bits as 16 bytes in the 32-value formats' nibble order;
// then each group's high 2 bits as two words, word j's byte b holding at bits 2k those of
// value 16 j + 4 k + b (so shifting word j by 2 k and masking each byte gives the high bits
// of values 16 j + 4 k .. + 3 in byte order); then each group's two i8 scales (values 0..15
// and 16..31); then each block's f16 d.
struct SplitQ6_K {
    static constexpr int BLOCK_BYTES = 210;
    template <typename Byte>
    RF_DEVICE Byte *low(Byte *row, uint64_t g) {
        return row + 16 * g;
    }
    template <typename Byte>
    RF_DEVICE Byte *high(Byte *row, uint32_t n_groups, uint64_t g) {
        return row + 16 * (uint64_t)n_groups + 8 * g;
    }
    template <typename Byte>
    RF_DEVICE Byte *scales(Byte *row, uint32_t n_groups, uint64_t g) {
        return row + 24 * (uint64_t)n_groups + 2 * g;
    }
    template <typename Byte>
    RF_DEVICE Byte *scale_d(Byte *row, uint32_t n_groups, uint64_t g) {
        return row + 26 * (uint64_t)n_groups + 2 * (g / 8);
    }
    // The high 2 bits of value v (0..31) of a group from its two words of them.
    RF_DEVICE int high_bits(const uint8_t *high, int v) {
        return (high[4 * (v / 16) + v % 4] >> (2 * ((v % 16) / 4))) & 3;
    }
    // Group i of a block is quarter i % 4 of half i / 4 (dequantize_row_q6_k's layout).
    RF_DEVICE void scatter(const uint8_t *block, uint8_t *row, uint32_t n_blocks, uint32_t b) {
        const uint32_t n_groups = 8 * n_blocks;
        for (int i = 0; i < 8; ++i) {
            const int half = i / 4, quarter = i % 4;
            const uint8_t *ql = block + 64 * half + 32 * (quarter % 2);
            const uint8_t *qh = block + 128 + 32 * half;
            const int low_shift = 4 * (quarter / 2), high_shift = 2 * quarter;
            const uint64_t g = 8 * (uint64_t)b + i;
            rf_pack_nibbles(ql, low_shift, low(row, g));
            uint8_t *out_high = high(row, n_groups, g);
            for (int j = 0; j < 2; ++j) {
                for (int byte = 0; byte < 4; ++byte) {
                    int bits = 0;
                    for (int k = 0; k < 4; ++k) {
                        bits |= ((qh[16 * j + 4 * k + byte] >> high_shift) & 3) << (2 * k);
                    }
                    out_high[4 * j + byte] = (uint8_t)bits;
                }
            }
            scales(row, n_groups, g)[0] = block[192 + 2 * i];
            scales(row, n_groups, g)[1] = block[192 + 2 * i + 1];
        }
        scale_d(row, n_groups, 8 * (uint64_t)b)[0] = block[208];
        scale_d(row, n_groups, 8 * (uint64_t)b)[1] = block[209];
    }
};

// A split-row type read 8 values at a time, as the block types are.
#define RF_SPLIT_TYPE(NAME)                                                                      \
    struct NAME {                                                                                 \
        static constexpr int CHUNK = RF_QUANT_CHUNK;                                              \
        RF_DEVICE void dequantize8(const uint8_t *row, uint32_t n_groups, uint64_t g, int j0,     \
                                   float *y);                                                     \
        RF_DEVICE void dequantize_chunk(const uint8_t *row, uint32_t n_cols, uint64_t c,          \
                                        float *y) {                                               \
            dequantize8(row, n_cols / 32, c / 4, (int)(c % 4) * 8, y);                            \
        }                                                                                         \
    };                                                                                            \
    __device__ __forceinline__ void NAME::dequantize8(const uint8_t *row, uint32_t n_groups,      \
                                                      uint64_t g, int j0, float *y)

RF_SPLIT_TYPE(SplitRowsQ4_0) {
    const float d = rf_f16_at(SplitQ4_0::head(row, n_groups, g));
    rf_dequantize_q4_0_values(SplitQ4_0::quants(row, g), d, j0, y, SplitQ4_0::QUANT_XOR);
}

RF_SPLIT_TYPE(SplitRowsQ4_1) {
    const uint8_t *head = SplitQ4_1::head(row, n_groups, g);
    rf_dequantize_q4_1_values(SplitQ4_1::quants(row, g), rf_f16_at(head), rf_f16_at(head + 2), j0,
                              y);
}

RF_SPLIT_TYPE(SplitRowsQ8_0) {
    const float d = rf_f16_at(SplitQ8_0::head(row, n_groups, g));
    rf_dequantize_q8_0_values(SplitQ8_0::quants(row, g), d, j0, y);
}

// As BlockQ4_K: y = (d * sc) * q - dmin * m.
RF_SPLIT_TYPE(SplitRowsQ4_K) {
    const uint8_t *head = SplitQ4_K::head(row, n_groups, g);
    int sc, m;
    rf_k4_scale_min(head + 4, (int)(g % 8), &sc, &m);
    const float d1 = rf_mul(rf_f16_at(head), (float)sc);
    const float m1 = rf_mul(rf_f16_at(head + 2), (float)m);
    const uint8_t *qs = SplitQ4_K::quants(row, g);
    for (int k = 0; k < 8; ++k) {
        y[k] = rf_mul(d1, (float)rf_nibble_of(qs, j0 + k)) - m1;
    }
}

// As BlockQ6_K: y = (d * sc) * (q - 32).
RF_SPLIT_TYPE(SplitRowsQ6_K) {
    const int8_t sc = (int8_t)SplitQ6_K::scales(row, n_groups, g)[j0 / 16];
    const float dl = rf_mul(rf_f16_at(SplitQ6_K::scale_d(row, n_groups, g)), (float)sc);
    const uint8_t *low = SplitQ6_K::low(row, g);
    const uint8_t *high = SplitQ6_K::high(row, n_groups, g);
    for (int k = 0; k < 8; ++k) {
        const int v = j0 + k;
        const int q = rf_nibble_of(low, v) | (SplitQ6_K::high_bits(high, v) << 4);
        y[k] = rf_mul(dl, (float)(q - 32));
    }
}

// ------------------------------------------------------------ plain types
// One value per chunk: neighbouring lanes read neighbouring elements.

#define RF_PLAIN_TYPE(NAME, ELEMENT, TO_F32)                                                     \
    struct NAME {                                                                                 \
        static constexpr int VALUES = 1;                                                          \
        static constexpr int BYTES = sizeof(ELEMENT);                                             \
        static constexpr int CHUNK = 1;                                                           \
        RF_DEVICE void dequantize_chunk(const uint8_t *row, uint32_t, uint64_t c, float *y) {     \
            const ELEMENT v = reinterpret_cast<const ELEMENT *>(row)[c];                          \
            y[0] = TO_F32;                                                                        \
        }                                                                                         \
    };

RF_PLAIN_TYPE(PlainF32, float, v)
RF_PLAIN_TYPE(PlainF16, __half, __half2float(v))
// BF16 is the top half of an f32 (every bit kept, NaN payloads too).
RF_PLAIN_TYPE(PlainBF16, uint16_t, __uint_as_float((uint32_t)v << 16))
RF_PLAIN_TYPE(PlainF64, double, (float)v)
RF_PLAIN_TYPE(PlainI8, int8_t, (float)v)
RF_PLAIN_TYPE(PlainI16, int16_t, (float)v)
RF_PLAIN_TYPE(PlainI32, int32_t, (float)v)

// Instantiates MACRO(name, type) for every format: the kernel names end in these names,
// which are GgmlType::name() in lower case (with "_split" for the split rows).
#define RF_FOR_EACH_WEIGHT_TYPE(MACRO)                                                           \
    MACRO(f32, PlainF32)                                                                          \
    MACRO(f16, PlainF16)                                                                          \
    MACRO(bf16, PlainBF16)                                                                        \
    MACRO(f64, PlainF64)                                                                          \
    MACRO(i8, PlainI8)                                                                            \
    MACRO(i16, PlainI16)                                                                          \
    MACRO(i32, PlainI32)                                                                          \
    MACRO(q4_0, BlockQ4_0)                                                                        \
    MACRO(q4_1, BlockQ4_1)                                                                        \
    MACRO(q5_0, BlockQ5_0)                                                                        \
    MACRO(q5_1, BlockQ5_1)                                                                        \
    MACRO(q8_0, BlockQ8_0)                                                                        \
    MACRO(q8_1, BlockQ8_1)                                                                        \
    MACRO(iq4_nl, BlockIQ4_NL)                                                                    \
    MACRO(mxfp4, BlockMXFP4)                                                                      \
    MACRO(q2_k, BlockQ2_K)                                                                        \
    MACRO(q3_k, BlockQ3_K)                                                                        \
    MACRO(q4_k, BlockQ4_K)                                                                        \
    MACRO(q5_k, BlockQ5_K)                                                                        \
    MACRO(q6_k, BlockQ6_K)                                                                        \
    MACRO(q8_k, BlockQ8_K)                                                                        \
    MACRO(iq4_xs, BlockIQ4_XS)                                                                    \
    MACRO(q4_0_split, SplitRowsQ4_0)                                                              \
    MACRO(q4_1_split, SplitRowsQ4_1)                                                              \
    MACRO(q8_0_split, SplitRowsQ8_0)                                                              \
    MACRO(q4_k_split, SplitRowsQ4_K)                                                              \
    MACRO(q6_k_split, SplitRowsQ6_K)
