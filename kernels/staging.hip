// A step's inputs, gathered from the page-locked staging area the host wrote them into
// (src/backend/gpu/safe/staging.rs; mapped into the device) into their device buffers:
// one launch where a copy per input would each cost the copy engine's latency.
//
// The area opens with the descriptions of its pieces; piece p's bytes start `offset`
// bytes into the area, and both they and their destination start 16-byte aligned.
// Launch: grid (any x, y = the number of pieces), blocks of at least 16 threads.
#include "compat.h"

struct StagedPiece {
    uint64_t destination;
    uint32_t offset;
    uint32_t bytes;
};

RF_KERNEL void rf_gather_staged(const uint8_t *area) {
    // The area is host memory no kernel writes: its reads may begin before the wait, so
    // the crossing to the host overlaps the kernel before this one.
    const StagedPiece piece = reinterpret_cast<const StagedPiece *>(area)[blockIdx.y];
    const uint4 *from = reinterpret_cast<const uint4 *>(area + piece.offset);
    uint4 *to = reinterpret_cast<uint4 *>(piece.destination);
    const uint64_t vectors = piece.bytes / 16;
    const uint64_t first = rf_global_thread();
    uint4 held = {};
    if (first < vectors) {
        held = from[first];
    }
    const uint32_t tail = piece.bytes % 16;
    uint8_t tail_byte = 0;
    if (blockIdx.x == 0 && threadIdx.x < tail) {
        tail_byte = area[piece.offset + vectors * 16 + threadIdx.x];
    }
    // The wait alone: kernels after this one read the step's inputs before their own wait
    // (decode attention's lookups), so none may begin before every input is written.
    rf_grid_dependency_wait();
    if (first < vectors) {
        to[first] = held;
    }
    for (uint64_t i = first + rf_grid_threads(); i < vectors; i += rf_grid_threads()) {
        to[i] = from[i];
    }
    if (blockIdx.x == 0 && threadIdx.x < tail) {
        reinterpret_cast<uint8_t *>(piece.destination)[vectors * 16 + threadIdx.x] = tail_byte;
    }
}
