// Integer matrix-vector products for decode and small batches: y[t, r] = W[r] . x[t] with
// x as Q8 activations (q8_activations.h), so a 32-value group of a row costs a few 4-way
// int8 dot products (dp4a) instead of 32 dequantizations and float multiplies. The
// activations are quantized as the CPU's 32-value Q8 blocks are, so for the 32-value
// weight types both backends compute the same integer sums and differ only in how the
// scaled group sums are rounded and ordered; for Q4_K and Q6_K the CPU quantizes 256-value
// blocks (Q8_K), so the two round close to, not like, each other.
//
// W is the GGUF tensor's bytes, row r at r * row_bytes, or those rows split (ggml_blocks.h,
// the "_split" kernels); n_cols a multiple of 32 (of 256 for the K-quants and split rows,
// which their rows are by construction).
//
// Launch: one warp per output row, blockDim.x a multiple of the warp size; grid.x =
// ceil((n_lead + n_rows) / (blockDim.x / warpSize)). Lane l takes the groups l, l + warp,
// ... of its row, so a warp reads a contiguous stretch of the row at each step.
//
// A leading matrix w_lead of n_lead rows (0: none), of the same type and width, may share
// the launch: its rows come first and store into y_lead. Decode's Q product rides along
// with the K+V pair so, one launch fewer a layer.
//
// rf_mmvq1_add_norm_<type> is decode's residual product that also prepares the next RMS
// norm (mmvq1_add_norm); the products above finish that norm when given its sums.
#include "compat.h"
#include "ggml_blocks.h"
#include "q8_activations.h"
#include "product_output.h"
#include "rms_scale.h"

// The most tokens one launch multiplies (its accumulators live in registers).
#define RF_MMVQ_MAX_TOKENS 8

// The decode kernels' block size (THREADS in src/backend/gpu/ops/matvec_q8.rs) and the
// blocks an SM should hold at once: 10 caps the registers at 48 a thread, what the kernels
// needed before loading a group ahead of the dependency sync, so as many warps stream weights.
#define RF_MMVQ_THREADS 128
#define RF_MMVQ1_BLOCKS_PER_SM 10

// One 32-value group of a weight row, unpacked: quant k is byte k % 4 of q[k / 4], in the
// order of the group's values. Its dot with an activation group is
//   xd * (scale_lo * sum_{k<16} (q_k - offset) x_k + scale_hi * sum_{k>=16} (...)) + m * xs,
// where the min m is zero, and left out, for the types without one (RF_Q8_HAS_MIN).
struct Q8Group {
    int q[8];
    float scale_lo, scale_hi;
    int offset;
    float m;
};

RF_DEVICE int rf_i32_b4(const uint8_t *p) { return *(const int *)p; }

// The first ceil(BYTES / 4) little-endian words at p, an ALIGN-aligned block of BYTES bytes,
// read as the aligned 16-byte vectors that hold it and shifted into place without a branch
// on the lane's offset. Neighbouring lanes read neighbouring blocks, so an 18-byte Q4_0
// block is two vector loads instead of nine 2-byte ones: the same bytes in a fraction of
// the L1 transactions, which is what held the products to about half the copy rate.
// Bytes past the block in the last word are whatever follows it, or zero. Only the vectors
// that hold a byte of the block are read (a vector that may lie past it is read under that
// test, which the compiler drops where it always holds), so every read stays inside the
// allocation, whose size is whole 16-byte granules (src/backend/gpu/safe/memory.rs).
template <int BYTES, int ALIGN, int WORDS = (BYTES + 3) / 4>
RF_DEVICE void rf_load_block_words(const uint8_t *p, uint32_t (&out)[WORDS]) {
    constexpr int VECTORS = (16 - ALIGN + BYTES + 15) / 16;
    const uint64_t address = (uint64_t)p;
    const uint32_t skip = (uint32_t)(address % 16);  // a multiple of ALIGN
    const uint4 *vectors = (const uint4 *)(address - skip);
    uint32_t w[4 * VECTORS + 4];
#pragma unroll
    for (int v = 0; v < VECTORS; ++v) {
        const uint4 x = 16 * v < skip + BYTES ? vectors[v] : make_uint4(0, 0, 0, 0);
        w[4 * v] = x.x;
        w[4 * v + 1] = x.y;
        w[4 * v + 2] = x.z;
        w[4 * v + 3] = x.w;
    }
#pragma unroll
    for (int k = 4 * VECTORS; k < 4 * VECTORS + 4; ++k) {
        w[k] = 0;
    }
    const uint32_t first = skip / 4, shift = 8 * (skip % 4);
#pragma unroll
    for (int i = 0; i < WORDS; ++i) {
        // Constant indices under a select keep w in registers.
        const uint32_t lo = first == 0 ? w[i] : first == 1 ? w[i + 1] : first == 2 ? w[i + 2] : w[i + 3];
        const uint32_t hi =
            first == 0 ? w[i + 1] : first == 1 ? w[i + 2] : first == 2 ? w[i + 3] : w[i + 4];
        out[i] = (uint32_t)((((uint64_t)hi << 32) | lo) >> shift);
    }
}

// An f16 given by its bits, widened (exactly).
RF_DEVICE float rf_f16_bits_to_f32(uint32_t bits) {
    return __half2float(__ushort_as_half((unsigned short)bits));
}

// Bytes 2.. of a block as words: word k of the result is bytes 2 + 4k .. 5 + 4k.
RF_DEVICE int rf_words_from_byte2(const uint32_t *w, int k) {
    return (int)((w[k] >> 16) | (w[k + 1] << 16));
}

template <typename B>
struct Q8Unpack;

// The unpackers read a group's bytes with loads as wide as the block's alignment allows:
// rows are whole blocks from a 256-aligned allocation, so a block of 18, 22, 34 or 210
// bytes is only 2-aligned, of 20 or 24 bytes 4-aligned, of 144 bytes 16-aligned.
// A 4-bit group's 16 quant bytes as four words: byte j holds value j in its low nibble and
// value j + 16 in its high one (GGUF's Q4_0 and Q4_1, and the split rows of Q4_0, Q4_1,
// Q4_K and Q6_K's low bits).
RF_DEVICE void rf_unpack_nibbles(const int (&w)[4], Q8Group &u) {
#pragma unroll
    for (int k = 0; k < 4; ++k) {
        u.q[k] = w[k] & 0x0F0F0F0F;
        u.q[k + 4] = (w[k] >> 4) & 0x0F0F0F0F;
    }
}

RF_DEVICE void rf_unpack_nibbles(uint4 v, Q8Group &u) {
    const int w[4] = {(int)v.x, (int)v.y, (int)v.z, (int)v.w};
    rf_unpack_nibbles(w, u);
}

