// RoPE fused with the K/V cache write: for each token, rotates its query and key heads by
// the angles of its position (in place), then stores its key and value as f16 into the
// layer's cache at the token's slot.
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

RF_KERNEL void rf_rope_kv_write(float *q,              // [n_tokens, n_head * head_dim]
                                float *k,              // [n_tokens, n_kv_heads * head_dim]
                                const float *v,        // [n_tokens, n_kv_heads * head_dim]
                                const int32_t *pos,    // [n_tokens]
                                const uint32_t *slot,  // [n_tokens] flat cache slot
                                __half *k_cache,       // [n_slots, n_kv_heads * head_dim]
                                __half *v_cache,       // [n_slots, n_kv_heads * head_dim]
                                uint32_t n_tokens, uint32_t n_head, uint32_t n_kv_heads,
                                uint32_t head_dim, uint32_t rope_dims, float theta_scale,
                                uint32_t neox, uint64_t n_slots) {
    rf_grid_dependency_sync();
    const uint32_t t = blockIdx.x, h = blockIdx.y;
    if (t >= n_tokens || h >= n_head + n_kv_heads) {
        return;
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
        return;
    }
    // Key/value head kh: each key pair is rotated and stored by one thread; each other key
    // dimension and each value by one thread: no element has two writers.
    const uint64_t kv_dim = (uint64_t)n_kv_heads * head_dim;
    const uint64_t at = (uint64_t)t * kv_dim + (uint64_t)(h - n_head) * head_dim;
    float *kh = k + at;
    const float *vh = v + at;
    const bool store = slot[t] < n_slots;
    const uint64_t row = store ? (uint64_t)slot[t] * kv_dim + (at - (uint64_t)t * kv_dim) : 0;
    __half *k_row = k_cache + row;
    __half *v_row = v_cache + row;
    for (uint32_t i = threadIdx.x; i < n_pairs; i += blockDim.x) {
        uint32_t a, b;
        pair_offsets(i, n_pairs, neox, &a, &b);
        rotate(&kh[a], &kh[b], pair_angle(p, i, theta_scale));
        if (store) {
            k_row[a] = __float2half_rn(kh[a]);
            k_row[b] = __float2half_rn(kh[b]);
        }
    }
    for (uint32_t e = rope_dims + threadIdx.x; store && e < head_dim; e += blockDim.x) {
        k_row[e] = __float2half_rn(kh[e]);
    }
    for (uint32_t e = threadIdx.x; store && e < head_dim; e += blockDim.x) {
        v_row[e] = __float2half_rn(vh[e]);
    }
}
