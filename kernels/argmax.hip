// Greedy decoding on the device: the index of the largest logit of each row, so a greedy
// step hands the host 4 bytes rather than the vocabulary (written straight into host
// memory: src/backend/gpu/safe/mapped_host.rs). As the CPU sampler: NaN counts as
// -inf, ties go to the lowest index, and a row with nothing above -inf gives index 0.
//
// Launch: grid.x = n_rows (one block per row), blockDim.x a multiple of the warp size up
// to 1024.
#include "compat.h"

struct Best {
    float value;
    uint32_t index;
};

RF_DEVICE Best better(Best a, Best b) {
    return (b.value > a.value || (b.value == a.value && b.index < a.index)) ? b : a;
}

// The best of the warp's lanes, to every lane. `better` picks the same element whatever
// the order of the comparisons, so this is the block's answer however it is grouped.
RF_DEVICE Best warp_best(Best b) {
    for (int offset = rf_warp_size() / 2; offset > 0; offset /= 2) {
        const Best other = {rf_shfl_xor(b.value, offset),
                            __float_as_uint(rf_shfl_xor(__uint_as_float(b.index), offset))};
        b = better(b, other);
    }
    return b;
}

RF_KERNEL void rf_argmax_f32(const float *logits,  // [n_rows, n_vocab]
                             uint32_t n_rows, uint32_t n_vocab,
                             int32_t *out) {  // [n_rows]
    rf_grid_dependency_sync();
    __shared__ Best warps[32];  // each warp's best (at most 1,024 threads of 32 lanes)
    const uint32_t r = blockIdx.x;
    if (r >= n_rows) {
        return;  // block-uniform
    }
    const float *row = logits + (uint64_t)r * n_vocab;
    // Index n_vocab stands for "none yet": any real index wins a tie against it. `better`
    // does not depend on the order values are seen in.
    Best best = {-INFINITY, n_vocab};
    auto see = [&](float v, uint32_t i) { best = better(best, Best{isnan(v) ? -INFINITY : v, i}); };
    // The values before the row's first 16-byte boundary one at a time, then four at a time
    // (the head product just wrote them, so they are in L2: a 49,152-value row is 12 rounds
    // of loads per thread instead of 48), then the rest.
    const uint32_t head = min(n_vocab, (uint32_t)((16 - (uintptr_t)row % 16) % 16 / 4));
    const uint32_t n_fours = (n_vocab - head) / 4;
    if (threadIdx.x < head) {
        see(row[threadIdx.x], threadIdx.x);
    }
    const float4 *fours = (const float4 *)(row + head);
#pragma unroll 4
    for (uint32_t i = threadIdx.x; i < n_fours; i += blockDim.x) {
        const float4 v = fours[i];
        const uint32_t at = head + 4 * i;
        see(v.x, at);
        see(v.y, at + 1);
        see(v.z, at + 2);
        see(v.w, at + 3);
    }
    for (uint32_t i = head + 4 * n_fours + threadIdx.x; i < n_vocab; i += blockDim.x) {
        see(row[i], i);
    }
    // Shuffles within the warps, then the first warp over their bests: one barrier
    // (a reduction through shared memory took one a halving, ten for 1,024 threads).
    const uint32_t warp = rf_warp_size(), lane = threadIdx.x % warp;
    best = warp_best(best);
    if (lane == 0) {
        warps[threadIdx.x / warp] = best;
    }
    __syncthreads();
    if (threadIdx.x < warp) {
        best = lane < blockDim.x / warp ? warps[lane] : Best{-INFINITY, n_vocab};
        best = warp_best(best);
        if (threadIdx.x == 0) {
            out[r] = best.index < n_vocab ? (int32_t)best.index : 0;
        }
    }
}
