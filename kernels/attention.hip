// Attention over the paged KV cache: softmax(q . K^T * scale) . V per query head, with
// grouped-query heads (n_head / n_kv_heads query heads share each K/V head), an online
// softmax in f32 (the running max subtracted before every exp, so scores of +-1e4 stay
// finite) and K/V read through each sequence's block table.
//
// Paged layout (src/kv_cache/sequence_table.rs): sequence s's logical slot i lives in flat
// cache slot block_tables[s][i / block_size] * block_size + i % block_size, and holds the
// token at position slot_positions[s][i] (EMPTY_SLOT = INT32_MAX for a hole or an unwritten
// slot). Live positions strictly increase with i. A query at position p attends to every
// logical slot i < n_logical[s] with slot_positions[s][i] <= p, and with a sliding window
// (the last parameter, 0 for none) only to positions above p - window.
//
// rf_attention_paged: one block per (tile of consecutive batch tokens, K/V head, split of
// the logical slots). The block stages a tile of keys_per_tile K and V rows in shared
// memory and scores them against every query row of the tile (its tokens times the K/V
// head's query heads), so each K/V row is read once per tile of queries:
//   - prefill: tokens_per_tile > 1, n_splits = 1 (a tiled flash-attention kernel);
//   - decode: tokens_per_tile = 1, n_splits > 1 (flash-decoding: each split's block writes
//     an unnormalised partial result with its max and sum, rf_attention_combine merges).
// Tokens of a tile that belong to different sequences are processed one run of equal
// sequence index after another. A tile stops early once it meets a key later than every
// query of the run (causal prefill reads each key range once).
//
// K and V are read as the cache's type (kv_cache.h): each kernel below has an instance
// per type, named with its suffix (_f16, _f32, _q8_0). rf_attention_paged stages its
// tiles as f16 whatever the type.
//
// Launch: grid = (ceil(n_tokens / tokens_per_tile), n_kv_heads, n_splits), block =
// ATTENTION_THREADS threads or more with tokens_per_tile * group * head_dim <=
// blockDim.x * MAX_OUTPUTS_PER_THREAD, dynamic shared memory as Tiling::shared_bytes in
// src/backend/gpu/ops/attention.rs. Out-of-range block ids or slots in the tables are
// treated as holes: the kernel never reads outside the cache.
#include "compat.h"
#include "kv_cache.h"
#include "last_block.h"
#include "paged_kv.h"
#include "q8_activations.h"
#include "rope.h"

#define MAX_OUTPUTS_PER_THREAD 16

