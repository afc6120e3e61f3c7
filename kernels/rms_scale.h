// The RMS norm's scale of a vector of n values from its sum of squares, as the CPU's
// rms_norm (src/backend/cpu/ops.rs) works it out: the sum in f64, the mean rounded to f32,
// then 1 / sqrt(mean + eps) in f32. Shared by the norm kernel and the products that
// finish a norm a residual product prepared, so all round it alike.
#pragma once
#include "compat.h"

RF_DEVICE float rf_rms_scale_of(double sum_sq, double n, float eps) {
    const float mean = (float)(sum_sq / n);
    return 1.0f / sqrtf(mean + eps);
}
