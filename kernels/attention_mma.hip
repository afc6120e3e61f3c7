// Prefill attention on NVIDIA tensor cores (sm_80 and newer: mma.sync m16n8k16, f16 in,
// f32 accumulate): what kernels/attention.hip computes for a batch of many tokens over an
// F16 cache, with the same paged layout, visibility rule (`sees`) and outputs, reading
// each key once per 64 query rows instead of once per query.
//
// One block of four warps per (64 query rows, K/V head). Query row r of the block is
// (token, head) = (R / group, kv_head * group + R % group) for R = blockIdx.x * 64 + r,
// so the query heads sharing a K/V head share its tiles. Each warp owns 16 rows. Per tile
// of 64 keys the block stages K and V in shared memory; each warp computes its 16 x 64
// scores with the tensor cores, folds them into its rows' online softmax in registers
// (the accumulator layout of m16n8k16 puts a row's values in one quad of lanes), and adds
// the weights times V with the tensor cores again.
//
// Exactness: the operands are split into f16 pairs, x = hi + lo with hi = f16(x) and
// lo = f16(x - hi), and each product is taken as hi*B + lo*B. K and V are f16 already, so
// scores and outputs carry f32's rounding, not f16's (a score of 1e4 is off by 1e-3, not
// by 5): as exact as the one-token kernel, for twice the tensor-core work, which this
// memory-bound kernel has to spare.
//
// Tokens of a block that belong to different sequences are processed one run of equal
// sequence index after another (rows of other runs see no key). A run stops reading keys
// once a tile holds one later than every query of the run (positions increase with the
// logical slot).
//
// Launch: grid = (ceil(n_tokens * group / 64), n_kv_heads), block = 128 threads, static
// shared memory; head_dim = DIMS (64 or 128). Same parameters as rf_attention_paged less
// the partial results and the tiling. Out-of-range block ids or slots in the tables are
// treated as holes.
#include "compat.h"
#include "paged_kv.h"

// Only where mma.sync m16n8k16 exists (sm_80 and newer; the host pass sees no
// __CUDA_ARCH__); the launcher asks for these kernels only on such devices.
#if defined(RF_CUDA) && (!defined(__CUDA_ARCH__) || __CUDA_ARCH__ >= 800)

#define MMA_WARPS 4
#define MMA_ROWS (16 * MMA_WARPS)

// Two f32 values as the f16 pair (hi, lo) of each, packed for an mma operand register.
struct SplitPair {
    uint32_t hi, lo;
};

RF_DEVICE SplitPair split_pair(float a, float b) {
    const __half2 hi = __floats2half2_rn(a, b);
    const float2 back = __half22float2(hi);
    const __half2 lo = __floats2half2_rn(a - back.x, b - back.y);
    return {*(const uint32_t *)&hi, *(const uint32_t *)&lo};
}

