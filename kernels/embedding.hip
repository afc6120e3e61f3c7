// Embedding rows: x[t] = row tokens[t] of the token-embedding matrix, dequantized to f32,
// for every weight format of ggml_blocks.h. Bit-exact with src/tensor's dequantize_row.
//
// Launch: grid.x = n_tokens (one block per token), any block size; the block's threads
// walk the row chunk by chunk.
//
// A token id outside 0..n_vocab gets a row of zeros (the host validates ids first; the
// kernel only guarantees it never reads outside the matrix).
#include "compat.h"
#include "ggml_blocks.h"

template <typename B>
static __device__ void embedding_rows(const uint8_t *table,  // [n_vocab rows of row_bytes]
                                      uint64_t row_bytes, uint32_t n_vocab,
                                      const int32_t *tokens,  // [n_tokens]
                                      uint32_t n_tokens,
                                      float *x,  // [n_tokens, n_embd]
                                      uint32_t n_embd) {
    const uint32_t t = blockIdx.x;
    if (t >= n_tokens) {
        return;
    }
    const int32_t token = tokens[t];
    const bool valid = token >= 0 && (uint32_t)token < n_vocab;
    const uint8_t *row = table + (valid ? (uint64_t)token * row_bytes : 0);
    float *out = x + (uint64_t)t * n_embd;
    const uint64_t n_chunks = n_embd / B::CHUNK;
    for (uint64_t c = threadIdx.x; c < n_chunks; c += blockDim.x) {
        float values[B::CHUNK];
        if (valid) {
            B::dequantize_chunk(row, n_embd, c, values);
        } else {
            for (int k = 0; k < B::CHUNK; ++k) {
                values[k] = 0.0f;
            }
        }
        for (int k = 0; k < B::CHUNK; ++k) {
            out[c * B::CHUNK + k] = values[k];
        }
    }
}

#define RF_EMBEDDING_KERNEL(NAME, TYPE)                                                          \
    RF_KERNEL void rf_embedding_##NAME(const uint8_t *table, uint64_t row_bytes,                 \
                                       uint32_t n_vocab, const int32_t *tokens,                  \
                                       uint32_t n_tokens, float *x, uint32_t n_embd) {           \
        rf_grid_dependency_sync();                                                               \
        embedding_rows<TYPE>(table, row_bytes, n_vocab, tokens, n_tokens, x, n_embd);            \
    }

RF_FOR_EACH_WEIGHT_TYPE(RF_EMBEDDING_KERNEL)
