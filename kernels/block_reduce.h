// Reductions over a whole thread block through shared memory, for any block size up to
// 1024 (not only powers of two) and any element type: pairs (i, i + stride) are combined
// for stride 1, 2, 4, ..., each round behind a barrier, so every value is written before it
// is read. Every thread of the block must call them (they contain barriers).
#pragma once

#include "compat.h"

// scratch: blockDim.x elements of shared memory. Returns the combination of every
// thread's `value` to every thread; scratch may be reused after the call.
template <typename T, typename Combine>
RF_DEVICE T rf_block_reduce(T value, T *scratch, Combine combine) {
    const unsigned tid = threadIdx.x;
    scratch[tid] = value;
    for (unsigned stride = 1; stride < blockDim.x; stride *= 2) {
        __syncthreads();
        if (tid % (2 * stride) == 0 && tid + stride < blockDim.x) {
            scratch[tid] = combine(scratch[tid], scratch[tid + stride]);
        }
    }
    __syncthreads();
    const T total = scratch[0];
    // Nobody may overwrite scratch[0] (a next call) before every thread has read it.
    __syncthreads();
    return total;
}

// Sum of every thread's `value` over the block, to every thread: warp shuffles, then one
// warp over the warps' sums. scratch: at least blockDim.x / warpSize doubles of shared
// memory. blockDim.x must be a multiple of the warp size. Every thread must call it.
RF_DEVICE double rf_block_sum_f64(double value, double *scratch) {
    const int warp = rf_warp_size();
    const unsigned lane = threadIdx.x % warp, w = threadIdx.x / warp;
    const unsigned n_warps = blockDim.x / warp;
    value = rf_lanes_sum_f64(value, warp);
    if (lane == 0) {
        scratch[w] = value;
    }
    __syncthreads();
    double total = 0.0;
    for (unsigned i = 0; i < n_warps; ++i) {
        total += scratch[i];  // every thread adds the same values in the same order
    }
    // Nobody may overwrite scratch (a next call) before every thread has read it.
    __syncthreads();
    return total;
}
