// What a decode product writes for each output row (`mode`, ProductOutput in
// src/backend/gpu/ops/fused_product.rs): shared by the integer and the F16 products, so a
// residual add or a SwiGLU rides in the product's launch instead of a launch of its own.
#pragma once
#include "compat.h"

#define RF_OUT_STORE 0   // y = W x (and y_b = W_b x with a second matrix)
#define RF_OUT_ADD 1     // y += W x: the residual connection
#define RF_OUT_SWIGLU 2  // y = silu(W x) * (W_b x), computed as the CPU's swiglu
#define RF_OUT_ADD_NORM 3  // y += W x, y_b = the new y times a norm's weights (matvec.hip)
// y = W x and y_b = W_b x with each row of W_b a row of its own after W's, not paired with
// W's row of the same index (matvec.hip's one-token F16 kernel, one warp a row)
#define RF_OUT_STORE_OWN_ROWS 4

// Writes output `at` from the row's product a (and b, the second matrix's, when `two`).
RF_DEVICE void rf_write_output(float *y, float *y_b, uint64_t at, float a, float b, bool two,
                               uint32_t mode) {
    if (mode == RF_OUT_ADD) {
        y[at] += a;
    } else if (mode == RF_OUT_SWIGLU) {
        y[at] = a / (1.0f + expf(-a)) * b;
    } else {
        y[at] = a;
        if (two) {
            y_b[at] = b;
        }
    }
}