// The same for signed nibbles (Q4_0's split rows, ggml_blocks.h), each moved into the high
// half of its byte: the byte is then 16 times the nibble's value as an int8, which dp4a
// multiplies as it is (RF_Q8_SIXTEENFOLD).
RF_DEVICE void rf_unpack_signed_nibbles(uint4 v, Q8Group &u) {
    const uint32_t w[4] = {v.x, v.y, v.z, v.w};
#pragma unroll
    for (int k = 0; k < 4; ++k) {
        u.q[k] = (int)((w[k] << 4) & 0xF0F0F0F0u);
        u.q[k + 4] = (int)(w[k] & 0xF0F0F0F0u);
    }
}

template <>
struct Q8Unpack<BlockQ4_0> {
    RF_DEVICE void group(const uint8_t *row, uint32_t, uint32_t g, Q8Group &u) {
        uint32_t w[5];
        rf_load_block_words<18, 2>(row + (uint64_t)g * 18, w);
        const int quants[4] = {rf_words_from_byte2(w, 0), rf_words_from_byte2(w, 1),
                               rf_words_from_byte2(w, 2), rf_words_from_byte2(w, 3)};
        rf_unpack_nibbles(quants, u);
        u.scale_lo = u.scale_hi = rf_f16_bits_to_f32(w[0] & 0xFFFF);
        u.offset = 8;
        u.m = 0.0f;
    }
};

template <>
struct Q8Unpack<BlockQ4_1> {
    RF_DEVICE void group(const uint8_t *row, uint32_t, uint32_t g, Q8Group &u) {
        uint32_t w[5];
        rf_load_block_words<20, 4>(row + (uint64_t)g * 20, w);
        const int quants[4] = {(int)w[1], (int)w[2], (int)w[3], (int)w[4]};
        rf_unpack_nibbles(quants, u);
        u.scale_lo = u.scale_hi = rf_f16_bits_to_f32(w[0] & 0xFFFF);
        u.offset = 0;
        u.m = rf_f16_bits_to_f32(w[0] >> 16);
    }
};

// Bits 0..3 of `bits` moved to bit 4 of each of four bytes.
RF_DEVICE int rf_fifth_bits(uint32_t bits) {
    return (int)(((bits & 1) << 4) | ((bits & 2) << 11) | ((bits & 4) << 18) |
                 ((bits & 8) << 25));
}

template <>
struct Q8Unpack<BlockQ5_0> {
    RF_DEVICE void group(const uint8_t *row, uint32_t, uint32_t g, Q8Group &u) {
        uint32_t w[6];
        rf_load_block_words<22, 2>(row + (uint64_t)g * 22, w);
        const uint32_t qh = (uint32_t)rf_words_from_byte2(w, 0);
        for (int k = 0; k < 4; ++k) {
            const int v = rf_words_from_byte2(w, k + 1);
            u.q[k] = (v & 0x0F0F0F0F) | rf_fifth_bits(qh >> (4 * k));
            u.q[k + 4] = ((v >> 4) & 0x0F0F0F0F) | rf_fifth_bits(qh >> (16 + 4 * k));
        }
        u.scale_lo = u.scale_hi = rf_f16_bits_to_f32(w[0] & 0xFFFF);
        u.offset = 16;
        u.m = 0.0f;
    }
};

template <>
struct Q8Unpack<BlockQ5_1> {
    RF_DEVICE void group(const uint8_t *row, uint32_t, uint32_t g, Q8Group &u) {
        const uint8_t *b = row + (uint64_t)g * 24;
        const uint32_t qh = (uint32_t)rf_i32_b4(b + 4);
        for (int k = 0; k < 4; ++k) {
            const int v = rf_i32_b4(b + 8 + 4 * k);
            u.q[k] = (v & 0x0F0F0F0F) | rf_fifth_bits(qh >> (4 * k));
            u.q[k + 4] = ((v >> 4) & 0x0F0F0F0F) | rf_fifth_bits(qh >> (16 + 4 * k));
        }
        u.scale_lo = u.scale_hi = rf_f16_at(b);
        u.offset = 0;
        u.m = rf_f16_at(b + 2);
    }
};

template <>
struct Q8Unpack<BlockQ8_0> {
    RF_DEVICE void group(const uint8_t *row, uint32_t, uint32_t g, Q8Group &u) {
        uint32_t w[9];
        rf_load_block_words<34, 2>(row + (uint64_t)g * 34, w);
        for (int k = 0; k < 8; ++k) {
            u.q[k] = rf_words_from_byte2(w, k);
        }
        u.scale_lo = u.scale_hi = rf_f16_bits_to_f32(w[0] & 0xFFFF);
        u.offset = 0;
        u.m = 0.0f;
    }
};

// Group i of a block is 32-value group i % 8 of block i / 8: one scale and one min.
template <>
struct Q8Unpack<BlockQ4_K> {
    RF_DEVICE void group(const uint8_t *row, uint32_t, uint32_t g, Q8Group &u) {
        const uint8_t *b = row + (uint64_t)(g / 8) * 144;
        const int i = g % 8;
        int sc, m;
        rf_k4_scale_min(b + 4, i, &sc, &m);
        // 144-byte blocks from an aligned row start: the quants are two 16-byte vectors.
        const int4 *qs = (const int4 *)(b + 16 + 32 * (i / 2));
        const int4 lo = qs[0], hi = qs[1];
        const int words[8] = {lo.x, lo.y, lo.z, lo.w, hi.x, hi.y, hi.z, hi.w};
        const int shift = 4 * (i % 2);
        for (int k = 0; k < 8; ++k) {
            u.q[k] = (words[k] >> shift) & 0x0F0F0F0F;
        }
        u.scale_lo = u.scale_hi = rf_mul(rf_f16_at(b), (float)sc);
        u.offset = 0;
        u.m = -rf_mul(rf_f16_at(b + 2), (float)m);
    }
};

