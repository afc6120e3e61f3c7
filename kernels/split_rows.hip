// Rewrites Q4_0, Q4_1 and Q8_0 matrices in place into split rows (ggml_blocks.h, SplitRow):
// each row's quant arrays in block order, then their heads. Run once per matrix at upload.
//
// Launch: one block per row (grid-stride over rows), any block size; row_bytes at most
// RF_SPLIT_MAX_ROW_BYTES and a multiple of 16 (rows of whole 256 values), the matrix
// 16-byte aligned.
#include "compat.h"
#include "ggml_blocks.h"

#define RF_SPLIT_MAX_ROW_BYTES 32768

// The row is staged in shared memory, then written back in its new order: a row is
// rearranged only within itself, so no second buffer is needed.
template <typename S>
static __device__ void split_rows(uint8_t *w, uint64_t row_bytes, uint64_t n_rows) {
    __shared__ uint4 staged[RF_SPLIT_MAX_ROW_BYTES / 16];
    const uint8_t *gguf = reinterpret_cast<const uint8_t *>(staged);
    const uint32_t n_groups = (uint32_t)(row_bytes / S::BLOCK_BYTES);
    for (uint64_t r = blockIdx.x; r < n_rows; r += gridDim.x) {
        uint8_t *row = w + r * row_bytes;
        for (uint32_t v = threadIdx.x; v < row_bytes / 16; v += blockDim.x) {
            staged[v] = reinterpret_cast<const uint4 *>(row)[v];
        }
        __syncthreads();
        for (uint32_t g = threadIdx.x; g < n_groups; g += blockDim.x) {
            const uint8_t *block = gguf + (uint64_t)g * S::BLOCK_BYTES;
            uint8_t *head = S::head(row, n_groups, g);
            uint8_t *quants = S::quants(row, g);
            for (int k = 0; k < S::HEAD_BYTES; ++k) {
                head[k] = block[k];
            }
            for (int k = 0; k < S::QUANT_BYTES; ++k) {
                quants[k] = block[S::HEAD_BYTES + k];
            }
        }
        __syncthreads();
    }
}

#define RF_SPLIT_KERNEL(NAME, SPLIT)                                                             \
    RF_KERNEL void rf_split_rows_##NAME(uint8_t *w, uint64_t row_bytes, uint64_t n_rows) {       \
        rf_grid_dependency_sync();                                                               \
        split_rows<SPLIT>(w, row_bytes, n_rows);                                                 \
    }

RF_SPLIT_KERNEL(q4_0, SplitQ4_0)
RF_SPLIT_KERNEL(q4_1, SplitQ4_1)
RF_SPLIT_KERNEL(q8_0, SplitQ8_0)
