// Element-wise steps of a forward pass, in f32. Launch: any 1-D grid; grid-stride loops
// with 64-bit indices cover every element.
#include "compat.h"

// gate = silu(gate) * up, the SwiGLU activation, computed as src/backend/cpu/ops.rs swiglu
// does: (g / (1 + exp(-g))) * u.
RF_KERNEL void rf_swiglu_f32(float *gate, const float *up, uint64_t n) {
    rf_grid_dependency_sync();
    for (uint64_t i = rf_global_thread(); i < n; i += rf_grid_threads()) {
        const float g = gate[i];
        gate[i] = g / (1.0f + expf(-g)) * up[i];
    }
}

// y += x (the residual connection).
RF_KERNEL void rf_add_assign_f32(float *y, const float *x, uint64_t n) {
    rf_grid_dependency_sync();
    for (uint64_t i = rf_global_thread(); i < n; i += rf_grid_threads()) {
        y[i] += x[i];
    }
}

// gate = gelu(gate) * up, the GELU-gated feed-forward, with GELU's tanh approximation as
// src/backend/cpu/ops.rs geglu computes it: 0.5 g (1 + tanh(sqrt(2 / pi) g (1 + 0.044715
// g^2))) u.
RF_KERNEL void rf_geglu_f32(float *gate, const float *up, uint64_t n) {
    rf_grid_dependency_sync();
    for (uint64_t i = rf_global_thread(); i < n; i += rf_grid_threads()) {
        const float g = gate[i];
        const float inner = 0.7978846f * g * (1.0f + 0.044715f * g * g);
        gate[i] = 0.5f * g * (1.0f + tanhf(inner)) * up[i];
    }
}

// x *= factor.
RF_KERNEL void rf_scale_f32(float *x, float factor, uint64_t n) {
    rf_grid_dependency_sync();
    for (uint64_t i = rf_global_thread(); i < n; i += rf_grid_threads()) {
        x[i] *= factor;
    }
}

// Each row of `width` values of x += bias ([width]).
RF_KERNEL void rf_add_bias_f32(float *x, const float *bias, uint64_t n, uint32_t width) {
    rf_grid_dependency_sync();
    for (uint64_t i = rf_global_thread(); i < n; i += rf_grid_threads()) {
        x[i] += bias[i % width];
    }
}
