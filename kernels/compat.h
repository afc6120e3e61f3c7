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

// Sum in f64 over each run of `lanes` consecutive lanes (a power of two, at most the warp);
// every lane of the run receives its total, added in the same order in every lane.
RF_DEVICE double rf_lanes_sum_f64(double v, int lanes) {
    for (int offset = lanes / 2; offset > 0; offset /= 2) {
        v += rf_shfl_xor_f64(v, offset);
    }
    return v;
}

// Index of this thread in a 1-D grid and the grid's thread count, as 64-bit values so that
// grid-stride loops over more than 2^31 elements do not overflow.
RF_DEVICE uint64_t rf_global_thread() {
    return (uint64_t)blockIdx.x * blockDim.x + threadIdx.x;
}
RF_DEVICE uint64_t rf_grid_threads() { return (uint64_t)gridDim.x * blockDim.x; }

// A 16-byte load of data no kernel writes (weights), 16-byte aligned, that skips L1 on
// NVIDIA: a decode step reads each weight once, and cached it would only evict the
// activations every warp rereads.
RF_DEVICE uint4 rf_load_weights16(const void *p) {
#if defined(RF_CUDA)
    uint4 v;
    asm("ld.global.nc.L1::no_allocate.v4.u32 {%0, %1, %2, %3}, [%4];"
        : "=r"(v.x), "=r"(v.y), "=r"(v.z), "=r"(v.w)
        : "l"(p));
    return v;
#else
    return *static_cast<const uint4 *>(p);
#endif
}

// Asks for the 128-byte line holding p to be brought into L2 (NVIDIA), without waiting for
// it or holding a register. Safe before rf_grid_dependency_sync even for data the previous
// kernel writes: L2 is where writes land, so a read after the sync sees them.
RF_DEVICE void rf_prefetch_l2(const void *p) {
#if defined(RF_CUDA)
    asm volatile("prefetch.global.L2 [%0];" ::"l"(p));
#else
    (void)p;
#endif
}

// A kernel's largest block and the blocks an SM should hold at once, so the compiler caps
// its registers to fit (NVIDIA). HIP's second argument means waves per execution unit, a
// different budget, so there it is left to the compiler.
#if defined(RF_CUDA)
#define RF_LAUNCH_BOUNDS(THREADS, BLOCKS) __launch_bounds__(THREADS, BLOCKS)
#else
#define RF_LAUNCH_BOUNDS(THREADS, BLOCKS)
#endif

// Overlapped launches (NVIDIA 9.0 and newer): the library launches every kernel with
// programmatic stream serialization (src/backend/gpu/result/calls.rs), so a kernel may begin
// while the kernel before it on the stream is still running, which hides the launch gap
// between the small kernels of a decode step. The three calls below are where a kernel
// meets its neighbours; elsewhere launches do not overlap and they are nothing.

// Waits until the previous kernel has finished and its writes are visible (and that
// kernel had waited for its own predecessor). Alone, the next kernel begins launching only
// when this one ends: for a kernel that waits for kernels on other streams (peer_sum.hip),
// where a next kernel launched early would sit on SMs that those kernels, where they share
// this GPU, need to get there.
RF_DEVICE void rf_grid_dependency_wait() {
#if defined(RF_CUDA) && defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
    asm volatile("griddepcontrol.wait;" ::: "memory");
#endif
}

// Lets the next kernel begin launching: at once where it comes before the wait
// (rf_grid_dependency_sync's let_next_launch_first), so the kernel after this one gets
// its blocks resident, and their first weights in flight, while the kernel before it is
// still ending, instead of only once this kernel's blocks are past their wait. Every
// kernel still waits before it ends, so the next one's wait for this kernel's end still
// implies the end of everything queued before.
RF_DEVICE void rf_let_next_launch() {
#if defined(RF_CUDA) && defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
    asm volatile("griddepcontrol.launch_dependents;" ::: "memory");
#endif
}

// A kernel calls this before it reads anything earlier work wrote or writes anything
// earlier work reads: the wait, then the next kernel may begin launching. Only reads of
// data no kernel writes (weights) may come before it. With let_next_launch_first the next
// kernel may begin launching before the wait: only where that was measured to gain
// (kernels/README.md).
RF_DEVICE void rf_grid_dependency_sync(bool let_next_launch_first = false) {
    if (let_next_launch_first) {
        rf_let_next_launch();
        rf_grid_dependency_wait();
    } else {
        rf_grid_dependency_wait();
        rf_let_next_launch();
    }
}