// Group i of a block: quarter i % 4 of half i / 4 (dequantize_row_q6_k's layout), two
// 16-value scales.
template <>
struct Q8Unpack<BlockQ6_K> {
    RF_DEVICE void group(const uint8_t *row, uint32_t, uint32_t g, Q8Group &u) {
        const uint8_t *b = row + (uint64_t)(g / 8) * 210;
        const int i = g % 8;
        const int half = i / 4, quarter = i % 4;
        // The group's 32 high-bit and 32 low-bit bytes, each a 2-aligned stretch read as
        // the vectors that hold it, as a block is; one stretch at a time, into u.q.
        uint32_t words[8];
        rf_load_block_words<32, 2>(b + 128 + 32 * half, words);
        for (int k = 0; k < 8; ++k) {
            u.q[k] = (((int)words[k] >> (2 * quarter)) & 0x03030303) << 4;
        }
        rf_load_block_words<32, 2>(b + 64 * half + 32 * (quarter % 2), words);
        for (int k = 0; k < 8; ++k) {
            u.q[k] |= ((int)words[k] >> (4 * (quarter / 2))) & 0x0F0F0F0F;
        }
        const float d = rf_f16_at(b + 208);
        const uint32_t scales = *(const uint16_t *)(b + 192 + 2 * i);
        u.scale_lo = rf_mul(d, (float)(int8_t)(scales & 0xFF));
        u.scale_hi = rf_mul(d, (float)(int8_t)(scales >> 8));
        u.offset = 32;
        u.m = 0.0f;
    }
};

// The split rows (ggml_blocks.h): group g's quants are the aligned vector(s) at 16 g
// (32 g) of the row, its head an aligned f16 (Q4_1: an aligned scale and min pair) after
// the row's n_groups quant arrays; Q4_K's head is its block's 16 bytes, Q6_K's are three
// small aligned reads.
//
// A split-row group is loaded (Q8Raw::load) apart from being unpacked (Q8Raw::unpack): the
// loaded form is 5 registers (Q8_0: 9; Q4_K and Q6_K: 9 and 8) where the unpacked one is
// 12, so a lane can hold the loads of several groups in flight at once
// (mmvq1_row_batched). BATCH is how many of one matrix: about 64 bytes of weights a lane
// (the K types' 2 keep the registers near Q8_0's).
template <typename B>
struct Q8Raw {
    static constexpr bool BATCHED = false;
};

template <>
struct Q8Raw<SplitRowsQ4_0> {
    static constexpr bool BATCHED = true;
    static constexpr int BATCH = 4;
    uint4 q;
    uint16_t d;
    __device__ __forceinline__ void load(const uint8_t *row, uint32_t n_groups, uint32_t g) {
        q = rf_load_weights16(SplitQ4_0::quants(row, g));
        d = *reinterpret_cast<const uint16_t *>(SplitQ4_0::head(row, n_groups, g));
    }
    __device__ __forceinline__ void unpack(Q8Group &u) const {
        rf_unpack_signed_nibbles(q, u);
        u.scale_lo = u.scale_hi = rf_f16_bits_to_f32(d);
        u.offset = 0;
        u.m = 0.0f;
    }
};

template <>
struct Q8Raw<SplitRowsQ4_1> {
    static constexpr bool BATCHED = true;
    static constexpr int BATCH = 4;
    uint4 q;
    uint32_t head;
    __device__ __forceinline__ void load(const uint8_t *row, uint32_t n_groups, uint32_t g) {
        q = rf_load_weights16(SplitQ4_1::quants(row, g));
        head = *reinterpret_cast<const uint32_t *>(SplitQ4_1::head(row, n_groups, g));
    }
    __device__ __forceinline__ void unpack(Q8Group &u) const {
        rf_unpack_nibbles(q, u);
        u.scale_lo = u.scale_hi = rf_f16_bits_to_f32(head & 0xFFFF);
        u.offset = 0;
        u.m = rf_f16_bits_to_f32(head >> 16);
    }
};

template <>
struct Q8Raw<SplitRowsQ8_0> {
    static constexpr bool BATCHED = true;
    static constexpr int BATCH = 2;
    uint4 lo, hi;
    uint16_t d;
    __device__ __forceinline__ void load(const uint8_t *row, uint32_t n_groups, uint32_t g) {
        const uint8_t *qs = SplitQ8_0::quants(row, g);
        lo = rf_load_weights16(qs);
        hi = rf_load_weights16(qs + 16);
        d = *reinterpret_cast<const uint16_t *>(SplitQ8_0::head(row, n_groups, g));
    }
    __device__ __forceinline__ void unpack(Q8Group &u) const {
        const uint32_t w[8] = {lo.x, lo.y, lo.z, lo.w, hi.x, hi.y, hi.z, hi.w};
#pragma unroll
        for (int k = 0; k < 8; ++k) {
            u.q[k] = (int)w[k];
        }
        u.scale_lo = u.scale_hi = rf_f16_bits_to_f32(d);
        u.offset = 0;
        u.m = 0.0f;
    }
};

// Byte j (0..11) of the 12 scale bytes of a Q4_K head held as three words, by selects, so
// the words stay in registers.
RF_DEVICE int rf_k4_scale_byte(uint32_t s0, uint32_t s1, uint32_t s2, int j) {
    const uint32_t word = j < 4 ? s0 : j < 8 ? s1 : s2;
    return (int)((word >> (8 * (j % 4))) & 0xFF);
}

template <>
struct Q8Raw<SplitRowsQ4_K> {
    static constexpr bool BATCHED = true;
    static constexpr int BATCH = 2;
    uint4 q, head;
    int i;  // the group's place in its block
    __device__ __forceinline__ void load(const uint8_t *row, uint32_t n_groups, uint32_t g) {
        q = rf_load_weights16(SplitQ4_K::quants(row, g));
        head = rf_load_weights16(SplitQ4_K::head(row, n_groups, g));
        i = (int)(g % 8);
    }
    // As Q8Unpack<BlockQ4_K>, the scale bytes picked out of the head's registers.
    __device__ __forceinline__ void unpack(Q8Group &u) const {
        rf_unpack_nibbles(q, u);
        const auto byte = [&](int j) { return rf_k4_scale_byte(head.y, head.z, head.w, j); };
        int sc, m;
        rf_k4_scale_min_of(byte, i, &sc, &m);
        u.scale_lo = u.scale_hi = rf_mul(rf_f16_bits_to_f32(head.x & 0xFFFF), (float)sc);
        u.offset = 0;
        u.m = -rf_mul(rf_f16_bits_to_f32(head.x >> 16), (float)m);
    }
};

