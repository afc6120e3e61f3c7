// "The last block to finish does the rest": blocks of one launch that each write part of
// a result count their arrivals on a counter in device memory, and the block that arrives
// last, which then sees every other block's writes, finishes the result in the same
// launch (decode attention's merge of its splits, the argmax's pick among its chunks)
// instead of a launch of its own.
#pragma once
#include "compat.h"

// Whether this block is the `expected`-th and so last to arrive at `counter`, which must
// be zero before the first arrival. Every thread of the block calls it (it has barriers).
// Each thread's earlier writes are fenced before the block counts itself, so the last
// block reads them all (with rf_load_coherent, as another unit may hold stale lines); it
// resets the counter to zero for the next launch.
RF_DEVICE bool rf_last_to_arrive(uint32_t *counter, uint32_t expected) {
    __shared__ uint32_t arrivals_before;
    __threadfence();
    __syncthreads();
    if (threadIdx.x == 0) {
        arrivals_before = atomicAdd(counter, 1u);
    }
    __syncthreads();
    if (arrivals_before != expected - 1) {
        return false;  // block-uniform
    }
    __threadfence();
    if (threadIdx.x == 0) {
        *counter = 0;  // every block has arrived: nobody else touches it in this launch
    }
    return true;
}

// A float another block wrote before a fence this one has synchronised with (an atomic
// ticket): read from the device-wide cache level, never from a stale per-unit cache line.
RF_DEVICE float rf_load_coherent(const float *p) {
#if defined(RF_CUDA)
    return __ldcg(p);
#else
    return __hip_atomic_load(p, __ATOMIC_RELAXED, __HIP_MEMORY_SCOPE_AGENT);
#endif
}
