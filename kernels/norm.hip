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

// With QUANTIZE, the normalised row also goes out as Q8 activations (q8_activations.h) for
// the integer matrix products that read it next, saving a pass. Then blockDim.x must be a
// multiple of 32 and width of 32: each pass of the loop gives every warp whole, aligned
// groups of 32 values.
template <bool QUANTIZE>
static __device__ void rms_norm_row(const float *x, const float *w, float *y, int8_t *q,
                                    float *qd, float *qs, uint32_t n_rows, uint32_t width,
                                    float eps) {
    __shared__ double scratch[32];  // a sum per warp
    const uint32_t r = blockIdx.x;
    if (r >= n_rows) {
        return;  // block-uniform, so no thread misses a barrier
    }
    // The thread's first weight is read before waiting on the kernel that writes x: no
    // kernel writes weights, and under overlapped launches (compat.h) its DRAM round trip
    // (the model's weights do not stay in L2 from one step to the next) then overlaps that
    // kernel instead of following the reduction.
    const float w_first = threadIdx.x < width ? w[threadIdx.x] : 0.0f;
    rf_grid_dependency_sync();
    const float *xr = x + (uint64_t)r * width;
    float *yr = y + (uint64_t)r * width;
    double sum_sq = 0.0;
    for (uint32_t i = threadIdx.x; i < width; i += blockDim.x) {
        const double v = xr[i];
        sum_sq += v * v;
    }
    sum_sq = rf_block_sum_f64(sum_sq, scratch);
    const float mean = (float)(sum_sq / (double)width);
    const float scale = 1.0f / sqrtf(mean + eps);
    for (uint32_t i = threadIdx.x; i < width; i += blockDim.x) {
        const float v = xr[i] * scale * (i == threadIdx.x ? w_first : w[i]);
        yr[i] = v;
        if (QUANTIZE) {
            const uint64_t value = (uint64_t)r * width + i;
            rf_quantize_q8_group(v, i % 32, q, qd, qs, value, value / 32);
        }
    }
}

RF_KERNEL void rf_rms_norm_f32(const float *x,  // [n_rows, width]
                               const float *w,  // [width]
                               float *y,        // [n_rows, width]
                               uint32_t n_rows, uint32_t width, float eps) {
    rms_norm_row<false>(x, w, y, nullptr, nullptr, nullptr, n_rows, width, eps);
}

// As rf_rms_norm_f32, and the rows as Q8 activations: q [n_rows, width], qd and qs
// [n_rows, width / 32].
RF_KERNEL void rf_rms_norm_q8_f32(const float *x, const float *w, float *y, int8_t *q,
                                  float *qd, float *qs, uint32_t n_rows, uint32_t width,
                                  float eps) {
    rms_norm_row<true>(x, w, y, q, qd, qs, n_rows, width, eps);
}