template <>
struct Q8Raw<SplitRowsQ6_K> {
    static constexpr bool BATCHED = true;
    static constexpr int BATCH = 2;
    uint4 low;
    uint2 high;
    uint16_t scales, d;
    __device__ __forceinline__ void load(const uint8_t *row, uint32_t n_groups, uint32_t g) {
        low = rf_load_weights16(SplitQ6_K::low(row, g));
        high = *reinterpret_cast<const uint2 *>(SplitQ6_K::high(row, n_groups, g));
        scales = *reinterpret_cast<const uint16_t *>(SplitQ6_K::scales(row, n_groups, g));
        d = *reinterpret_cast<const uint16_t *>(SplitQ6_K::scale_d(row, n_groups, g));
    }
    // As Q8Unpack<BlockQ6_K>: the high bits of q[k] (values 4 k .. 4 k + 3) are word k / 4
    // of them shifted by 2 (k % 4).
    __device__ __forceinline__ void unpack(Q8Group &u) const {
        rf_unpack_nibbles(low, u);
#pragma unroll
        for (int k = 0; k < 4; ++k) {
            u.q[k] |= (int)(((high.x >> (2 * k)) & 0x03030303) << 4);
            u.q[k + 4] |= (int)(((high.y >> (2 * k)) & 0x03030303) << 4);
        }
        const float dd = rf_f16_bits_to_f32(d);
        u.scale_lo = rf_mul(dd, (float)(int8_t)(scales & 0xFF));
        u.scale_hi = rf_mul(dd, (float)(int8_t)(scales >> 8));
        u.offset = 32;
        u.m = 0.0f;
    }
};

// The split types' one-group reads, for the kernels that take a group at a time.
#define RF_SPLIT_UNPACK(TYPE)                                                              \
    template <>                                                                            \
    struct Q8Unpack<TYPE> {                                                                \
        RF_DEVICE void group(const uint8_t *row, uint32_t n_groups, uint32_t g, Q8Group &u) { \
            Q8Raw<TYPE> raw;                                                               \
            raw.load(row, n_groups, g);                                                    \
            raw.unpack(u);                                                                 \
        }                                                                                  \
    };

RF_SPLIT_UNPACK(SplitRowsQ4_0)
RF_SPLIT_UNPACK(SplitRowsQ4_1)
RF_SPLIT_UNPACK(SplitRowsQ8_0)
RF_SPLIT_UNPACK(SplitRowsQ4_K)
RF_SPLIT_UNPACK(SplitRowsQ6_K)

// Whether a type's values carry a min (d q + m): Q4_1, Q5_1 and Q4_K. Only their dots add
// the min times the activation group's scaled sum (xs), as the CPU's do; for the others
// that term is zero, and leaving it out spares a load and a multiply a group (ncu: a tenth
// of the 8B Q4_0 gate and up product's stalls waited on that load).
template <typename B>
constexpr bool RF_Q8_HAS_MIN = false;
template <>
constexpr bool RF_Q8_HAS_MIN<BlockQ4_1> = true;
template <>
constexpr bool RF_Q8_HAS_MIN<BlockQ5_1> = true;
template <>
constexpr bool RF_Q8_HAS_MIN<BlockQ4_K> = true;
template <>
constexpr bool RF_Q8_HAS_MIN<SplitRowsQ4_1> = true;
template <>
constexpr bool RF_Q8_HAS_MIN<SplitRowsQ4_K> = true;

// Whether a type unpacks its quants as 16 times their values (rf_unpack_signed_nibbles):
// its integer sums are then exact multiples of 16, divided back before they are scaled.
// Q4_0's split rows: the signed nibbles spare the dot the activations' sums that the
// offset of 8 needs, eight dp4a of a group's 24 (8B Q4_0, H100: docs/performance.md).
template <typename B>
constexpr bool RF_Q8_SIXTEENFOLD = false;
template <>
constexpr bool RF_Q8_SIXTEENFOLD<SplitRowsQ4_0> = true;

// Whether a type scales each 16 values of a group apart (scale_lo, scale_hi): Q6_K. The
// others' one scale multiplies the group's whole integer sum.
template <typename B>
constexpr bool RF_Q8_HALF_SCALES = false;
template <>
constexpr bool RF_Q8_HALF_SCALES<BlockQ6_K> = true;
template <>
constexpr bool RF_Q8_HALF_SCALES<SplitRowsQ6_K> = true;

// The dot of an unpacked weight group of type B with activation group x (32 int8,
// 16-aligned); xs is read only where B has a min.
template <typename B>
RF_DEVICE float rf_q8_group_dot(const Q8Group &u, const int8_t *x, float xd, const float *xs) {
    const int4 *x4 = (const int4 *)x;
    const int4 a = x4[0], c = x4[1];
    const int xv[8] = {a.x, a.y, a.z, a.w, c.x, c.y, c.z, c.w};
    int lo = 0, hi = 0, sum_lo = 0, sum_hi = 0;
#pragma unroll
    for (int k = 0; k < 4; ++k) {
        lo = rf_dp4a(u.q[k], xv[k], lo);
        hi = rf_dp4a(u.q[k + 4], xv[k + 4], hi);
        sum_lo = rf_dp4a(0x01010101, xv[k], sum_lo);
        sum_hi = rf_dp4a(0x01010101, xv[k + 4], sum_hi);
    }
    // Which products fuse with which add is spelt out (fmaf, rf_mul), not left to the
    // compiler, whose choice may differ between the kernels that inline this: the split
    // and GGUF rows of a type give the same bits.
    static_assert(!(RF_Q8_HALF_SCALES<B> && RF_Q8_SIXTEENFOLD<B>), "one or the other");
    if constexpr (RF_Q8_HALF_SCALES<B>) {
        const float dot = fmaf(u.scale_lo, (float)(lo - u.offset * sum_lo),
                               rf_mul(u.scale_hi, (float)(hi - u.offset * sum_hi)));
        return rf_mul(xd, dot);
    }
    // (d * xd) * sum, as the CPU's dots round it. (An arithmetic shift, as nvcc and hipcc
    // do for a signed int: exact on a multiple.)
    constexpr int shift = RF_Q8_SIXTEENFOLD<B> ? 4 : 0;
    const float scale = rf_mul(u.scale_lo, xd);
    const float sum = (float)(((lo + hi) >> shift) - u.offset * (sum_lo + sum_hi));
    if constexpr (RF_Q8_HAS_MIN<B>) {
        return fmaf(scale, sum, rf_mul(u.m, *xs));
    }
    return rf_mul(scale, sum);
}

// Group g of the row(s) into the accumulators, for each token.
template <typename B, int MAX_T>
RF_DEVICE void mmvq_accumulate(const Q8Group &u, const Q8Group &u_b, bool two, uint32_t g,
                               uint32_t n_groups, const int8_t *xq, const float *xd,
                               const float *xs, uint32_t n_tokens, float (&acc)[MAX_T],
                               float (&acc_b)[MAX_T]) {
#pragma unroll
    for (int t = 0; t < MAX_T; ++t) {
        if (t < n_tokens) {
            const uint64_t group = (uint64_t)t * n_groups + g;
            const int8_t *x = xq + group * 32;
            acc[t] += rf_q8_group_dot<B>(u, x, xd[group], xs + group);
            if (two) {
                acc_b[t] += rf_q8_group_dot<B>(u_b, x, xd[group], xs + group);
            }
        }
    }
}

