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