template <class Kv>
static __device__ void attention_paged(
    const float *q,                // [n_tokens, n_head * head_dim], RoPE applied
    const uint8_t *k_cache,        // [n_slots, n_kv_heads * head_dim] as Kv
    const uint8_t *v_cache,        // [n_slots, n_kv_heads * head_dim] as Kv
    const uint32_t *block_tables,  // [n_seq, max_blocks]
    const int32_t *slot_positions, // [n_seq, max_blocks * block_size]
    const uint32_t *n_logical,     // [n_seq]
    const uint32_t *seq_index,     // [n_tokens]
    const int32_t *pos,            // [n_tokens]
    float *out,                    // [n_tokens, n_head * head_dim] (n_splits == 1)
    float *partial_acc,            // [n_tokens, n_head, n_splits, head_dim] (n_splits > 1)
    float *partial_ml,             // [n_tokens, n_head, n_splits, 2]: max, sum
    uint32_t n_tokens, uint32_t n_head, uint32_t n_kv_heads, uint32_t head_dim, uint32_t n_seq,
    uint32_t max_blocks, uint32_t block_size, uint64_t n_slots, float scale,
    uint32_t tokens_per_tile, uint32_t keys_per_tile, uint32_t keys_per_split,
    uint32_t n_splits, uint32_t window) {
    extern __shared__ float shared[];
    __shared__ int stop;
    const uint32_t group = n_head / n_kv_heads;
    const uint32_t rows_max = tokens_per_tile * group;
    const uint32_t hd = head_dim, T = keys_per_tile;
    float *q_s = shared;                                    // [rows_max, hd]
    float *p_s = q_s + rows_max * hd;                       // [rows_max, T] scores, weights
    float *row_m = p_s + rows_max * T;                      // [rows_max] running max
    float *row_l = row_m + rows_max;                        // [rows_max] running sum
    float *row_alpha = row_l + rows_max;                    // [rows_max] this tile's rescale
    int32_t *key_pos = (int32_t *)(row_alpha + rows_max);   // [T]
    uint32_t *key_slot = (uint32_t *)(key_pos + T);         // [T]
    __half *k_s = (__half *)(key_slot + T);                 // [T, hd]
    __half *v_s = k_s + T * hd;                             // [T, hd]

    const uint32_t kv_head = blockIdx.y, split = blockIdx.z;
    const uint32_t tile_begin = blockIdx.x * tokens_per_tile;
    const uint32_t tile_end = min(tile_begin + tokens_per_tile, n_tokens);
    const uint64_t q_dim = (uint64_t)n_head * hd, kv_dim = (uint64_t)n_kv_heads * hd;
    const uint32_t tid = threadIdx.x, n_threads = blockDim.x;

    for (uint32_t run_begin = tile_begin; run_begin < tile_end;) {
        const TokenRun run = token_run(seq_index, pos, run_begin, tile_end);
        const uint32_t seq = run.seq, run_end = run.end;
        const int32_t max_pos = run.max_pos;
        const uint32_t rows = (run_end - run_begin) * group;  // row r: token r / group
        const uint64_t n_keys = sequence_keys(n_logical, seq, n_seq, max_blocks, block_size);
        const uint64_t key_begin = (uint64_t)split * keys_per_split;
        const uint64_t key_end = min(key_begin + keys_per_split, n_keys);

        for (uint32_t e = tid; e < rows * hd; e += n_threads) {
            const uint32_t r = e / hd;
            const uint64_t token = run_begin + r / group, head = kv_head * group + r % group;
            q_s[e] = q[token * q_dim + head * hd + e % hd];
        }
        for (uint32_t r = tid; r < rows; r += n_threads) {
            row_m[r] = -INFINITY;
            row_l[r] = 0.0f;
        }
        float acc[MAX_OUTPUTS_PER_THREAD];  // output e = tid + j * n_threads of the run
#pragma unroll
        for (int j = 0; j < MAX_OUTPUTS_PER_THREAD; ++j) {
            acc[j] = 0.0f;
        }
        __syncthreads();

        for (uint64_t k0 = key_begin; k0 < key_end; k0 += T) {
            // Where each key of the tile lives and its position; EMPTY_SLOT hides it.
            for (uint32_t key = tid; key < T; key += n_threads) {
                const KeySlot found = find_key(block_tables, slot_positions, seq, max_blocks,
                                               block_size, n_slots, k0 + key, key_end);
                key_pos[key] = found.pos;
                key_slot[key] = found.slot;
            }
            __syncthreads();
            // The tile's K and V rows (neighbouring threads read neighbouring elements);
            // hidden keys as zeros, so no stale value meets a zero weight as NaN * 0.
            for (uint32_t e = tid; e < T * hd; e += n_threads) {
                const uint32_t key = e / hd;
                __half k_value = __float2half_rn(0.0f), v_value = k_value;
                if (key_pos[key] != EMPTY_SLOT) {
                    const uint64_t at = (uint64_t)key_slot[key] * kv_dim + kv_head * hd + e % hd;
                    k_value = __float2half_rn(Kv::load(k_cache, at));
                    v_value = __float2half_rn(Kv::load(v_cache, at));
                }
                k_s[e] = k_value;
                v_s[e] = v_value;
            }
            __syncthreads();
            // Scores of every (row, key); -inf where the key is hidden from the row's token.
            for (uint32_t e = tid; e < rows * T; e += n_threads) {
                const uint32_t r = e / T, key = e % T;
                const int32_t kp = key_pos[key];
                float score = -INFINITY;
                if (sees(kp, pos[run_begin + r / group], window)) {
                    const float *qr = q_s + r * hd;
                    const __half *kr = k_s + key * hd;
                    float dot = 0.0f;
                    for (uint32_t d = 0; d < hd; ++d) {
                        dot = fmaf(qr[d], __half2float(kr[d]), dot);
                    }
                    score = dot * scale;
                }
                p_s[e] = score;
            }
            __syncthreads();
            // Online softmax, one thread per row: the new running max, the factor that
            // rescales what was summed under the old one, and this tile's weights.
            for (uint32_t r = tid; r < rows; r += n_threads) {
                float *pr = p_s + r * T;
                float tile_max = -INFINITY;
                for (uint32_t key = 0; key < T; ++key) {
                    tile_max = fmaxf(tile_max, pr[key]);
                }
                const float m_old = row_m[r], m_new = fmaxf(m_old, tile_max);
                float alpha = 1.0f, sum = 0.0f;
                for (uint32_t key = 0; key < T; ++key) {
                    // Nothing visible yet (m_new = -inf): weights 0, not exp(-inf + inf).
                    const float p = m_new == -INFINITY ? 0.0f : expf(pr[key] - m_new);
                    pr[key] = p;
                    sum += p;
                }
                if (m_new != -INFINITY) {
                    alpha = expf(m_old - m_new);  // 0 when m_old is -inf
                }
                row_m[r] = m_new;
                row_l[r] = row_l[r] * alpha + sum;
                row_alpha[r] = alpha;
            }
            if (tid == 0) {
                // A live key past every query of the run: all later keys are too.
                int later = 0;
                for (uint32_t key = 0; key < T; ++key) {
                    later |= key_pos[key] != EMPTY_SLOT && key_pos[key] > max_pos;
                }
                stop = later;
            }
            __syncthreads();
#pragma unroll
            for (int j = 0; j < MAX_OUTPUTS_PER_THREAD; ++j) {
                const uint32_t e = tid + j * n_threads;
                if (e < rows * hd) {
                    const uint32_t r = e / hd, d = e % hd;
                    const float *pr = p_s + r * T;
                    float a = acc[j] * row_alpha[r];
                    for (uint32_t key = 0; key < T; ++key) {
                        a = fmaf(pr[key], __half2float(v_s[key * hd + d]), a);
                    }
                    acc[j] = a;
                }
            }
            __syncthreads();
            if (stop) {
                break;  // block-uniform: read after the barrier that followed its write
            }
        }

#pragma unroll
        for (int j = 0; j < MAX_OUTPUTS_PER_THREAD; ++j) {
            const uint32_t e = tid + j * n_threads;
            if (e < rows * hd) {
                const uint32_t r = e / hd, d = e % hd;
                const uint64_t token = run_begin + r / group, head = kv_head * group + r % group;
                if (n_splits == 1) {
                    const float l = row_l[r];
                    out[token * q_dim + head * hd + d] = l > 0.0f ? acc[j] / l : 0.0f;
                } else {
                    partial_acc[((token * n_head + head) * n_splits + split) * hd + d] = acc[j];
                }
            }
        }
        for (uint32_t r = tid; n_splits > 1 && r < rows; r += n_threads) {
            const uint64_t token = run_begin + r / group, head = kv_head * group + r % group;
            float *ml = partial_ml + ((token * n_head + head) * n_splits + split) * 2;
            ml[0] = row_m[r];
            ml[1] = row_l[r];
        }
        __syncthreads();  // the next run rewrites q_s, row_m and row_l
        run_begin = run_end;
    }
}