// What a product does between loading its first weights and reading its activations: wait
// for the kernel that writes them (compat.h). A kernel may do more there (mmvq1_add_norm
// quantizes its input into shared memory) as long as every thread of the block gets there.
// With let_next_launch_first it lets the next kernel launch before it waits, so the
// attention after Q, K and V, or the argmax after the head, is resident by the time the
// product ends. The stored products do (H100, docs/performance.md: tg128 +0.3% to +4.6%
// on seven of eight integer rows, -1.8% on the 1B shape's Q4_K_M), and the residual
// products where the host asks it, for large matrices (EARLY_LAUNCH_BYTES in
// src/backend/gpu/ops/matvec_q8.rs); the SwiGLU products doing it gained nothing (8B Q4_0
// +0.1%).
struct RfWaitForInput {
    bool let_next_launch_first = false;
    __device__ __forceinline__ void operator()() const {
        rf_grid_dependency_sync(let_next_launch_first);
    }
};

// Loads the groups first, first + warp, ... (BATCH of them, those inside the row) of the
// row(s) into raw.
template <typename B, bool TWO, int BATCH>
RF_DEVICE void mmvq1_load_batch(const uint8_t *row_a, const uint8_t *row_b, uint32_t n_groups,
                                uint32_t first, Q8Raw<B> (&raw)[BATCH],
                                Q8Raw<B> (&raw_b)[BATCH]) {
    const uint32_t warp = rf_warp_size();
#pragma unroll
    for (int k = 0; k < BATCH; ++k) {
        const uint32_t g = first + k * warp;
        if (g < n_groups) {
            raw[k].load(row_a, n_groups, g);
            if (TWO) {
                raw_b[k].load(row_b, n_groups, g);
            }
        }
    }
}

// mmvq_row_sums' one-token walk for the split rows: each lane loads a batch of its groups
// at once and unpacks them as it uses them, so 64 bytes of weights a lane are in flight
// instead of the one group a 48-register unrolled loop keeps (ncu, 8B down product
// 4,096 x 14,336 Q4_0: 1.44 TB/s, its warps stalled on their loads 92% of the time). The
// first batch is loaded before the dependency sync (a 4,096-wide Q4_0 row is one batch).
// Groups are added in the same order as the general walk adds them, so the results are its
// bits. Every lane receives the row's sums.
template <typename B, bool TWO, typename Ready>
RF_DEVICE void mmvq1_sums_batched(const uint8_t *row_a, const uint8_t *row_b, const int8_t *xq,
                                  const float *xd, const float *xs, uint32_t n_groups,
                                  float &a, float &b, Ready ready) {
    constexpr int BATCH = TWO ? Q8Raw<B>::BATCH / 2 : Q8Raw<B>::BATCH;
    const uint32_t warp = rf_warp_size();
    const uint32_t lane = threadIdx.x % warp;
    Q8Raw<B> raw[BATCH], raw_b[BATCH];
    mmvq1_load_batch<B, TWO, BATCH>(row_a, row_b, n_groups, lane, raw, raw_b);
    ready();
    float acc = 0.0f, acc_b = 0.0f;
    for (uint32_t first = lane; first < n_groups; first += BATCH * warp) {
#pragma unroll
        for (int k = 0; k < BATCH; ++k) {
            const uint32_t g = first + k * warp;
            if (g < n_groups) {
                Q8Group u;
                raw[k].unpack(u);
                acc += rf_q8_group_dot<B>(u, xq + (uint64_t)g * 32, xd[g], xs + g);
                if (TWO) {
                    raw_b[k].unpack(u);
                    acc_b += rf_q8_group_dot<B>(u, xq + (uint64_t)g * 32, xd[g], xs + g);
                }
            }
        }
        mmvq1_load_batch<B, TWO, BATCH>(row_a, row_b, n_groups, first + BATCH * warp, raw,
                                        raw_b);
    }
    a = rf_warp_sum(acc);
    b = TWO ? rf_warp_sum(acc_b) : 0.0f;
}

// mmvq_row_sums' walk a group a lane at a time (the GGUF layout's, and every layout's
// products of several tokens), with or without a second matrix (TWO): two instances, so
// that a lone matrix's walk never tests for the second one (as the F16 one-token
// product's lone and pair walks, matvec.hip).
template <typename B, int MAX_T, bool TWO, typename Ready>
RF_DEVICE void mmvq_row_walk(const uint8_t *row_a, const uint8_t *row_b, const int8_t *xq,
                             const float *xd, const float *xs, uint32_t n_groups,
                             uint32_t n_tokens, float (&acc)[MAX_T], float (&acc_b)[MAX_T],
                             Ready ready) {
    const int warp = rf_warp_size();
    const int lane = threadIdx.x % warp;
    constexpr int UNROLL = MAX_T == 1 ? 4 : 1;
    constexpr int PREFETCH = 1;
    Q8Group first[PREFETCH], first_b[PREFETCH];
#pragma unroll
    for (int k = 0; k < PREFETCH; ++k) {
        const uint32_t g = lane + k * warp;
        if (g < n_groups) {
            Q8Unpack<B>::group(row_a, n_groups, g, first[k]);
            if constexpr (TWO) {
                Q8Unpack<B>::group(row_b, n_groups, g, first_b[k]);
            }
        }
    }
    ready();
#pragma unroll
    for (int t = 0; t < MAX_T; ++t) {
        acc[t] = acc_b[t] = 0.0f;
    }
#pragma unroll
    for (int k = 0; k < PREFETCH; ++k) {
        const uint32_t g = lane + k * warp;
        if (g < n_groups) {
            mmvq_accumulate<B, MAX_T>(first[k], first_b[k], TWO, g, n_groups, xq, xd, xs,
                                      n_tokens, acc, acc_b);
        }
    }
#pragma unroll UNROLL
    for (uint32_t g = lane + PREFETCH * warp; g < n_groups; g += warp) {
        Q8Group u, u_b;
        Q8Unpack<B>::group(row_a, n_groups, g, u);
        if constexpr (TWO) {
            Q8Unpack<B>::group(row_b, n_groups, g, u_b);
        }
        mmvq_accumulate<B, MAX_T>(u, u_b, TWO, g, n_groups, xq, xd, xs, n_tokens, acc, acc_b);
    }
#pragma unroll
    for (int t = 0; t < MAX_T; ++t) {
        if (t < n_tokens) {
            acc[t] = rf_warp_sum(acc[t]);
            acc_b[t] = TWO ? rf_warp_sum(acc_b[t]) : 0.0f;
        }
    }
}

