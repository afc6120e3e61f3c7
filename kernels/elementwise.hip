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