#define RF_ATTENTION_PAGED_KERNEL(NAME, KV)                                                      \
    RF_KERNEL void rf_attention_paged_##NAME(                                                    \
        const float *q, const uint8_t *k_cache, const uint8_t *v_cache,                          \
        const uint32_t *block_tables, const int32_t *slot_positions, const uint32_t *n_logical, \
        const uint32_t *seq_index, const int32_t *pos, float *out, float *partial_acc,           \
        float *partial_ml, uint32_t n_tokens, uint32_t n_head, uint32_t n_kv_heads,              \
        uint32_t head_dim, uint32_t n_seq, uint32_t max_blocks, uint32_t block_size,             \
        uint64_t n_slots, float scale, uint32_t tokens_per_tile, uint32_t keys_per_tile,         \
        uint32_t keys_per_split, uint32_t n_splits, uint32_t window) {                           \
        rf_grid_dependency_sync();                                                               \
        attention_paged<KV>(q, k_cache, v_cache, block_tables, slot_positions, n_logical,        \
                            seq_index, pos, out, partial_acc, partial_ml, n_tokens, n_head,      \
                            n_kv_heads, head_dim, n_seq, max_blocks, block_size, n_slots, scale, \
                            tokens_per_tile, keys_per_tile, keys_per_split, n_splits, window);   \
    }

RF_ATTENTION_PAGED_KERNEL(f16, KvF16)
RF_ATTENTION_PAGED_KERNEL(f32, KvF32)
RF_ATTENTION_PAGED_KERNEL(q8_0, KvQ8_0)

// Merges the splits of rf_attention_paged: out = sum_s acc_s * exp(m_s - M) / sum_s l_s *
// exp(m_s - M) with M the largest m_s. Splits that saw no visible key (m_s = -inf) add
// nothing; a token that saw none at all gets zeros.
//
// Launch: grid = (n_tokens, n_head), any block size (threads walk head_dim).
RF_KERNEL void rf_attention_combine(
    const float *partial_acc,  // [n_tokens, n_head, n_splits, head_dim]
    const float *partial_ml,   // [n_tokens, n_head, n_splits, 2]
    float *out,                // [n_tokens, n_head * head_dim]
    uint32_t n_tokens, uint32_t n_head, uint32_t head_dim, uint32_t n_splits) {
    rf_grid_dependency_sync();
    const uint64_t token = blockIdx.x, head = blockIdx.y;
    if (token >= n_tokens || head >= n_head) {
        return;
    }
    const uint64_t base = (token * n_head + head) * n_splits;
    const float *ml = partial_ml + base * 2;
    float m_max = -INFINITY;
    for (uint32_t s = 0; s < n_splits; ++s) {
        m_max = fmaxf(m_max, ml[2 * s]);
    }
    float l_total = 0.0f;
    for (uint32_t s = 0; s < n_splits; ++s) {
        if (ml[2 * s] != -INFINITY) {
            l_total += ml[2 * s + 1] * expf(ml[2 * s] - m_max);
        }
    }
    for (uint32_t d = threadIdx.x; d < head_dim; d += blockDim.x) {
        float o = 0.0f;
        for (uint32_t s = 0; s < n_splits; ++s) {
            if (ml[2 * s] != -INFINITY) {
                o += partial_acc[(base + s) * head_dim + d] * expf(ml[2 * s] - m_max);
            }
        }
        out[(token * n_head + head) * head_dim + d] = l_total > 0.0f ? o / l_total : 0.0f;
    }
}

