// The paged KV cache's bookkeeping as the attention kernels read it
// (src/kv_cache/sequence_table.rs): a slot's position, EMPTY_SLOT for a hole or an
// unwritten slot, and which keys a query sees.
#pragma once
#include "compat.h"

#define EMPTY_SLOT 0x7fffffff

// Whether a query at position p sees the key at position kp: a live key at or before it,
// and with a sliding window (window > 0) one of the last `window` positions.
RF_DEVICE bool sees(int32_t kp, int32_t p, uint32_t window) {
    return kp != EMPTY_SLOT && kp <= p && (window == 0 || (int64_t)p - kp < (int64_t)window);
}

// Where logical slot i of sequence seq lives: its cache slot and the position it holds,
// or EMPTY_SLOT for a slot past n_keys or outside the cache's n_slots (the kernels never
// read there).
struct KeySlot {
    int32_t pos;
    uint32_t slot;
};

RF_DEVICE KeySlot find_key(const uint32_t *block_tables, const int32_t *slot_positions,
                           uint32_t seq, uint32_t max_blocks, uint32_t block_size,
                           uint64_t n_slots, uint64_t i, uint64_t n_keys) {
    KeySlot key = {EMPTY_SLOT, 0};
    if (i < n_keys) {
        const uint64_t block = block_tables[(uint64_t)seq * max_blocks + i / block_size];
        const uint64_t slot = block * block_size + i % block_size;
        if (slot < n_slots) {
            key.pos = slot_positions[(uint64_t)seq * max_blocks * block_size + i];
            key.slot = (uint32_t)slot;
        }
    }
    return key;
}

// The logical slots sequence seq uses (none for a sequence index past n_seq).
RF_DEVICE uint64_t sequence_keys(const uint32_t *n_logical, uint32_t seq, uint32_t n_seq,
                                 uint32_t max_blocks, uint32_t block_size) {
    return seq < n_seq ? min((uint64_t)n_logical[seq], (uint64_t)max_blocks * block_size) : 0;
}

// The run of a batch's tokens from `begin` (before `end`) that belong to begin's sequence:
// where it ends and its latest position. Blocks that hold tokens of several sequences
// process them one run after another.
struct TokenRun {
    uint32_t seq, end;
    int32_t max_pos;
};

RF_DEVICE TokenRun token_run(const uint32_t *seq_index, const int32_t *pos, uint32_t begin,
                             uint32_t end) {
    TokenRun run = {seq_index[begin], begin + 1, pos[begin]};
    while (run.end < end && seq_index[run.end] == run.seq) {
        run.max_pos = max(run.max_pos, pos[run.end]);
        ++run.end;
    }
    return run;
}
