// RMS norm of each row: y = x / sqrt(mean(x^2) + eps) * w, as src/backend/cpu/ops.rs
// rms_norm: the sum of squares in f64, the mean rounded to f32, then f32 for the rest, so
// the result matches the CPU's to the last bit whenever both sums round to the same mean.
//
// Launch: grid.x = n_rows (one block per row), a block size up to 1024 that is a multiple
// of the warp size. x and y may be the same buffer (each element is read before its own
// write, and only by its writer).
#include "block_reduce.h"
#include "compat.h"
#include "q8_activations.h"
#include "rms_scale.h"

// Value i of row r of the output, normalised, and with QUANTIZE its Q8 form.
template <bool QUANTIZE>
RF_DEVICE void rms_norm_store(float v, float *yr, int8_t *q, float *qd, float *qs, uint32_t r,
                              uint32_t width, uint32_t i) {
    yr[i] = v;
    if (QUANTIZE) {
        const uint64_t value = (uint64_t)r * width + i;
        rf_quantize_q8_group(v, i % 32, q, qd, qs, value, value / 32);
    }
}

// With QUANTIZE, the normalised row also goes out as Q8 activations (q8_activations.h) for
// the integer matrix products that read it next, saving a pass. Then blockDim.x must be a
// multiple of 32 and width of 32: each pass of the loop gives every warp whole, aligned
// groups of 32 values.
//
// Each thread holds VALUES values of the row in registers: a row up to VALUES * blockDim.x
// wide is read once, and all its weights before the dependency sync; a wider row takes the
// rest in a loop. The launcher picks the smallest instance that holds the row: registers
// held by a block that waits on the kernel before it are registers that kernel's blocks
// cannot use, and a norm block that needs fewer of them becomes resident sooner.
template <bool QUANTIZE, int VALUES>
static __device__ void rms_norm_row(const float *x, const float *w, float *y, int8_t *q,
                                    float *qd, float *qs, uint32_t n_rows, uint32_t width,
                                    float eps) {
    __shared__ double scratch[32];  // a sum per warp
    const uint32_t r = blockIdx.x;
    if (r >= n_rows) {
        return;  // block-uniform, so no thread misses a barrier
    }
    // The thread's weights are read before waiting on the kernel that writes x: no kernel
    // writes weights, and under overlapped launches (compat.h) their DRAM round trip (the
    // model's weights do not stay in L2 from one step to the next) overlaps that kernel.
    // Read after the reduction, one pass at a time, each pass waited on its own round trip.
    float wv[VALUES];
#pragma unroll
    for (int k = 0; k < VALUES; ++k) {
        const uint32_t i = threadIdx.x + k * blockDim.x;
        wv[k] = i < width ? w[i] : 0.0f;
    }
    rf_grid_dependency_sync();
    const float *xr = x + (uint64_t)r * width;
    float *yr = y + (uint64_t)r * width;
    float xv[VALUES];
#pragma unroll
    for (int k = 0; k < VALUES; ++k) {
        const uint32_t i = threadIdx.x + k * blockDim.x;
        xv[k] = i < width ? xr[i] : 0.0f;
    }
    // In the order of i, as one loop over the row would add them (the padding adds zeros).
    double sum_sq = 0.0;
#pragma unroll
    for (int k = 0; k < VALUES; ++k) {
        const double v = xv[k];
        sum_sq += v * v;
    }
    const uint32_t held = VALUES * blockDim.x;
    for (uint32_t i = threadIdx.x + held; i < width; i += blockDim.x) {
        const double v = xr[i];
        sum_sq += v * v;
    }
    sum_sq = rf_block_sum_f64(sum_sq, scratch);
    const float scale = rf_rms_scale_of(sum_sq, (double)width, eps);
#pragma unroll
    for (int k = 0; k < VALUES; ++k) {
        const uint32_t i = threadIdx.x + k * blockDim.x;
        if (i < width) {  // warp-uniform with QUANTIZE: width, blockDim.x multiples of 32
            rms_norm_store<QUANTIZE>(xv[k] * scale * wv[k], yr, q, qd, qs, r, width, i);
        }
    }
    for (uint32_t i = threadIdx.x + held; i < width; i += blockDim.x) {
        rms_norm_store<QUANTIZE>(xr[i] * scale * w[i], yr, q, qd, qs, r, width, i);
    }
}

// rf_rms_norm_f32_v<VALUES>: the normalised rows. rf_rms_norm_q8_f32_v<VALUES>: and the
// rows as Q8 activations, q [n_rows, width], qd and qs [n_rows, width / 32].
#define RF_RMS_NORM_KERNELS(VALUES)                                                            \
    RF_KERNEL void rf_rms_norm_f32_v##VALUES(const float *x, /* [n_rows, width] */            \
                                             const float *w, /* [width] */                    \
                                             float *y,       /* [n_rows, width] */            \
                                             uint32_t n_rows, uint32_t width, float eps) {    \
        rms_norm_row<false, VALUES>(x, w, y, nullptr, nullptr, nullptr, n_rows, width, eps);  \
    }                                                                                          \
    RF_KERNEL void rf_rms_norm_q8_f32_v##VALUES(const float *x, const float *w, float *y,     \
                                                int8_t *q, float *qd, float *qs,              \
                                                uint32_t n_rows, uint32_t width, float eps) { \
        rms_norm_row<true, VALUES>(x, w, y, q, qd, qs, n_rows, width, eps);                   \
    }

RF_RMS_NORM_KERNELS(1)
RF_RMS_NORM_KERNELS(2)
RF_RMS_NORM_KERNELS(4)
RF_RMS_NORM_KERNELS(8)

// One token's stream x [n] prepared for the RMS norm of weights w as the residual products
// that prepare the next norm leave it, where no such product comes before the norm's
// readers (the first layer of a layer split's later share), so the readers compute what
// they compute on one device. rf_prepare_norm_q8: for the integer products (Q8 of x * w
// and each group's sum of squares, rf_prepare_norm_group; grid.x = n / 32, 32 threads).
// rf_prepare_norm_f32: y = x * w for the F16 products, which work the scale out from x
// (a grid-stride loop, as elementwise.hip's).
RF_KERNEL void rf_prepare_norm_q8(const float *x, const float *w, int8_t *q, float *qd,
                                  float *qs, double *square_sums) {
    const uint64_t group = blockIdx.x;
    const uint32_t lane = threadIdx.x;
    const float weight = w[group * 32 + lane];  // a weight: read before the wait
    rf_grid_dependency_sync();
    rf_prepare_norm_group(x[group * 32 + lane], weight, lane, group, q, qd, qs, square_sums);
}

RF_KERNEL void rf_prepare_norm_f32(const float *x, const float *w, float *y, uint64_t n) {
    rf_grid_dependency_sync();
    for (uint64_t i = rf_global_thread(); i < n; i += rf_grid_threads()) {
        y[i] = x[i] * w[i];
    }
}