// One warp's output row before it is written: acc[t] = W[row] . x[t] (and acc_b[t] for
// the second matrix) for every token, in every lane. MAX_T: the most tokens of this
// instance; decode's instance (1) keeps one accumulator per matrix, so it needs fewer
// registers (more warps in flight) and unrolls its walk along the row to have several
// groups' loads outstanding at once (the split rows' takes mmvq1_sums_batched's walk).
//
// The lane's first group is loaded before waiting on the previous kernel: no kernel writes
// weights, so with overlapped launches (compat.h) the blocks that become resident while the
// previous kernel finishes hold their first weights by the time its output is visible,
// instead of starting the DRAM round trip only then. A small model's product is one wave
// of rows of at most 32 groups, so all of its weight reads overlap the kernel before it
// (SmolLM2 shape, H200: tg128 941 -> 1,016 t/s). Loading more groups early costs registers,
// and so warps in flight, which the large products need more (8B: 375 -> 309 t/s with
// four groups early).
template <typename B, int MAX_T, typename Ready = RfWaitForInput>
RF_DEVICE void mmvq_row_sums(const uint8_t *w, const uint8_t *w_b, uint64_t row_bytes,
                             const int8_t *xq, const float *xd, const float *xs, uint64_t row,
                             uint32_t n_cols, uint32_t n_tokens, float (&acc)[MAX_T],
                             float (&acc_b)[MAX_T], Ready ready = Ready()) {
    const bool two = w_b != nullptr;
    const uint8_t *row_a = w + row * row_bytes;
    const uint8_t *row_b = two ? w_b + row * row_bytes : nullptr;
    const uint32_t n_groups = n_cols / 32;
    if constexpr (MAX_T == 1 && Q8Raw<B>::BATCHED) {
        if (two) {
            mmvq1_sums_batched<B, true>(row_a, row_b, xq, xd, xs, n_groups, acc[0], acc_b[0],
                                        ready);
        } else {
            mmvq1_sums_batched<B, false>(row_a, nullptr, xq, xd, xs, n_groups, acc[0], acc_b[0],
                                         ready);
        }
        return;
    }
    if (two) {
        mmvq_row_walk<B, MAX_T, true>(row_a, row_b, xq, xd, xs, n_groups, n_tokens, acc, acc_b,
                                      ready);
    } else {
        mmvq_row_walk<B, MAX_T, false>(row_a, nullptr, xq, xd, xs, n_groups, n_tokens, acc,
                                       acc_b, ready);
    }
}

// The RMS norm's scale 1 / sqrt(mean(x^2) + eps) of a vector of n_groups * 32 values from
// its groups' sums of squares (square_sums, as rf_mmvq1_add_norm_* writes them), to every
// lane of the warp: the sum in f64, the mean rounded to f32, as norm.hip computes it.
RF_DEVICE float rf_rms_scale(const double *square_sums, uint32_t n_groups, float eps) {
    const int warp = rf_warp_size();
    double sum = 0.0;
    for (uint32_t g = threadIdx.x % warp; g < n_groups; g += warp) {
        sum += square_sums[g];
    }
    return rf_rms_scale_of(rf_lanes_sum_f64(sum, warp), 32.0 * n_groups, eps);
}

// One warp's output row, written. With square_sums (not null), x[t] is the Q8 form of a
// vector v * w_norm whose RMS norm is still to be applied (rf_mmvq1_add_norm_*): its
// groups' sums of squares of v follow at t * n_groups, and each of the token's products
// is scaled by the norm's 1 / sqrt(mean(v^2) + eps), which is the same as multiplying the
// normalised vector (the scale is the same for every value of the token).
template <typename B, int MAX_T>
RF_DEVICE void mmvq_row(const uint8_t *w, const uint8_t *w_b, uint64_t row_bytes,
                        const int8_t *xq, const float *xd, const float *xs, float *y,
                        float *y_b, uint64_t row, uint32_t n_rows, uint32_t n_cols,
                        uint32_t n_tokens, uint32_t mode, const double *square_sums,
                        float eps) {
    float acc[MAX_T], acc_b[MAX_T];
    mmvq_row_sums<B, MAX_T>(w, w_b, row_bytes, xq, xd, xs, row, n_cols, n_tokens, acc, acc_b,
                            RfWaitForInput{mode == RF_OUT_STORE});
    const uint32_t n_groups = n_cols / 32;
#pragma unroll
    for (int t = 0; t < MAX_T; ++t) {
        if (t < n_tokens) {
            const float scale = square_sums == nullptr
                                    ? 1.0f
                                    : rf_rms_scale(square_sums + (uint64_t)t * n_groups,
                                                   n_groups, eps);
            if (threadIdx.x % rf_warp_size() == 0) {
                rf_write_output(y, y_b, (uint64_t)t * n_rows + row, scale * acc[t],
                                scale * acc_b[t], w_b != nullptr, mode);
            }
        }
    }
}

// Warps past the last row leave at once: leaving counts as reaching the dependency sync.
template <typename B, int MAX_T>
static __device__ void mmvq(const uint8_t *w, const uint8_t *w_b, uint64_t row_bytes,
                            const int8_t *xq, const float *xd, const float *xs, float *y,
                            float *y_b, uint32_t n_rows, uint32_t n_cols, uint32_t n_tokens,
                            uint32_t mode, const uint8_t *w_lead, float *y_lead,
                            uint32_t n_lead, const double *square_sums, float eps) {
    const int warp = rf_warp_size();
    const uint64_t row = (uint64_t)blockIdx.x * (blockDim.x / warp) + threadIdx.x / warp;
    // Warp-uniform: a warp takes a row whole or leaves whole, so the shuffles see every lane.
    if (row < n_lead) {
        mmvq_row<B, MAX_T>(w_lead, nullptr, row_bytes, xq, xd, xs, y_lead, nullptr, row, n_lead,
                           n_cols, n_tokens, RF_OUT_STORE, square_sums, eps);
    } else if (row - n_lead < n_rows) {
        mmvq_row<B, MAX_T>(w, w_b, row_bytes, xq, xd, xs, y, y_b, row - n_lead, n_rows, n_cols,
                           n_tokens, mode, square_sums, eps);
    }
}

