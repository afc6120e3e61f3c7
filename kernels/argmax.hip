// Greedy decoding on the device: the index of the largest logit of each row, so a greedy
// step hands the host 4 bytes rather than the vocabulary (written straight into host
// memory: src/backend/gpu/safe/mapped_host.rs). As the CPU sampler: NaN counts as
// -inf, ties go to the lowest index, and a row with nothing above -inf gives index 0.
//
// A row is cut into chunks, a block each, so that its loads are spread over many SMs: one
// block walking a 128,256-value row alone waited out a dozen rounds of L2 latency at the
// end of every decode step. Each block writes its chunk's best to `partial`, and the
// row's last block to finish (last_block.h) picks among them.
//
// Launch: grid (x = n_rows, y = the chunks of a row, at most blockDim.x), blockDim.x a
// multiple of the warp size up to 1024. With more than one chunk, `partial` holds
// n_rows * gridDim.y values and `arrivals` n_rows counters that are zero (each row's last
// block leaves its counter zero again).
#include "compat.h"
#include "last_block.h"

struct Best {
    float value;
    uint32_t index;
};

RF_DEVICE Best better(Best a, Best b) {
    return (b.value > a.value || (b.value == a.value && b.index < a.index)) ? b : a;
}

// The best of the warp's lanes, to every lane. `better` picks the same element whatever
// the order of the comparisons, so every grouping of a row's values gives the same answer.
RF_DEVICE Best warp_best(Best b) {
    for (int offset = rf_warp_size() / 2; offset > 0; offset /= 2) {
        const Best other = {rf_shfl_xor(b.value, offset),
                            __float_as_uint(rf_shfl_xor(__uint_as_float(b.index), offset))};
        b = better(b, other);
    }
    return b;
}

// The best of the block's threads, to thread 0: shuffles within the warps, then the first
// warp over their bests (one barrier). `warps` holds a value per warp.
RF_DEVICE Best block_best(Best b, Best *warps, uint32_t none) {
    const uint32_t warp = rf_warp_size(), lane = threadIdx.x % warp;
    b = warp_best(b);
    if (lane == 0) {
        warps[threadIdx.x / warp] = b;
    }
    __syncthreads();
    if (threadIdx.x < warp) {
        b = lane < blockDim.x / warp ? warps[lane] : Best{-INFINITY, none};
        b = warp_best(b);
    }
    return b;
}

// Row r's answer from its best: index n_vocab stood for "nothing above -inf".
RF_DEVICE void write_choice(int32_t *out, uint32_t r, Best best, uint32_t n_vocab) {
    out[r] = best.index < n_vocab ? (int32_t)best.index : 0;
}

RF_KERNEL void rf_argmax_f32(const float *logits,  // [n_rows, n_vocab]
                             uint32_t n_vocab,
                             Best *partial,       // [n_rows, gridDim.y]
                             uint32_t *arrivals,  // [n_rows]
                             int32_t *out) {      // [n_rows]
    rf_grid_dependency_sync();
    __shared__ Best warps[32];  // each warp's best (at most 1,024 threads of 32 lanes)
    const uint32_t r = blockIdx.x, chunk = blockIdx.y, n_chunks = gridDim.y;
    const float *row = logits + (uint64_t)r * n_vocab;
    // Index n_vocab stands for "none yet": any real index wins a tie against it.
    Best best = {-INFINITY, n_vocab};
    auto see = [&](float v, uint32_t i) { best = better(best, Best{isnan(v) ? -INFINITY : v, i}); };
    // The values before the row's first 16-byte boundary and after its last whole vector
    // go to the first chunk; the vectors between, four values a load, to every chunk in
    // turn (the head product just wrote them, so they are in L2).
    const uint32_t head = min(n_vocab, (uint32_t)((16 - (uintptr_t)row % 16) % 16 / 4));
    const uint32_t n_fours = (n_vocab - head) / 4;
    const uint32_t tail = head + 4 * n_fours;
    if (chunk == 0 && threadIdx.x < head) {
        see(row[threadIdx.x], threadIdx.x);
    }
    if (chunk == 0 && tail + threadIdx.x < n_vocab) {
        see(row[tail + threadIdx.x], tail + threadIdx.x);
    }
    const float4 *fours = (const float4 *)(row + head);
    const uint32_t stride = n_chunks * blockDim.x;
#pragma unroll 4
    for (uint32_t i = chunk * blockDim.x + threadIdx.x; i < n_fours; i += stride) {
        const float4 v = fours[i];
        const uint32_t at = head + 4 * i;
        see(v.x, at);
        see(v.y, at + 1);
        see(v.z, at + 2);
        see(v.w, at + 3);
    }
    best = block_best(best, warps, n_vocab);
    if (n_chunks == 1) {
        if (threadIdx.x == 0) {
            write_choice(out, r, best, n_vocab);
        }
        return;  // block-uniform
    }
    if (threadIdx.x == 0) {
        partial[(uint64_t)r * n_chunks + chunk] = best;
    }
    if (!rf_last_to_arrive(arrivals + r, n_chunks)) {
        return;  // block-uniform
    }
    // Every chunk's best, a thread each (n_chunks <= blockDim.x).
    best = Best{-INFINITY, n_vocab};
    if (threadIdx.x < n_chunks) {
        const Best *theirs = partial + (uint64_t)r * n_chunks + threadIdx.x;
        best = Best{rf_load_coherent(&theirs->value),
                    __float_as_uint(rf_load_coherent((const float *)&theirs->index))};
    }
    best = block_best(best, warps, n_vocab);
    if (threadIdx.x == 0) {
        write_choice(out, r, best, n_vocab);
    }
}