RF_DEVICE float rf_shfl(float v, int lane) {
#if defined(RF_CUDA)
    return __shfl_sync(RF_FULL_MASK, v, lane);
#else
    return __shfl(v, lane);
#endif
}

#define TOKEN_THREADS 512
#define TOKEN_MAX_WARPS 16
#define TOKEN_MAX_HEAD_DIM 256
static_assert(TOKEN_THREADS >= TOKEN_MAX_HEAD_DIM, "a thread for each of a head's values");

// Writes output value `at`, and quantizes it when asked: the 32 values of its group are
// written by 32 consecutive lanes of one warp, which every caller's loop over a head's
// dimensions (head_dim a multiple of the warp) guarantees.
RF_DEVICE void write_output(float value, float *out, int8_t *q8, float *q8_d, float *q8_s,
                            uint64_t at) {
    out[at] = value;
    if (q8 != nullptr) {
        rf_quantize_q8_group(value, at % 32, q8, q8_d, q8_s, at, at / 32);
    }
}

// Attention of one query head of one token a block (flash-decoding): one block per
// (token, query head, split of keys_per_split logical slots), blockDim.x threads of at
// most TOKEN_MAX_WARPS warps. The warps take the split's keys in turn (warp w keys w,
// w + n_warps, ...), so that at a short depth each warp has a key or two rather than one
// warp all of them. A key's head is spread over the lanes of a warp (or, for a small
// head, of a part of it: several keys a step), one load of its K row and one of its V row
// a lane. The warp asks for a batch of keys' rows at once, sums their dot products over
// the lanes side by side and folds the batch into its online softmax (running max and
// sum). Used for decode, and for prefill with one split.
//
// The launch has a split for every keys_per_split slots a sequence may grow to (so a
// captured graph replays it at any length); splits past the token's live keys leave at
// once. The warps merge through shared memory. When the token's keys fit one split, its
// block writes the output; with several, each live split writes its partial result
// (unnormalised sum, max, sum of weights) and the last of them to finish, found with an
// atomic ticket, merges them and writes the output, then resets the ticket to 0.
//
// With k_new non-null (a one-token step, `rope` below), the kernel also does the step's
// RoPE and cache write (rope.hip's work, one launch fewer a layer): each block rotates its
// query head in shared memory, rotates the token's key head beside it and stores that key
// and the token's value into the cache slot, then walks the keys as usual (a barrier
// makes the block's own stores visible to it). Every block of a K/V head stores the same
// bytes, so whichever store lands, a block reads what it wrote; the walk keeps its plain
// loads, and every value is the one the separate kernels would give, bit for bit.
//
// Same parameters as rf_attention_paged (tokens_per_tile and keys_per_tile unused), then
// tickets: [n_tokens, n_head], zero before the launch, and q8 / q8_d / q8_s: where the
// output also goes as Q8 activations (q8_activations.h) for the product that reads it
// next, or null; the window; then the fused RoPE's k_new, v_new ([n_tokens, n_kv_heads *
// head_dim], k before RoPE), write_slot ([n_tokens]), rope_dims, theta_scale and neox as
// rf_rope_kv_write_* takes them (k_new null: no RoPE, the cache already holds the step's
// keys). head_dim = DIMS * warpSize, a multiple of 8 and at most TOKEN_MAX_HEAD_DIM; the
// launcher checks.
// Asks for the lines of one head's row of n values, from element `first`, to come into L2.
template <class Kv>
RF_DEVICE void prefetch_row(const uint8_t *cache, uint64_t first, uint32_t n) {
    const uint64_t end = Kv::byte_of(first + n);
    for (uint64_t b = Kv::byte_of(first) & ~(uint64_t)127; b < end; b += 128) {
        rf_prefetch_l2(cache + b);
    }
}

// A walk's batch size as a type, so that one generic lambda is compiled for each.
template <int N> struct BatchSteps {
    static constexpr int value = N;
};

// The step's RoPE, when decode attention does it (see attention_token).
struct FusedRope {
    const float *k_new, *v_new;
    const uint32_t *write_slot;
    uint32_t rope_dims;
    float theta_scale;
    uint32_t neox;
};

