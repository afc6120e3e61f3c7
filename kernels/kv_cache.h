// The KV cache's element types (src/backend/kv_type.rs). A layer's K or V cache is the
// row-major array [n_slots, n_kv_heads * head_dim] of values, stored as ggml lays out a
// row of F16, F32 or Q8_0 (blocks of 32 values: an f16 step d, then 32 int8 quants q, 34
// bytes; a value is d * q). Element e is value e of that array. For Q8_0 every head
// starts a block (head_dim a multiple of 32, checked on the host), so a head's values are
// whole blocks.
#pragma once
#include "compat.h"

struct KvF16 {
    // Each element stored on its own (store_one), so a thread can store what it holds.
    static constexpr bool PER_ELEMENT = true;
    static __device__ __forceinline__ void store_one(uint8_t *cache, uint64_t e, float value) {
        ((__half *)cache)[e] = __float2half_rn(value);
    }
    static __device__ __forceinline__ float load(const uint8_t *cache, uint64_t e) {
        return __half2float(((const __half *)cache)[e]);
    }
    // Elements e..e + N (N of 1, 2, 4 or 8; e a multiple of N) in one load.
    template <int N>
    static __device__ __forceinline__ void load_span(const uint8_t *cache, uint64_t e,
                                                     float (&out)[N]) {
        const __half *first = (const __half *)cache + e;
        if constexpr (N == 8) {
            const uint4 packed = *(const uint4 *)first;
            halves_to_floats<N>((const __half2 *)&packed, out);
        } else if constexpr (N == 4) {
            const uint2 packed = *(const uint2 *)first;
            halves_to_floats<N>((const __half2 *)&packed, out);
        } else if constexpr (N == 2) {
            const uint32_t packed = *(const uint32_t *)first;
            halves_to_floats<N>((const __half2 *)&packed, out);
        } else {
            out[0] = __half2float(*first);
        }
    }
    template <int N>
    static __device__ __forceinline__ void halves_to_floats(const __half2 *pairs,
                                                            float (&out)[N]) {
#pragma unroll
        for (int c = 0; c < N / 2; ++c) {
            const float2 f = __half22float2(pairs[c]);
            out[2 * c] = f.x;
            out[2 * c + 1] = f.y;
        }
    }
    // Where element e's bytes begin (for Q8_0, e the first of a block).
    static __device__ __forceinline__ uint64_t byte_of(uint64_t e) { return 2 * e; }
    // Stores values[0, n) at elements first.., threads tid of n_threads sharing the work.
    static __device__ __forceinline__ void store(uint8_t *cache, uint64_t first,
                                                 const float *values, uint32_t n,
                                                 uint32_t tid, uint32_t n_threads) {
        __half *out = (__half *)cache + first;
        for (uint32_t i = tid; i < n; i += n_threads) {
            out[i] = __float2half_rn(values[i]);
        }
    }
};

struct KvF32 {
    static constexpr bool PER_ELEMENT = true;
    static __device__ __forceinline__ void store_one(uint8_t *cache, uint64_t e, float value) {
        ((float *)cache)[e] = value;
    }
    static __device__ __forceinline__ float load(const uint8_t *cache, uint64_t e) {
        return ((const float *)cache)[e];
    }
    // As KvF16::load_span: 16-byte loads, fewer for N < 4.
    template <int N>
    static __device__ __forceinline__ void load_span(const uint8_t *cache, uint64_t e,
                                                     float (&out)[N]) {
        const float *first = (const float *)cache + e;
        if constexpr (N >= 4) {
#pragma unroll
            for (int c = 0; c < N / 4; ++c) {
                const float4 f = ((const float4 *)first)[c];
                out[4 * c] = f.x;
                out[4 * c + 1] = f.y;
                out[4 * c + 2] = f.z;
                out[4 * c + 3] = f.w;
            }
        } else if constexpr (N == 2) {
            const float2 f = *(const float2 *)first;
            out[0] = f.x;
            out[1] = f.y;
        } else {
            out[0] = *first;
        }
    }
    static __device__ __forceinline__ uint64_t byte_of(uint64_t e) { return 4 * e; }
    static __device__ __forceinline__ void store(uint8_t *cache, uint64_t first,
                                                 const float *values, uint32_t n,
                                                 uint32_t tid, uint32_t n_threads) {
        float *out = (float *)cache + first;
        for (uint32_t i = tid; i < n; i += n_threads) {
            out[i] = values[i];
        }
    }
};

#define KV_Q8_0_BLOCK 32
#define KV_Q8_0_BLOCK_BYTES 34

struct KvQ8_0 {
    // A block's step depends on all 32 of its values: stored a block at a time only.
    static constexpr bool PER_ELEMENT = false;
    static __device__ __forceinline__ float load(const uint8_t *cache, uint64_t e) {
        const uint8_t *block = cache + (e / KV_Q8_0_BLOCK) * KV_Q8_0_BLOCK_BYTES;
        return __half2float(*(const __half *)block) * (float)(int8_t)block[2 + e % KV_Q8_0_BLOCK];
    }
    // As KvF16::load_span: N values of one block (N divides the block), byte by byte (a
    // block's quants sit at an odd offset), scaled by its step.
    template <int N>
    static __device__ __forceinline__ void load_span(const uint8_t *cache, uint64_t e,
                                                     float (&out)[N]) {
        const uint8_t *block = cache + (e / KV_Q8_0_BLOCK) * KV_Q8_0_BLOCK_BYTES;
        const float d = __half2float(*(const __half *)block);
        const uint8_t *quants = block + 2 + e % KV_Q8_0_BLOCK;
#pragma unroll
        for (int i = 0; i < N; ++i) {
            out[i] = d * (float)(int8_t)quants[i];
        }
    }
    static __device__ __forceinline__ uint64_t byte_of(uint64_t e) {
        return e / KV_Q8_0_BLOCK * KV_Q8_0_BLOCK_BYTES;
    }
    // One thread a block, rounded as the CPU's quantize_q8_0: d = max|x| / 127 (stored as
    // f16), q = x * 127 / max|x| rounded half to even.
    static __device__ __forceinline__ void store(uint8_t *cache, uint64_t first,
                                                 const float *values, uint32_t n,
                                                 uint32_t tid, uint32_t n_threads) {
        for (uint32_t b = tid; b < n / KV_Q8_0_BLOCK; b += n_threads) {
            const float *x = values + b * KV_Q8_0_BLOCK;
            float amax = 0.0f;
            for (int i = 0; i < KV_Q8_0_BLOCK; ++i) {
                amax = fmaxf(amax, fabsf(x[i]));
            }
            const float inverse = amax != 0.0f ? 127.0f / amax : 0.0f;
            uint8_t *block = cache + (first / KV_Q8_0_BLOCK + b) * KV_Q8_0_BLOCK_BYTES;
            *(__half *)block = __float2half_rn(amax / 127.0f);
            for (int i = 0; i < KV_Q8_0_BLOCK; ++i) {
                block[2 + i] = (uint8_t)(int8_t)__float2int_rn(x[i] * inverse);
            }
        }
    }
};
