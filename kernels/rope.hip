// RoPE fused with the K/V cache write: for each token, rotates its query and key heads by
// the angles of its position (in place), then stores its key and value into the layer's
// cache at the token's slot, as the cache's type (kv_cache.h; one kernel per type:
// rf_rope_kv_write_f16, _f32, _q8_0).
//
// Angles as src/backend/cpu/ops.rs RopeAngles: theta_0 = pos, theta_{i+1} = theta_i * theta_scale
// (theta_scale = base^(-2 / rope_dims), computed on the host in f32 exactly as the CPU
// does), each multiplication rounded in f32 in the same order, so the angles are the CPU's
// bit for bit; only cosf/sinf may differ from the CPU's by an ulp or two. The rotation's
// products are rounded separately (no FMA), as on the CPU.
//
// Pairs: "normal" (llama) rotates (2i, 2i + 1), "neox" (i, i + rope_dims / 2), for
// i < rope_dims / 2; dimensions rope_dims..head_dim pass through unchanged.
//
// Launch: grid (n_tokens, n_head + n_kv_heads), one block per token and head (the query
// heads, then the key/value heads), any block size: a decode step's heads run side by
// side, each thread with one round of loads. A token whose slot is n_slots or more is
// rotated but not stored (the host validates slots first; the kernel only guarantees it
// never writes outside the cache).
#include "compat.h"
#include "ggml_blocks.h"
#include "kv_cache.h"

// x = (x0, x1) rotated by theta: (x0 cos - x1 sin, x0 sin + x1 cos).
RF_DEVICE void rotate(float *x0, float *x1, float theta) {
    const float c = cosf(theta), s = sinf(theta);
    const float a = *x0, b = *x1;
    *x0 = rf_mul(a, c) - rf_mul(b, s);
    *x1 = rf_mul(a, s) + rf_mul(b, c);
}

// The angle of pair i at position pos, by the CPU's sequence of multiplications.
RF_DEVICE float pair_angle(int32_t pos, uint32_t i, float theta_scale) {
    float theta = (float)pos;
    for (uint32_t k = 0; k < i; ++k) {
        theta *= theta_scale;
    }
    return theta;
}

// The offsets within a head of the two elements of pair i.
RF_DEVICE void pair_offsets(uint32_t i, uint32_t n_pairs, uint32_t neox, uint32_t *a,
                            uint32_t *b) {
    *a = neox ? i : 2 * i;
    *b = neox ? i + n_pairs : 2 * i + 1;
}

// One (token, head) of rf_rope_kv_write_*, storing K and V as `Kv` (kv_cache.h).
template <class Kv>
static __device__ void rope_kv_write(float *q, float *k, const float *v, const int32_t *pos,
                                     const uint32_t *slot, uint8_t *k_cache, uint8_t *v_cache,
                                     uint32_t n_tokens, uint32_t n_head, uint32_t n_kv_heads,
                                     uint32_t head_dim, uint32_t rope_dims, float theta_scale,
                                     uint32_t neox, uint64_t n_slots) {
    const uint32_t t = blockIdx.x, h = blockIdx.y;
    if (t >= n_tokens || h >= n_head + n_kv_heads) {
        return;  // block-uniform
    }
    const uint32_t n_pairs = rope_dims / 2;
    const int32_t p = pos[t];
    if (h < n_head) {
        float *head = q + ((uint64_t)t * n_head + h) * head_dim;
        for (uint32_t i = threadIdx.x; i < n_pairs; i += blockDim.x) {
            uint32_t a, b;
            pair_offsets(i, n_pairs, neox, &a, &b);
            rotate(&head[a], &head[b], pair_angle(p, i, theta_scale));
        }
        return;  // block-uniform
    }
    // Key/value head kh: each key pair is rotated by one thread; once the whole head is,
    // the head's K and V are stored (a Q8_0 block needs all 32 of its values).
    const uint64_t kv_dim = (uint64_t)n_kv_heads * head_dim;
    const uint64_t head_at = (uint64_t)(h - n_head) * head_dim;
    float *kh = k + (uint64_t)t * kv_dim + head_at;
    const float *vh = v + (uint64_t)t * kv_dim + head_at;
    for (uint32_t i = threadIdx.x; i < n_pairs; i += blockDim.x) {
        uint32_t a, b;
        pair_offsets(i, n_pairs, neox, &a, &b);
        rotate(&kh[a], &kh[b], pair_angle(p, i, theta_scale));
    }
    __syncthreads();
    if (slot[t] < n_slots) {
        const uint64_t first = (uint64_t)slot[t] * kv_dim + head_at;
        Kv::store(k_cache, first, kh, head_dim, threadIdx.x, blockDim.x);
        Kv::store(v_cache, first, vh, head_dim, threadIdx.x, blockDim.x);
    }
}

#define RF_ROPE_KV_WRITE_KERNEL(NAME, KV)                                                      \
    RF_KERNEL void rf_rope_kv_write_##NAME(                                                    \
        float *q, float *k, const float *v, const int32_t *pos, const uint32_t *slot,          \
        uint8_t *k_cache, uint8_t *v_cache, uint32_t n_tokens, uint32_t n_head,                \
        uint32_t n_kv_heads, uint32_t head_dim, uint32_t rope_dims, float theta_scale,         \
        uint32_t neox, uint64_t n_slots) {                                                     \
        rf_grid_dependency_sync();                                                             \
        rope_kv_write<KV>(q, k, v, pos, slot, k_cache, v_cache, n_tokens, n_head, n_kv_heads,  \
                          head_dim, rope_dims, theta_scale, neox, n_slots);                    \
    }

RF_ROPE_KV_WRITE_KERNEL(f16, KvF16)
RF_ROPE_KV_WRITE_KERNEL(f32, KvF32)
RF_ROPE_KV_WRITE_KERNEL(q8_0, KvQ8_0)
