// A reduction over a whole thread block.
#pragma once

#include "compat.h"

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
