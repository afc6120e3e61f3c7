// RoPE fused with the K/V cache write: for each token, rotates its query and key heads by
// the angles of its position (in place), then stores its key and value into the layer's
// cache at the token's slot, as the cache's type (kv_cache.h; one kernel per type:
// rf_rope_kv_write_f16, _f32, _q8_0).
//
// The rotation and its angles: rope.h. A one-token decode step over the per-token
// attention kernel skips this kernel: attention rotates and stores instead (attention.hip).
//
// Launch: grid (n_tokens, n_head + n_kv_heads), one block per token and head (the query
// heads, then the key/value heads), any block size: a decode step's heads run side by
// side, each thread with one round of loads. A token whose slot is n_slots or more is
// rotated but not stored (the host validates slots first; the kernel only guarantees it
// never writes outside the cache).
#include "compat.h"
#include "kv_cache.h"
#include "rope.h"

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
    const int32_t p = pos[t];
    if (h < n_head) {
        float *head = q + ((uint64_t)t * n_head + h) * head_dim;
        rope_head(head, p, rope_dims, theta_scale, neox, threadIdx.x, blockDim.x);
        return;  // block-uniform
    }
    // Key/value head kh: each key pair is rotated by one thread; once the whole head is,
    // the head's K and V are stored (a Q8_0 block needs all 32 of its values).
    const uint64_t kv_dim = (uint64_t)n_kv_heads * head_dim;
    const uint64_t head_at = (uint64_t)(h - n_head) * head_dim;
    float *kh = k + (uint64_t)t * kv_dim + head_at;
    const float *vh = v + (uint64_t)t * kv_dim + head_at;
    rope_head(kh, p, rope_dims, theta_scale, neox, threadIdx.x, blockDim.x);
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
