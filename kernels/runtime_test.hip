// Small kernels that prove the GPU runtime works end to end: module load, argument passing,
// grid-stride indexing, shared memory with barriers, warp shuffles and graph replay. The
// model's kernels live in their own files.
#include "compat.h"

// out[i] = value for every i < n.
RF_KERNEL void rf_test_fill_u32(uint32_t *out, uint32_t value, uint64_t n) {
    rf_grid_dependency_sync();
    for (uint64_t i = rf_global_thread(); i < n; i += rf_grid_threads()) {
        out[i] = value;
    }
}

// counter[i] += 1 for every i < n: replaying a graph of this kernel k times adds k.
RF_KERNEL void rf_test_increment_u32(uint32_t *counter, uint64_t n) {
    rf_grid_dependency_sync();
    for (uint64_t i = rf_global_thread(); i < n; i += rf_grid_threads()) {
        counter[i] += 1;
    }
}

// y[i] = a * x[i] + y[i].
RF_KERNEL void rf_test_axpy_f32(float *y, const float *x, float a, uint64_t n) {
    rf_grid_dependency_sync();
    for (uint64_t i = rf_global_thread(); i < n; i += rf_grid_threads()) {
        y[i] = a * x[i] + y[i];
    }
}

// partial[blockIdx.x] = sum of this block's grid-stride share of x[0..n). Lanes reduce
// within their warp by shuffles, warps through shared memory; blockDim.x must be a
// multiple of the warp size and at most 1024.
RF_KERNEL void rf_test_block_sum_f32(const float *x, float *partial, uint64_t n) {
    rf_grid_dependency_sync();
    __shared__ float warp_sums[1024 / 32];  // [warps per block]; the most a block can have
    float sum = 0.0f;
    for (uint64_t i = rf_global_thread(); i < n; i += rf_grid_threads()) {
        sum += x[i];
    }
    sum = rf_warp_sum(sum);
    const int lane = threadIdx.x % rf_warp_size();
    const int warp = threadIdx.x / rf_warp_size();
    const int n_warps = blockDim.x / rf_warp_size();
    if (lane == 0) {
        warp_sums[warp] = sum;
    }
    __syncthreads();
    if (threadIdx.x == 0) {
        float total = 0.0f;
        for (int w = 0; w < n_warps; ++w) {
            total += warp_sums[w];
        }
        partial[blockIdx.x] = total;
    }
}

// out[0] = the warp size the kernel sees, to check against the device attribute.
RF_KERNEL void rf_test_warp_size(uint32_t *out) {
    rf_grid_dependency_sync();
    if (rf_global_thread() == 0) {
        out[0] = (uint32_t)rf_warp_size();
    }
}

// *target = 1. The device-loss test passes an address nothing maps, so the kernel faults
// and corrupts its context on purpose.
RF_KERNEL void rf_test_fault(uint32_t *target) {
    rf_grid_dependency_sync();
    if (rf_global_thread() == 0) {
        *target = 1;
    }
}