template <int DIMS, class Kv>
static __device__ void attention_token(
    const float *q, uint8_t *k_cache, uint8_t *v_cache, const uint32_t *block_tables,
    const int32_t *slot_positions, const uint32_t *n_logical, const uint32_t *seq_index,
    const int32_t *pos, float *out, float *partial_acc, float *partial_ml, uint32_t n_tokens,
    uint32_t n_head, uint32_t n_kv_heads, uint32_t head_dim, uint32_t n_seq,
    uint32_t max_blocks, uint32_t block_size, uint64_t n_slots, float scale,
    uint32_t keys_per_split, uint32_t n_splits, uint32_t *tickets, int8_t *q8, float *q8_d,
    float *q8_s, uint32_t window, const FusedRope rope) {
    __shared__ float q_s[TOKEN_MAX_HEAD_DIM];
    __shared__ float warp_acc[TOKEN_MAX_WARPS * TOKEN_MAX_HEAD_DIM];
    __shared__ float warp_m[TOKEN_MAX_WARPS];
    __shared__ float warp_l[TOKEN_MAX_WARPS];
    __shared__ float own_k[TOKEN_MAX_HEAD_DIM];  // the fused RoPE's key head, rotated
    __shared__ float own_v[TOKEN_MAX_HEAD_DIM];  // and its value head
    const uint32_t token = blockIdx.x, head = blockIdx.y, split = blockIdx.z;
    if (token >= n_tokens) {
        return;  // block-uniform
    }
    // A constant where the warp is (NVIDIA's 32): the lane arithmetic below is then masks
    // and shifts, not divisions by a run-time value on the kernel's critical path.
#if defined(RF_CUDA)
    constexpr int warp = 32;
#else
    const int warp = rf_warp_size();
#endif
    const uint32_t lane = threadIdx.x % warp, w = threadIdx.x / warp;
    const uint32_t n_warps = blockDim.x / warp;
    const uint32_t hd = head_dim, group = n_head / n_kv_heads, kv_head = head / group;
    const uint64_t q_dim = (uint64_t)n_head * hd, kv_dim = (uint64_t)n_kv_heads * hd;
    const uint32_t seq = seq_index[token];
    const int32_t p = pos[token];
    const uint64_t n_keys = sequence_keys(n_logical, seq, n_seq, max_blocks, block_size);
    const uint64_t key_begin = (uint64_t)split * keys_per_split;
    const uint64_t key_end = min(key_begin + keys_per_split, n_keys);
    // Split 0 stays when there are no keys: it writes the token's zeros.
    const uint32_t live_splits =
        (uint32_t)min((uint64_t)n_splits, max((n_keys + keys_per_split - 1) / keys_per_split,
                                              (uint64_t)1));
    if (split >= live_splits) {
        return;  // block-uniform
    }
    // Warp w takes keys w, w + n_warps, w + 2 n_warps, ... of the split, so that at a short
    // depth every warp has a key or two and the block's walk is one round of loads. Lane j
    // looks up the warp's key j of each round of n_warps * warp keys.
    const uint64_t keys_per_round = (uint64_t)n_warps * warp;
    const uint64_t own_key = (uint64_t)w + (uint64_t)lane * n_warps;
    // Before waiting on the kernel that writes the query, which with overlapped launches
    // runs beside it: the lookups of the first round (the tables, like the token's
    // sequence and position, are the step's inputs, written by kernels/staging.hip, which
    // lets no later kernel begin before it ends) and a request for those keys' K and V rows
    // into L2.
    const KeySlot first_key = find_key(block_tables, slot_positions, seq, max_blocks, block_size,
                                       n_slots, key_begin + own_key, key_end);
    if (sees(first_key.pos, p, window)) {
        const uint64_t row = (uint64_t)first_key.slot * kv_dim + (uint64_t)kv_head * hd;
        prefetch_row<Kv>(k_cache, row, hd);
        prefetch_row<Kv>(v_cache, row, hd);
    }
    // The fused RoPE's turn of this thread's pair depends on the position only, and the
    // slot its key goes to is a step input: both before the wait too.
    const bool fused = rope.k_new != nullptr;
    const PairTurn own_turn =
        fused && threadIdx.x < rope.rope_dims / 2 ? pair_turn(p, threadIdx.x, rope.theta_scale)
                                                   : PairTurn{1.0f, 0.0f};
    const uint32_t own_slot = fused ? rope.write_slot[token] : 0;
    rf_grid_dependency_sync();
    const uint64_t out_at = token * q_dim + (uint64_t)head * hd;
    const uint64_t own_at = (uint64_t)token * kv_dim + (uint64_t)kv_head * hd;

    if (fused && Kv::PER_ELEMENT) {
        if constexpr (Kv::PER_ELEMENT) {  // store_one: element-wise caches only
            // One barrier: each thread loads what it works on first (a pair of the query and
            // key heads, a passed-through value of each, a value of V: a block has at least a
            // thread for each of a head's values, TOKEN_THREADS >= TOKEN_MAX_HEAD_DIM), then
            // turns its pair and stores it, the key into the cache; the barrier then makes
            // the block's cache stores visible to its walk. Bit for bit what the rounds
            // through shared memory below give.
            const uint32_t t = threadIdx.x, n_pairs = rope.rope_dims / 2;
            const bool store = own_slot < n_slots;
            const uint64_t first = (uint64_t)own_slot * kv_dim + (uint64_t)kv_head * hd;
            uint32_t a = 0, b = 0;
            pair_offsets(t, n_pairs, rope.neox, &a, &b);
            const bool turns = t < n_pairs, passes = rope.rope_dims + t < hd, holds_v = t < hd;
            const uint32_t kept = rope.rope_dims + t;
            float q0 = turns ? q[out_at + a] : 0.0f, q1 = turns ? q[out_at + b] : 0.0f;
            float k0 = turns ? rope.k_new[own_at + a] : 0.0f;
            float k1 = turns ? rope.k_new[own_at + b] : 0.0f;
            const float q_kept = passes ? q[out_at + kept] : 0.0f;
            const float k_kept = passes ? rope.k_new[own_at + kept] : 0.0f;
            const float v = holds_v ? rope.v_new[own_at + t] : 0.0f;
            if (turns) {
                rotate_by(&q0, &q1, own_turn);
                rotate_by(&k0, &k1, own_turn);
                q_s[a] = q0;
                q_s[b] = q1;
            }
            if (passes) {
                q_s[kept] = q_kept;
            }
            if (store) {
                if (turns) {
                    Kv::store_one(k_cache, first + a, k0);
                    Kv::store_one(k_cache, first + b, k1);
                }
                if (passes) {
                    Kv::store_one(k_cache, first + kept, k_kept);
                }
                if (holds_v) {
                    Kv::store_one(v_cache, first + t, v);
                }
            }
            __syncthreads();
        }
    } else {
        // The query, key and value heads in one round of loads.
        for (uint32_t d = threadIdx.x; d < hd; d += blockDim.x) {
            q_s[d] = q[out_at + d];
            if (fused) {
                own_k[d] = rope.k_new[own_at + d];
                own_v[d] = rope.v_new[own_at + d];
            }
        }
        __syncthreads();
    }
    if (fused && !Kv::PER_ELEMENT) {
        rope_head_turned(q_s, own_turn, p, rope.rope_dims, rope.theta_scale, rope.neox,
                         threadIdx.x, blockDim.x);
        rope_head_turned(own_k, own_turn, p, rope.rope_dims, rope.theta_scale, rope.neox,
                         threadIdx.x, blockDim.x);
        __syncthreads();
        if (own_slot < n_slots) {
            const uint64_t first = (uint64_t)own_slot * kv_dim + (uint64_t)kv_head * hd;
            Kv::store(k_cache, first, own_k, hd, threadIdx.x, blockDim.x);
            Kv::store(v_cache, first, own_v, hd, threadIdx.x, blockDim.x);
        }
        __syncthreads();
    }

    // A key's head is shared by KEY_LANES lanes, VALUES dimensions each (one load of its K
    // row and one of its V row a lane, at least 8 bytes of F16), so a warp takes
    // KEYS_AT_ONCE keys a step: small heads take several, and their dot products are
    // summed over fewer lanes. Lane `lane` works on key `part` of a step, dimensions
    // sub * VALUES + j for j < VALUES.
    constexpr int VALUES = DIMS < 4 ? 4 : DIMS, KEYS_AT_ONCE = VALUES / DIMS;
    const uint32_t key_lanes = warp / KEYS_AT_ONCE;
    const uint32_t part = lane / key_lanes, sub = lane % key_lanes;
    float q_r[VALUES];
#pragma unroll
    for (int j = 0; j < VALUES; ++j) {
        q_r[j] = q_s[sub * VALUES + j];
    }
    // The running max is the warp's (every lane holds it); the sum and the weighted V
    // rows are each part's until the parts are added up after the walk.
    float m = -INFINITY, l = 0.0f, acc[VALUES];
#pragma unroll
    for (int j = 0; j < VALUES; ++j) {
        acc[j] = 0.0f;
    }
    // Steps whose rows are in flight together: 16 values of V a lane held at once keep the
    // kernel at two blocks an SM (sm_90's 64 registers a thread).
    constexpr int BATCH = 16 / VALUES;
    for (uint64_t round = key_begin; round < key_end; round += keys_per_round) {
        if (round + w >= key_end) {
            break;  // warp-uniform: no key of this warp is left
        }
        const KeySlot mine = round == key_begin
                                 ? first_key
                                 : find_key(block_tables, slot_positions, seq, max_blocks,
                                            block_size, n_slots, round + own_key, key_end);
        const uint32_t n_mine =
            (uint32_t)min((uint64_t)warp, (key_end - round - w + n_warps - 1) / n_warps);
        // One batch of NB steps from the warp's key i0, folded into the running softmax.
        const auto fold_batch = [&](uint32_t i0, auto steps) {
            constexpr int NB = decltype(steps)::value;
            // Every key's K and V rows are asked for before any is used; a hidden key
            // (its weight is 0, and a stale value must not make 0 * NaN) reads as zeros.
            float score[NB], v[NB][VALUES];
            bool visible[NB];
#pragma unroll
            for (int b = 0; b < NB; ++b) {
                const uint32_t i = i0 + b * KEYS_AT_ONCE + part;  // the warp's key i
                const int from = (int)(i & (warp - 1));  // the lane that looked it up
                const int32_t kp = __float_as_int(rf_shfl(__int_as_float(mine.pos), from));
                const uint32_t slot = __float_as_uint(rf_shfl(__uint_as_float(mine.slot), from));
                visible[b] = i < n_mine && sees(kp, p, window);
                const uint64_t at = (uint64_t)slot * kv_dim + (uint64_t)kv_head * hd +
                                    (uint64_t)sub * VALUES;
                float k[VALUES];
#pragma unroll
                for (int j = 0; j < VALUES; ++j) {
                    k[j] = 0.0f;
                    v[b][j] = 0.0f;
                }
                if (visible[b]) {
                    Kv::template load_span<VALUES>(k_cache, at, k);
                    Kv::template load_span<VALUES>(v_cache, at, v[b]);
                }
                score[b] = 0.0f;
#pragma unroll
                for (int j = 0; j < VALUES; ++j) {
                    score[b] = fmaf(q_r[j], k[j], score[b]);
                }
            }
            // The batch's dot products summed over each part's lanes side by side; every
            // lane of a part ends with the same bits (each step adds the same two values).
            for (uint32_t offset = key_lanes / 2; offset > 0; offset /= 2) {
#pragma unroll
                for (int b = 0; b < NB; ++b) {
                    score[b] += rf_shfl_xor(score[b], offset);
                }
            }
            float batch_max = -INFINITY;
#pragma unroll
            for (int b = 0; b < NB; ++b) {
                score[b] = visible[b] ? score[b] * scale : -INFINITY;
                batch_max = fmaxf(batch_max, score[b]);
            }
            for (uint32_t offset = key_lanes; offset < (uint32_t)warp; offset *= 2) {
                batch_max = fmaxf(batch_max, rf_shfl_xor(batch_max, offset));
            }
            // Fold the batch into the running softmax.
            const float m_new = fmaxf(m, batch_max);
            if (m_new == -INFINITY) {
                return;  // warp-uniform: nothing visible yet
            }
            const float alpha = expf(m - m_new);  // 0 while m is -inf
            l *= alpha;
#pragma unroll
            for (int j = 0; j < VALUES; ++j) {
                acc[j] *= alpha;
            }
#pragma unroll
            for (int b = 0; b < NB; ++b) {
                const float weight = visible[b] ? expf(score[b] - m_new) : 0.0f;
                l += weight;
#pragma unroll
                for (int j = 0; j < VALUES; ++j) {
                    acc[j] = fmaf(weight, v[b][j], acc[j]);
                }
            }
            m = m_new;
        };
        // A batch no larger than the keys left needs: a warp with one step's keys (a short
        // depth) does one step's loads, shuffles and exponentials, not BATCH's.
        for (uint32_t i0 = 0; i0 < n_mine;) {
            const uint32_t left = n_mine - i0;
            if (left <= (uint32_t)KEYS_AT_ONCE) {
                fold_batch(i0, BatchSteps<1>{});
                i0 += KEYS_AT_ONCE;
            } else if (BATCH > 2 && left <= 2u * KEYS_AT_ONCE) {
                fold_batch(i0, BatchSteps<2>{});
                i0 += 2 * KEYS_AT_ONCE;
            } else {
                fold_batch(i0, BatchSteps<BATCH>{});
                i0 += BATCH * KEYS_AT_ONCE;
            }
        }
    }
    // The parts' sums, all under the warp's max: part 0's lanes hold the warp's.
    for (uint32_t offset = key_lanes; offset < (uint32_t)warp; offset *= 2) {
        l += rf_shfl_xor(l, offset);
#pragma unroll
        for (int j = 0; j < VALUES; ++j) {
            acc[j] += rf_shfl_xor(acc[j], offset);
        }
    }

    // The warps' states merged through shared memory in two short rounds rather than a
    // sixteen-step chain on a head's worth of threads: every warp finds the block's max
    // from the warps' maxima and scales its own state to it once (one exponential a
    // warp); then each of a head's dimensions is a plain sum over the warps.
    if (lane == 0) {
        warp_m[w] = m;
    }
    __syncthreads();
    float m_max = lane < n_warps ? warp_m[lane] : -INFINITY;
    for (uint32_t offset = warp / 2; offset > 0; offset /= 2) {
        m_max = fmaxf(m_max, rf_shfl_xor(m_max, offset));
    }
    // A warp that saw no visible key (max -inf) adds nothing.
    const float factor = m == -INFINITY ? 0.0f : expf(m - m_max);
    if (lane == 0) {
        warp_l[w] = l * factor;
    }
    if (part == 0) {
#pragma unroll
        for (int j = 0; j < VALUES; ++j) {
            warp_acc[w * hd + sub * VALUES + j] = acc[j] * factor;
        }
    }
    __syncthreads();
    for (uint32_t d = threadIdx.x; d < hd; d += blockDim.x) {
        float l_total = 0.0f, o = 0.0f;
        for (uint32_t v = 0; v < n_warps; ++v) {
            l_total += warp_l[v];
            o += warp_acc[v * hd + d];
        }
        if (live_splits == 1) {
            write_output(l_total > 0.0f ? o / l_total : 0.0f, out, q8, q8_d, q8_s, out_at + d);
        } else {
            const uint64_t row = ((uint64_t)token * n_head + head) * n_splits + split;
            partial_acc[row * hd + d] = o;
            if (d == 0) {
                partial_ml[row * 2] = m_max;
                partial_ml[row * 2 + 1] = l_total;
            }
        }
    }
    if (live_splits == 1) {
        return;  // block-uniform
    }
    // The last live split of this (token, head) to finish merges them.
    if (!rf_last_to_arrive(tickets + (uint64_t)token * n_head + head, live_splits)) {
        return;  // block-uniform
    }
    const uint64_t base = ((uint64_t)token * n_head + head) * n_splits;
    for (uint32_t d = threadIdx.x; d < hd; d += blockDim.x) {
        float m_max = -INFINITY;
        for (uint32_t s = 0; s < live_splits; ++s) {
            m_max = fmaxf(m_max, rf_load_coherent(partial_ml + (base + s) * 2));
        }
        float l_total = 0.0f, o = 0.0f;
#pragma unroll 4
        for (uint32_t s = 0; s < live_splits; ++s) {
            const float ms = rf_load_coherent(partial_ml + (base + s) * 2);
            const float ls = rf_load_coherent(partial_ml + (base + s) * 2 + 1);
            const float as = rf_load_coherent(partial_acc + (base + s) * hd + d);
            const float factor = ms == -INFINITY ? 0.0f : expf(ms - m_max);
            l_total += ls * factor;
            o += as * factor;
        }
        write_output(l_total > 0.0f ? o / l_total : 0.0f, out, q8, q8_d, q8_s, out_at + d);
    }
}

