// The f16 operands of the prefill matrix product (src/backend/gpu/ops/gemm.rs): weight rows
// dequantized, and f32 activations converted, for the vendor BLAS's tensor-core GEMM.
//
// Dequantization is bit-exact with the scalar reference (ggml_blocks.h computes each value
// with the reference's f32 operations), and each value is then rounded once to the nearest
// f16, ties to even (as half::f16::from_f32 on the host).
//
// Launch: 1-D grid-stride; any grid and block size.
#include "compat.h"
#include "ggml_blocks.h"

// The bits of v rounded to the nearest f16.
RF_DEVICE uint32_t rf_f16_bits(float v) { return __half_as_ushort(__float2half_rn(v)); }

// Rows first_row .. first_row + n_rows of W (n_cols values each, row r at byte r *
// row_bytes of w) as f16, row-major: out[(r - first_row) * n_cols + c]. One thread per
// chunk of a row, neighbouring threads on neighbouring chunks.
template <typename B>
static __device__ void dequantize_rows_f16(const uint8_t *w, uint64_t row_bytes,
                                           uint64_t first_row, uint64_t n_rows, uint32_t n_cols,
                                           __half *out) {
    const uint64_t chunks_per_row = n_cols / B::CHUNK;
    const uint64_t n_chunks = n_rows * chunks_per_row;
    for (uint64_t i = rf_global_thread(); i < n_chunks; i += rf_grid_threads()) {
        const uint64_t r = i / chunks_per_row;
        const uint64_t c = i % chunks_per_row;
        float values[B::CHUNK];
        B::dequantize_chunk(w + (first_row + r) * row_bytes, n_cols, c, values);
        __half *o = out + r * n_cols + c * B::CHUNK;
        if constexpr (B::CHUNK == 8) {
            // One 16-byte store: n_cols is a whole number of blocks (a multiple of 32
            // values), so every chunk starts 16-byte aligned in the allocation.
            uint32_t pairs[4];
#pragma unroll
            for (int k = 0; k < 4; ++k) {
                pairs[k] = rf_f16_bits(values[2 * k]) | (rf_f16_bits(values[2 * k + 1]) << 16);
            }
            *reinterpret_cast<uint4 *>(o) = make_uint4(pairs[0], pairs[1], pairs[2], pairs[3]);
        } else {
#pragma unroll
            for (int k = 0; k < B::CHUNK; ++k) {
                o[k] = __float2half_rn(values[k]);
            }
        }
    }
}

#define RF_DEQUANTIZE_F16_KERNEL(NAME, TYPE)                                                     \
    RF_KERNEL void rf_dequantize_f16_##NAME(const uint8_t *w, uint64_t row_bytes,                \
                                            uint64_t first_row, uint64_t n_rows,                 \
                                            uint32_t n_cols, __half *out) {                      \
        rf_grid_dependency_sync();                                                               \
        dequantize_rows_f16<TYPE>(w, row_bytes, first_row, n_rows, n_cols, out);                 \
    }

RF_FOR_EACH_WEIGHT_TYPE(RF_DEQUANTIZE_F16_KERNEL)

// out[i] = x[i] rounded to the nearest f16 (ties to even; beyond 65504 it is infinite).
RF_KERNEL void rf_f32_to_f16(const float *x, __half *out, uint64_t n) {
    rf_grid_dependency_sync();
    for (uint64_t i = rf_global_thread(); i < n; i += rf_grid_threads()) {
        out[i] = __float2half_rn(x[i]);
    }
}