// The input of mmvq1_add_norm given as f32 (x_f32): after the wait, the block quantizes it
// into shared memory (xq, xd, xs there) as rf_quantize_q8_f32 would, a warp a group at a
// time, so the product needs no quantization launch before it. Done at each warp's `first`
// row, which every warp of the block has (a block has at most 32 warps).
struct RfQuantizeInput {
    const float *x_f32;
    uint32_t n_cols;
    int8_t *xq;
    float *xd, *xs;
    bool first;
    bool let_next_launch_first;
    __device__ __forceinline__ void operator()() const {
        if (!first) {
            return;
        }
        rf_grid_dependency_sync(let_next_launch_first);
        for (uint32_t i = threadIdx.x; i < n_cols; i += blockDim.x) {
            rf_quantize_q8_group(x_f32[i], i % 32, xq, xd, xs, i, i / 32);
        }
        __syncthreads();
    }
};

// The residual product of one token that also prepares the next RMS norm's input, so the
// norm needs no launch of its own: y += W x, then the new y times the norm's weights as Q8
// activations (oq, od, os) and, per group of 32 values, the sum of squares of the new y in
// f64 (square_sums), from which the products that read the activations finish the norm
// (mmvq_row). A block computes the 32 rows of one group, so it can quantize them itself:
// no block waits on another. STAGED: the input is f32 (x_f32) and each block quantizes it
// first (RfQuantizeInput; dynamic shared memory of n_cols * 5 / 4 bytes); otherwise it is
// Q8 activations (xq, xd, xs). Two instances rather than a branch: with the staged walk
// beside it, the Q8 one's loop compiled slower (8B Q8_0 tg128 -3%). let_next_launch_first:
// as RfWaitForInput's.
//
// Launch: grid.x = n_rows / 32 (n_rows a multiple of 32), RF_ADD_NORM_THREADS threads;
// the block's warps take its rows in turn.
#define RF_ADD_NORM_THREADS 1024
template <typename B, bool STAGED>
static __device__ void mmvq1_add_norm(const uint8_t *w, uint64_t row_bytes, const int8_t *xq,
                                      const float *xd, const float *xs, const float *x_f32,
                                      float *y, uint32_t n_cols, const float *norm_w,
                                      int8_t *oq, float *od, float *os, double *square_sums,
                                      bool let_next_launch_first) {
    __shared__ float values[32];  // the group's new values of y
    extern __shared__ int4 staged[];  // with x_f32: its quants, then steps and sums
    const uint32_t warp = rf_warp_size();
    const uint32_t lane = threadIdx.x % warp;
    const uint64_t group = blockIdx.x, first_row = group * 32;
    // A norm weight is a weight: read before the dependency sync, by the quantizing lanes.
    const float weight = threadIdx.x < 32 ? norm_w[first_row + threadIdx.x] : 0.0f;
    int8_t *staged_q = reinterpret_cast<int8_t *>(staged);
    float *staged_d = reinterpret_cast<float *>(staged_q + n_cols);
    float *staged_s = staged_d + n_cols / 32;
    for (uint32_t k = threadIdx.x / warp; k < 32; k += blockDim.x / warp) {
        float acc[1], unused[1];
        if constexpr (STAGED) {
            const bool first = k == threadIdx.x / warp;
            const RfQuantizeInput quantize{
                x_f32, n_cols, staged_q, staged_d, staged_s, first, let_next_launch_first};
            mmvq_row_sums<B, 1>(w, nullptr, row_bytes, staged_q, staged_d, staged_s,
                                first_row + k, n_cols, 1, acc, unused, quantize);
        } else {
            mmvq_row_sums<B, 1>(w, nullptr, row_bytes, xq, xd, xs, first_row + k, n_cols, 1,
                                acc, unused, RfWaitForInput{let_next_launch_first});
        }
        if (lane == 0) {
            const float v = y[first_row + k] + acc[0];
            y[first_row + k] = v;
            values[k] = v;
        }
    }
    __syncthreads();
    // The group's 32 values are in the first 32 lanes of warp 0 (a 64-lane wavefront's
    // upper half waits: every shuffle below stays within 32 lanes).
    // The step in f32: v * weight is not normalised yet, and a small stream's steps would
    // be f16 subnormals (amax below 127 * 2^-14), losing their precision.
    if (threadIdx.x < 32) {
        rf_prepare_norm_group(values[threadIdx.x], weight, threadIdx.x, group, oq, od, os,
                              square_sums);
    }
}

// rf_mmvq_<type> for up to RF_MMVQ_MAX_TOKENS tokens, rf_mmvq1_<type> for one (both with
// an optional norm to finish, mmvq_row), rf_mmvq1_add_norm_<type> the residual product that
// prepares the next norm (mmvq1_add_norm) and rf_mmvq1_add_norm_f32_<type> the same for an
// f32 input (the same parameters; each reads only its own input's).
#define RF_MMVQ_KERNEL(NAME, TYPE)                                                               \
    RF_KERNEL void rf_mmvq_##NAME(const uint8_t *w, const uint8_t *w_b, uint64_t row_bytes,      \
                                  const int8_t *xq, const float *xd, const float *xs, float *y,  \
                                  float *y_b, uint32_t n_rows, uint32_t n_cols,                  \
                                  uint32_t n_tokens, uint32_t mode, const uint8_t *w_lead,       \
                                  float *y_lead, uint32_t n_lead, const double *square_sums,     \
                                  float eps) {                                                   \
        mmvq<TYPE, RF_MMVQ_MAX_TOKENS>(w, w_b, row_bytes, xq, xd, xs, y, y_b, n_rows, n_cols,    \
                                       n_tokens, mode, w_lead, y_lead, n_lead, square_sums, eps); \
    }                                                                                            \
    RF_KERNEL void RF_LAUNCH_BOUNDS(RF_MMVQ_THREADS, RF_MMVQ1_BLOCKS_PER_SM)                     \
        rf_mmvq1_##NAME(const uint8_t *w, const uint8_t *w_b, uint64_t row_bytes,                \
                        const int8_t *xq, const float *xd, const float *xs, float *y,            \
                        float *y_b, uint32_t n_rows, uint32_t n_cols, uint32_t n_tokens,         \
                        uint32_t mode, const uint8_t *w_lead, float *y_lead, uint32_t n_lead,    \
                        const double *square_sums, float eps) {                                  \
        mmvq<TYPE, 1>(w, w_b, row_bytes, xq, xd, xs, y, y_b, n_rows, n_cols, n_tokens, mode,     \
                      w_lead, y_lead, n_lead, square_sums, eps);                                 \
    }                                                                                            \
    RF_KERNEL void RF_LAUNCH_BOUNDS(RF_ADD_NORM_THREADS, 1)                                      \
        rf_mmvq1_add_norm_##NAME(const uint8_t *w, uint64_t row_bytes, const int8_t *xq,         \
                                 const float *xd, const float *xs, const float *x_f32, float *y, \
                                 uint32_t n_cols, const float *norm_w, int8_t *oq, float *od,    \
                                 float *os, double *square_sums,                                 \
                                 uint32_t let_next_launch_first) {                               \
        mmvq1_add_norm<TYPE, false>(w, row_bytes, xq, xd, xs, x_f32, y, n_cols, norm_w, oq, od,  \
                                    os, square_sums, let_next_launch_first != 0);                \
    }                                                                                            \
    RF_KERNEL void RF_LAUNCH_BOUNDS(RF_ADD_NORM_THREADS, 1)                                      \
        rf_mmvq1_add_norm_f32_##NAME(const uint8_t *w, uint64_t row_bytes, const int8_t *xq,     \
                                     const float *xd, const float *xs, const float *x_f32,       \
                                     float *y, uint32_t n_cols, const float *norm_w, int8_t *oq, \
                                     float *od, float *os, double *square_sums,                  \
                                     uint32_t let_next_launch_first) {                           \
        mmvq1_add_norm<TYPE, true>(w, row_bytes, xq, xd, xs, x_f32, y, n_cols, norm_w, oq, od,   \
                                   os, square_sums, let_next_launch_first != 0);                 \
    }

