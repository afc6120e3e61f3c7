// RMS norm of each row: y = x / sqrt(mean(x^2) + eps) * w, as src/backend/cpu/ops.rs
// rms_norm: the sum of squares in f64, the mean rounded to f32, then f32 for the rest, so
// the result matches the CPU's to the last bit whenever both sums round to the same mean.
//
// Launch: grid.x = n_rows (one block per row), any block size up to 1024. x and y may be
// the same buffer (each element is read before its own write, and only by its writer).
#include "block_reduce.h"
#include "compat.h"

RF_KERNEL void rf_rms_norm_f32(const float *x,  // [n_rows, width]
                               const float *w,  // [width]
                               float *y,        // [n_rows, width]
                               uint32_t n_rows, uint32_t width, float eps) {
    __shared__ double scratch[1024];  // [blockDim.x]
    const uint32_t r = blockIdx.x;
    if (r >= n_rows) {
        return;  // block-uniform, so no thread misses a barrier
    }
    const float *xr = x + (uint64_t)r * width;
    float *yr = y + (uint64_t)r * width;
    double sum_sq = 0.0;
    for (uint32_t i = threadIdx.x; i < width; i += blockDim.x) {
        const double v = xr[i];
        sum_sq += v * v;
    }
    sum_sq = rf_block_reduce(sum_sq, scratch, [](double a, double b) { return a + b; });
    const float mean = (float)(sum_sq / (double)width);
    const float scale = 1.0f / sqrtf(mean + eps);
    for (uint32_t i = threadIdx.x; i < width; i += blockDim.x) {
        yr[i] = xr[i] * scale * w[i];
    }
}
