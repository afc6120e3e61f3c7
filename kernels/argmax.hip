// Greedy decoding on the device: the index of the largest logit of each row, so a greedy
// step copies 4 bytes back rather than the vocabulary. As the CPU sampler: NaN counts as
// -inf, ties go to the lowest index, and a row with nothing above -inf gives index 0.
//
// Launch: grid.x = n_rows (one block per row), any block size up to 1024.
#include "block_reduce.h"
#include "compat.h"

struct Best {
    float value;
    uint32_t index;
};

RF_DEVICE Best better(Best a, Best b) {
    return (b.value > a.value || (b.value == a.value && b.index < a.index)) ? b : a;
}

RF_KERNEL void rf_argmax_f32(const float *logits,  // [n_rows, n_vocab]
                             uint32_t n_rows, uint32_t n_vocab,
                             int32_t *out) {  // [n_rows]
    rf_grid_dependency_sync();
    __shared__ Best scratch[1024];  // [blockDim.x]
    const uint32_t r = blockIdx.x;
    if (r >= n_rows) {
        return;  // block-uniform
    }
    const float *row = logits + (uint64_t)r * n_vocab;
    // Index n_vocab stands for "none yet": any real index wins a tie against it.
    Best best = {-INFINITY, n_vocab};
    for (uint32_t i = threadIdx.x; i < n_vocab; i += blockDim.x) {
        const float v = row[i];
        best = better(best, Best{isnan(v) ? -INFINITY : v, i});
    }
    best = rf_block_reduce(best, scratch, [](Best a, Best b) { return better(a, b); });
    if (threadIdx.x == 0) {
        out[r] = best.index < n_vocab ? (int32_t)best.index : 0;
    }
}