#define RF_ATTENTION_TOKEN_KERNEL(DIMS, NAME, KV)                                                \
    RF_KERNEL void RF_LAUNCH_BOUNDS(TOKEN_THREADS, 2) rf_attention_token_d##DIMS##_##NAME(     \
        const float *q, uint8_t *k_cache, uint8_t *v_cache,                                      \
        const uint32_t *block_tables, const int32_t *slot_positions, const uint32_t *n_logical, \
        const uint32_t *seq_index, const int32_t *pos, float *out, float *partial_acc,           \
        float *partial_ml, uint32_t n_tokens, uint32_t n_head, uint32_t n_kv_heads,              \
        uint32_t head_dim, uint32_t n_seq, uint32_t max_blocks, uint32_t block_size,             \
        uint64_t n_slots, float scale, uint32_t tokens_per_tile, uint32_t keys_per_tile,         \
        uint32_t keys_per_split, uint32_t n_splits, uint32_t *tickets, int8_t *q8,             \
        float *q8_d, float *q8_s, uint32_t window, const float *k_new, const float *v_new,       \
        const uint32_t *write_slot, uint32_t rope_dims, float theta_scale, uint32_t neox) {      \
        const FusedRope rope = {k_new, v_new, write_slot, rope_dims, theta_scale, neox};         \
        attention_token<DIMS, KV>(q, k_cache, v_cache, block_tables, slot_positions, n_logical,  \
                                  seq_index, pos, out, partial_acc, partial_ml, n_tokens,        \
                                  n_head, n_kv_heads, head_dim, n_seq, max_blocks, block_size,   \
                                  n_slots, scale, keys_per_split, n_splits, tickets, q8, q8_d,   \
                                  q8_s, window, rope);                                           \
    }

#define RF_ATTENTION_TOKEN_KERNELS(NAME, KV) \
    RF_ATTENTION_TOKEN_KERNEL(1, NAME, KV)    \
    RF_ATTENTION_TOKEN_KERNEL(2, NAME, KV)    \
    RF_ATTENTION_TOKEN_KERNEL(4, NAME, KV)    \
    RF_ATTENTION_TOKEN_KERNEL(8, NAME, KV)

RF_ATTENTION_TOKEN_KERNELS(f16, KvF16)
RF_ATTENTION_TOKEN_KERNELS(f32, KvF32)
RF_ATTENTION_TOKEN_KERNELS(q8_0, KvQ8_0)
