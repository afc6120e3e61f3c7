// One kernel source for both vendors. Kernels are written in HIP C++; this header maps the
// few spellings that differ when nvcc compiles them for NVIDIA, and gives both vendors the
// helpers every kernel file uses. Kept deliberately small: anything vendor-specific that
// is not a plain renaming belongs in the kernel, behind RF_CUDA / RF_HIP.
#pragma once

#if defined(__CUDACC__)
#define RF_CUDA 1
#include <cuda_fp16.h>
#include <stdint.h>
#elif defined(__HIPCC__)
#define RF_HIP 1
#include <hip/hip_fp16.h>
#include <hip/hip_runtime.h>
#include <stdint.h>
#else
#error "kernels/compat.h: compile with hipcc (AMD) or nvcc (NVIDIA)"
#endif

// Every kernel the library launches: unmangled, so the runtime finds it by name.
#define RF_KERNEL extern "C" __global__
#define RF_DEVICE static __device__ __forceinline__

// Warp shuffles. HIP's take no lane mask (a wavefront always runs converged at the call);
// CUDA's must name the participating lanes. Callers pass full warps only.
#if defined(RF_CUDA)
#define RF_FULL_MASK 0xffffffffu
RF_DEVICE float rf_shfl_down(float v, int delta) { return __shfl_down_sync(RF_FULL_MASK, v, delta); }
RF_DEVICE float rf_shfl_xor(float v, int mask) { return __shfl_xor_sync(RF_FULL_MASK, v, mask); }
RF_DEVICE double rf_shfl_xor_f64(double v, int mask) {
    return __shfl_xor_sync(RF_FULL_MASK, v, mask);
}
#else
RF_DEVICE float rf_shfl_down(float v, int delta) { return __shfl_down(v, delta); }
RF_DEVICE float rf_shfl_xor(float v, int mask) { return __shfl_xor(v, mask); }
RF_DEVICE double rf_shfl_xor_f64(double v, int mask) { return __shfl_xor(v, mask); }
#endif

// Lanes per warp (NVIDIA 32, AMD CDNA 64, AMD RDNA 32 or 64). `warpSize` is a run-time
// value on both vendors; never assume 32.
RF_DEVICE int rf_warp_size() { return warpSize; }

// Sum over the lanes of one warp; every lane receives the total.
RF_DEVICE float rf_warp_sum(float v) {
    for (int offset = rf_warp_size() / 2; offset > 0; offset /= 2) {
        v += rf_shfl_xor(v, offset);
    }
    return v;
}

// Index of this thread in a 1-D grid and the grid's thread count, as 64-bit values so that
// grid-stride loops over more than 2^31 elements do not overflow.
RF_DEVICE uint64_t rf_global_thread() {
    return (uint64_t)blockIdx.x * blockDim.x + threadIdx.x;
}
RF_DEVICE uint64_t rf_grid_threads() { return (uint64_t)gridDim.x * blockDim.x; }