RF_MMVQ_KERNEL(q4_0, BlockQ4_0)
RF_MMVQ_KERNEL(q4_1, BlockQ4_1)
RF_MMVQ_KERNEL(q5_0, BlockQ5_0)
RF_MMVQ_KERNEL(q5_1, BlockQ5_1)
RF_MMVQ_KERNEL(q8_0, BlockQ8_0)
RF_MMVQ_KERNEL(q4_k, BlockQ4_K)
RF_MMVQ_KERNEL(q6_k, BlockQ6_K)
RF_MMVQ_KERNEL(q4_0_split, SplitRowsQ4_0)
RF_MMVQ_KERNEL(q4_1_split, SplitRowsQ4_1)
RF_MMVQ_KERNEL(q8_0_split, SplitRowsQ8_0)
RF_MMVQ_KERNEL(q4_k_split, SplitRowsQ4_K)
RF_MMVQ_KERNEL(q6_k_split, SplitRowsQ6_K)

// Decode's Q, K and V products in one launch where V's type is not Q's and K's
// (llama.cpp's Q4_K_M gives V more bits in about a third of the layers, so Q and K are
// Q4_K and V Q6_K, or Q5_0 and Q8_0 where rows are not whole 256-value blocks): rows
// [0, n_a) of w_a into y_a, the next n_b of w_b into y_b (both of type A, rows of
// row_bytes_a), then n_c of w_c (type C, rows of row_bytes_c) into y_c. One token, stored,
// each row as rf_mmvq1_* computes it (with the norm it finishes): the same bits as three
// launches, in one. Launch as rf_mmvq1_*, grid.x = ceil((n_a + n_b + n_c) / warps a block).
template <typename A, typename C>
static __device__ void mmvq1_mixed(const uint8_t *w_a, float *y_a, uint32_t n_a,
                                   const uint8_t *w_b, float *y_b, uint32_t n_b,
                                   uint64_t row_bytes_a, const uint8_t *w_c, float *y_c,
                                   uint32_t n_c, uint64_t row_bytes_c, const int8_t *xq,
                                   const float *xd, const float *xs, uint32_t n_cols,
                                   const double *square_sums, float eps) {
    const int warp = rf_warp_size();
    const uint64_t row = (uint64_t)blockIdx.x * (blockDim.x / warp) + threadIdx.x / warp;
    // Warp-uniform, as in mmvq: a warp takes a row whole or leaves whole.
    if (row < n_a) {
        mmvq_row<A, 1>(w_a, nullptr, row_bytes_a, xq, xd, xs, y_a, nullptr, row, n_a, n_cols, 1,
                       RF_OUT_STORE, square_sums, eps);
    } else if (row - n_a < n_b) {
        mmvq_row<A, 1>(w_b, nullptr, row_bytes_a, xq, xd, xs, y_b, nullptr, row - n_a, n_b,
                       n_cols, 1, RF_OUT_STORE, square_sums, eps);
    } else if (row - n_a - n_b < n_c) {
        mmvq_row<C, 1>(w_c, nullptr, row_bytes_c, xq, xd, xs, y_c, nullptr, row - n_a - n_b, n_c,
                       n_cols, 1, RF_OUT_STORE, square_sums, eps);
    }
}

// rf_mmvq1_mixed_<a>_<c>: mmvq1_mixed for the pairs of types llama.cpp's mixes put side by
// side (src/backend/gpu/ops/matvec_q8_mixed.rs lists them).
#define RF_MMVQ_MIXED_KERNEL(NAME, A, C)                                                         \
    RF_KERNEL void RF_LAUNCH_BOUNDS(RF_MMVQ_THREADS, RF_MMVQ1_BLOCKS_PER_SM)                     \
        rf_mmvq1_mixed_##NAME(const uint8_t *w_a, float *y_a, uint32_t n_a, const uint8_t *w_b,  \
                              float *y_b, uint32_t n_b, uint64_t row_bytes_a,                    \
                              const uint8_t *w_c, float *y_c, uint32_t n_c,                      \
                              uint64_t row_bytes_c, const int8_t *xq, const float *xd,           \
                              const float *xs, uint32_t n_cols, const double *square_sums,       \
                              float eps) {                                                       \
        mmvq1_mixed<A, C>(w_a, y_a, n_a, w_b, y_b, n_b, row_bytes_a, w_c, y_c, n_c, row_bytes_c, \
                          xq, xd, xs, n_cols, square_sums, eps);                                 \
    }

RF_MMVQ_MIXED_KERNEL(q5_0_q8_0, BlockQ5_0, BlockQ8_0)
RF_MMVQ_MIXED_KERNEL(q4_k_q6_k, BlockQ4_K, BlockQ6_K)
RF_MMVQ_MIXED_KERNEL(q4_k_split_q6_k_split, SplitRowsQ4_K, SplitRowsQ6_K)

// x [n_values] f32 as Q8 activations (n_values a multiple of 32). Launch: one thread per
// value, blockDim.x a multiple of 32; threads past n_values leave in whole groups.
RF_KERNEL void rf_quantize_q8_f32(const float *x, int8_t *q, float *d, float *s,
                                  uint64_t n_values) {
    // It loads nothing ahead of its wait, so the integer product after it (in decode the
    // down product after the SwiGLU) launches and loads its weights while this one waits.
    rf_grid_dependency_sync(true);
    const uint64_t i = rf_global_thread();
    if (i >= n_values) {
        return;
    }
    rf_quantize_q8_group(x[i], i % 32, q, d, s, i, i / 32);
}