// d += a * b for one m16n8k16 tile: a 16x16 f16 (4 registers), b 16x8 f16 (2), d 16x8 f32.
RF_DEVICE void mma_16x8x16(float d[4], const uint32_t a[4], uint32_t b0, uint32_t b1) {
    asm volatile(
        "mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 "
        "{%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, {%0, %1, %2, %3};"
        : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}

// The b operand of a 16x8 tile read from a row-major [k][n] f16 array in shared memory
// (V: k a key, n a dimension), transposed on the way by ldmatrix.
RF_DEVICE void load_b_transposed(const __half *tile, uint32_t stride, uint32_t lane,
                                 uint32_t &b0, uint32_t &b1) {
    const __half *row = tile + (lane % 16) * stride;
    const uint32_t address = (uint32_t)__cvta_generic_to_shared(row);
    asm volatile("ldmatrix.sync.aligned.m8n8.x2.trans.shared.b16 {%0, %1}, [%2];"
                 : "=r"(b0), "=r"(b1)
                 : "r"(address));
}

template <int DIMS>
static __device__ void attention_mma(
    const float *q, const __half *k_cache, const __half *v_cache, const uint32_t *block_tables,
    const int32_t *slot_positions, const uint32_t *n_logical, const uint32_t *seq_index,
    const int32_t *pos, float *out, uint32_t n_tokens, uint32_t n_head, uint32_t n_kv_heads,
    uint32_t n_seq, uint32_t max_blocks, uint32_t block_size, uint64_t n_slots, float scale,
    uint32_t window) {
    constexpr uint32_t STRIDE = DIMS + 8;  // halves a staged row: conflict-free reads
    constexpr int K_STEPS = DIMS / 16;     // 16-value steps of a query row
    constexpr int D_TILES = DIMS / 8;      // 8-column tiles of an output row
    // Keys a tile: fewer for wide heads, whose queries and outputs fill the registers.
    constexpr uint32_t MMA_KEYS = DIMS > 64 ? 32 : 64;
    constexpr int KEY_TILES = MMA_KEYS / 8;
    __shared__ __align__(16) __half k_s[MMA_KEYS * STRIDE];
    __shared__ __align__(16) __half v_s[MMA_KEYS * STRIDE];
    __shared__ int32_t key_pos[MMA_KEYS];
    __shared__ uint32_t key_slot[MMA_KEYS];

    const uint32_t tid = threadIdx.x, lane = tid % 32, warp = tid / 32;
    const uint32_t quad_row = lane / 4, quad_col = 2 * (lane % 4);
    const uint32_t group = n_head / n_kv_heads, kv_head = blockIdx.y;
    const uint64_t q_dim = (uint64_t)n_head * DIMS, kv_dim = (uint64_t)n_kv_heads * DIMS;
    const uint64_t n_rows = (uint64_t)n_tokens * group;
    const uint64_t block_row = (uint64_t)blockIdx.x * MMA_ROWS;
    const uint32_t token_begin = (uint32_t)(block_row / group);
    const uint32_t token_end = (uint32_t)min((block_row + MMA_ROWS - 1) / group + 1,
                                             (uint64_t)n_tokens);

    // This lane's two rows (quad_row and quad_row + 8 of its warp's 16): token and head.
    uint32_t row_token[2], row_head[2];
    bool row_valid[2];
#pragma unroll
    for (int h = 0; h < 2; ++h) {
        const uint64_t row = block_row + warp * 16 + quad_row + 8 * h;
        row_valid[h] = row < n_rows;
        row_token[h] = row_valid[h] ? (uint32_t)(row / group) : 0;
        row_head[h] = kv_head * group + (uint32_t)(row % group);
    }

    for (uint32_t run_begin = token_begin; run_begin < token_end;) {
        const TokenRun run = token_run(seq_index, pos, run_begin, token_end);
        const uint32_t seq = run.seq, run_end = run.end;
        const int32_t max_pos = run.max_pos;
        bool active[2];
        int32_t row_pos[2];
#pragma unroll
        for (int h = 0; h < 2; ++h) {
            active[h] = row_valid[h] && row_token[h] >= run_begin && row_token[h] < run_end;
            row_pos[h] = active[h] ? pos[row_token[h]] : 0;
        }
        const uint64_t n_keys = sequence_keys(n_logical, seq, n_seq, max_blocks, block_size);

        // The queries as a operands, scaled and split: step s holds dimensions 16s..16s+15.
        uint32_t q_hi[K_STEPS][4], q_lo[K_STEPS][4];
#pragma unroll
        for (int s = 0; s < K_STEPS; ++s) {
#pragma unroll
            for (int part = 0; part < 4; ++part) {
                const int h = part % 2;  // registers 0, 2: row quad_row; 1, 3: row + 8
                const uint32_t d = 16 * s + quad_col + 8 * (part / 2);
                float2 x = make_float2(0.0f, 0.0f);
                if (active[h]) {
                    x = *(const float2 *)(q + row_token[h] * q_dim + row_head[h] * DIMS + d);
                }
                const SplitPair pair = split_pair(x.x * scale, x.y * scale);
                q_hi[s][part] = pair.hi;
                q_lo[s][part] = pair.lo;
            }
        }
        float o[D_TILES][4];
#pragma unroll
        for (int t = 0; t < D_TILES; ++t) {
            o[t][0] = o[t][1] = o[t][2] = o[t][3] = 0.0f;
        }
        float m[2] = {-INFINITY, -INFINITY}, l[2] = {0.0f, 0.0f};

        // Thread k < MMA_KEYS looks up key k of the next tile while the warps compute.
        KeySlot next = {EMPTY_SLOT, 0};
        if (tid < MMA_KEYS) {
            next = find_key(block_tables, slot_positions, seq, max_blocks, block_size, n_slots,
                            tid, n_keys);
        }
        for (uint64_t k0 = 0; k0 < n_keys; k0 += MMA_KEYS) {
            int later = 0;
            if (tid < MMA_KEYS) {
                key_pos[tid] = next.pos;
                key_slot[tid] = next.slot;
                later = next.pos != EMPTY_SLOT && next.pos > max_pos;
            }
            // A live key past every query of the run: all later tiles are too.
            const bool last_tile = __syncthreads_or(later);
            // K and V rows, 8 values a load, every load issued before the first store;
            // hidden keys as zeros, so no stale value meets a zero weight as NaN * 0.
            constexpr int LOADS = MMA_KEYS * (DIMS / 8) / (MMA_WARPS * 32);
            static_assert(LOADS * MMA_WARPS * 32 == MMA_KEYS * (DIMS / 8), "whole loads");
            uint4 k_loaded[LOADS], v_loaded[LOADS];
#pragma unroll
            for (int n = 0; n < LOADS; ++n) {
                const uint32_t c = tid + n * MMA_WARPS * 32;
                const uint32_t key = c / (DIMS / 8), d = 8 * (c % (DIMS / 8));
                k_loaded[n] = v_loaded[n] = make_uint4(0, 0, 0, 0);
                if (key_pos[key] != EMPTY_SLOT) {
                    const uint64_t at = (uint64_t)key_slot[key] * kv_dim + kv_head * DIMS + d;
                    k_loaded[n] = *(const uint4 *)(k_cache + at);
                    v_loaded[n] = *(const uint4 *)(v_cache + at);
                }
            }
#pragma unroll
            for (int n = 0; n < LOADS; ++n) {
                const uint32_t c = tid + n * MMA_WARPS * 32;
                const uint32_t key = c / (DIMS / 8), d = 8 * (c % (DIMS / 8));
                *(uint4 *)(k_s + key * STRIDE + d) = k_loaded[n];
                *(uint4 *)(v_s + key * STRIDE + d) = v_loaded[n];
            }
            __syncthreads();
            if (tid < MMA_KEYS && !last_tile) {
                next = find_key(block_tables, slot_positions, seq, max_blocks, block_size,
                                n_slots, k0 + MMA_KEYS + tid, n_keys);
            }

            // Scores: s[t] is the 16 x 8 tile of keys 8t..8t+7.
            float s[KEY_TILES][4];
#pragma unroll
            for (int t = 0; t < KEY_TILES; ++t) {
                s[t][0] = s[t][1] = s[t][2] = s[t][3] = 0.0f;
                const __half *key_row = k_s + (8 * t + quad_row) * STRIDE + quad_col;
#pragma unroll
                for (int step = 0; step < K_STEPS; ++step) {
                    const uint32_t b0 = *(const uint32_t *)(key_row + 16 * step);
                    const uint32_t b1 = *(const uint32_t *)(key_row + 16 * step + 8);
                    mma_16x8x16(s[t], q_hi[step], b0, b1);
                    mma_16x8x16(s[t], q_lo[step], b0, b1);
                }
            }
            // Hidden keys to -inf, then each row's new running max over its quad.
            float tile_max[2] = {-INFINITY, -INFINITY};
#pragma unroll
            for (int t = 0; t < KEY_TILES; ++t) {
#pragma unroll
                for (int e = 0; e < 4; ++e) {
                    const int h = e / 2;
                    const int32_t kp = key_pos[8 * t + quad_col + e % 2];
                    if (!active[h] || !sees(kp, row_pos[h], window)) {
                        s[t][e] = -INFINITY;
                    }
                    tile_max[h] = fmaxf(tile_max[h], s[t][e]);
                }
            }
            float alpha[2];
#pragma unroll
            for (int h = 0; h < 2; ++h) {
                tile_max[h] = fmaxf(tile_max[h], __shfl_xor_sync(RF_FULL_MASK, tile_max[h], 1));
                tile_max[h] = fmaxf(tile_max[h], __shfl_xor_sync(RF_FULL_MASK, tile_max[h], 2));
                const float m_new = fmaxf(m[h], tile_max[h]);
                // Nothing visible yet (m_new = -inf): weights 0, not exp(-inf + inf).
                alpha[h] = m_new == -INFINITY ? 1.0f : expf(m[h] - m_new);
                m[h] = m_new;
            }
            float sum[2] = {0.0f, 0.0f};
#pragma unroll
            for (int t = 0; t < KEY_TILES; ++t) {
#pragma unroll
                for (int e = 0; e < 4; ++e) {
                    const int h = e / 2;
                    const float p = m[h] == -INFINITY ? 0.0f : expf(s[t][e] - m[h]);
                    s[t][e] = p;
                    sum[h] += p;
                }
            }
#pragma unroll
            for (int h = 0; h < 2; ++h) {
                l[h] = l[h] * alpha[h] + sum[h];  // this lane's share; the quad sums at the end
            }
#pragma unroll
            for (int t = 0; t < D_TILES; ++t) {
                o[t][0] *= alpha[0];
                o[t][1] *= alpha[0];
                o[t][2] *= alpha[1];
                o[t][3] *= alpha[1];
            }
            // o += p . V: the score tiles of keys 16j..16j+15 are the a operand of step j.
#pragma unroll
            for (int j = 0; j < KEY_TILES / 2; ++j) {
                const SplitPair p0 = split_pair(s[2 * j][0], s[2 * j][1]);
                const SplitPair p1 = split_pair(s[2 * j][2], s[2 * j][3]);
                const SplitPair p2 = split_pair(s[2 * j + 1][0], s[2 * j + 1][1]);
                const SplitPair p3 = split_pair(s[2 * j + 1][2], s[2 * j + 1][3]);
                const uint32_t p_hi[4] = {p0.hi, p1.hi, p2.hi, p3.hi};
                const uint32_t p_lo[4] = {p0.lo, p1.lo, p2.lo, p3.lo};
#pragma unroll
                for (int t = 0; t < D_TILES; ++t) {
                    uint32_t b0, b1;
                    load_b_transposed(v_s + 16 * j * STRIDE + 8 * t, STRIDE, lane, b0, b1);
                    mma_16x8x16(o[t], p_hi, b0, b1);
                    mma_16x8x16(o[t], p_lo, b0, b1);
                }
            }
            __syncthreads();  // the next tile rewrites k_s, v_s and the key tables
            if (last_tile) {
                break;  // block-uniform
            }
        }

#pragma unroll
        for (int h = 0; h < 2; ++h) {
            l[h] += __shfl_xor_sync(RF_FULL_MASK, l[h], 1);
            l[h] += __shfl_xor_sync(RF_FULL_MASK, l[h], 2);
        }
#pragma unroll
        for (int h = 0; h < 2; ++h) {
            if (active[h]) {
                const float inverse = l[h] > 0.0f ? 1.0f / l[h] : 0.0f;
                float *row = out + row_token[h] * q_dim + row_head[h] * DIMS + quad_col;
#pragma unroll
                for (int t = 0; t < D_TILES; ++t) {
                    *(float2 *)(row + 8 * t) =
                        make_float2(o[t][2 * h] * inverse, o[t][2 * h + 1] * inverse);
                }
            }
        }
        run_begin = run_end;
    }
}

#define RF_ATTENTION_MMA_KERNEL(DIMS)                                                            \
    RF_KERNEL void __launch_bounds__(MMA_WARPS * 32) rf_attention_mma_d##DIMS##_f16(              \
        const float *q, const __half *k_cache, const __half *v_cache,                            \
        const uint32_t *block_tables, const int32_t *slot_positions, const uint32_t *n_logical, \
        const uint32_t *seq_index, const int32_t *pos, float *out, uint32_t n_tokens,            \
        uint32_t n_head, uint32_t n_kv_heads, uint32_t head_dim, uint32_t n_seq,                 \
        uint32_t max_blocks, uint32_t block_size, uint64_t n_slots, float scale,                 \
        uint32_t window) {                                                                       \
        rf_grid_dependency_sync();                                                               \
        if (head_dim != DIMS) {                                                                  \
            return; /* the launcher picks the instance; never another head size */               \
        }                                                                                        \
        attention_mma<DIMS>(q, k_cache, v_cache, block_tables, slot_positions, n_logical,        \
                            seq_index, pos, out, n_tokens, n_head, n_kv_heads, n_seq,            \
                            max_blocks, block_size, n_slots, scale, window);                     \
    }

RF_ATTENTION_MMA_KERNEL(64)
RF_ATTENTION_MMA_KERNEL(128)

#endif
