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
