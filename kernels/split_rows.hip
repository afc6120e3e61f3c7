// Rewrites Q4_0, Q4_1, Q8_0, Q4_K and Q6_K matrices in place into split rows (ggml_blocks.h,
// "split rows"): each row's quants first, then their scales. Run once per matrix at upload.
//
// Launch: one block per row (grid-stride over rows), any block size; row_bytes, the row
// stride, at most RF_SPLIT_MAX_ROW_BYTES and a multiple of 16: a row of whole 256 values,
// then under 16 bytes of padding where its blocks are not a multiple of 16 bytes (Q6_K), so
// it holds row_bytes / BLOCK_BYTES blocks (checked by the host); the matrix 16-byte aligned.
// The padding is staged and written back as it was.
#include "compat.h"
#include "ggml_blocks.h"

#define RF_SPLIT_MAX_ROW_BYTES 32768

// The row is staged in shared memory, then written back in its new order: a row is
// rearranged only within itself, so no second buffer is needed.
template <typename S>
static __device__ void split_rows(uint8_t *w, uint64_t row_bytes, uint64_t n_rows) {
    __shared__ uint4 staged[RF_SPLIT_MAX_ROW_BYTES / 16];
    const uint8_t *gguf = reinterpret_cast<const uint8_t *>(staged);
    const uint32_t n_blocks = (uint32_t)(row_bytes / S::BLOCK_BYTES);
    for (uint64_t r = blockIdx.x; r < n_rows; r += gridDim.x) {
        uint8_t *row = w + r * row_bytes;
        for (uint32_t v = threadIdx.x; v < row_bytes / 16; v += blockDim.x) {
            staged[v] = reinterpret_cast<const uint4 *>(row)[v];
        }
        __syncthreads();
        for (uint32_t b = threadIdx.x; b < n_blocks; b += blockDim.x) {
            S::scatter(gguf + (uint64_t)b * S::BLOCK_BYTES, row, n_blocks, b);
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
RF_SPLIT_KERNEL(q4_k, SplitQ4_K)
RF_SPLIT_KERNEL(q6_k, SplitQ6_K)
