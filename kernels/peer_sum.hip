// The sum of a tensor split's partial results over its GPUs, in one kernel a GPU: each
// GPU's kernel posts its partial in its own exchange buffer, tells every other GPU so
// through a flag in that GPU's memory, waits for theirs, and adds up every GPU's partial
// read directly from its memory (NVLink, xGMI or PCIe peer to peer). Every GPU adds the
// partials in rank order, so all of them get the same bits. No host call, no event: the
// kernels meet through memory, so each GPU's decode step stays one captured graph.
//
// Launch: RF_PEER_SUM_BLOCKS blocks on every GPU for every sum (each block counts the sums
// it took part in, and all of them must agree), of any size.
#include "compat.h"

// The most GPUs a sum spans, and the blocks it runs, as src/backend/gpu/ops/peer_sum.rs
// sizes the flags.
#define RF_PEER_SUM_RANKS 8
#define RF_PEER_SUM_BLOCKS 64

// Whether `seen` is `epoch` or later, on counters that wrap around.
RF_DEVICE bool rf_reached(uint32_t seen, uint32_t epoch) { return (int32_t)(seen - epoch) >= 0; }

// Waits until `*flag` reaches `epoch`, or the host raised `*abort` (a step that failed
// on another GPU, whose kernel will never come): a word of host memory, read only once a
// wait is long (every 1024th look at the flag, about 0.1 ms): each read crosses to the
// host, and read every 32nd look they cost the 8B split's decode a third of its speed.
RF_DEVICE void rf_wait_for_flag(const volatile uint32_t *flag, uint32_t epoch,
                                const volatile uint32_t *abort) {
    for (uint32_t look = 1; !rf_reached(*flag, epoch); ++look) {
        if (look % 1024 == 0 && *abort != 0) {
            return;
        }
#if defined(RF_CUDA)
        __nanosleep(64);
#else
        __builtin_amdgcn_s_sleep(1);
#endif
    }
}

// A load of a value another GPU may have written since this SM last read its line: past
// L1, which is not kept coherent with other GPUs' writes.
RF_DEVICE float4 rf_load_fresh4(const float *p) {
#if defined(RF_CUDA)
    return __ldcg(reinterpret_cast<const float4 *>(p));
#else
    const volatile float *v = p;
    return make_float4(v[0], v[1], v[2], v[3]);
#endif
}

RF_DEVICE float rf_load_fresh(const float *p) {
#if defined(RF_CUDA)
    return __ldcg(p);
#else
    return *static_cast<const volatile float *>(p);
#endif
}

// out[i] = sum over ranks r of partial_r[i] (accumulate == 0), or out[i] += that sum, for
// i < n, on the GPU of rank `rank` of `n_ranks`.
// peers: [2 * n_ranks] addresses: each rank's exchange (in its memory: 2 slots of
// n_ranks parts of `capacity` floats), then each rank's flags (RF_PEER_SUM_BLOCKS *
// RF_PEER_SUM_RANKS values). Each rank writes its part into every rank's exchange (stores
// to another GPU go out without waiting for it), and then reads all parts from its own.
// epochs: [RF_PEER_SUM_BLOCKS] this rank's count of sums so far, per block; every rank
// runs the same sums with every block, so the counts agree and name each sum. Sum k uses
// slot k % 2: a rank writes slot k % 2 again only at sum k + 2, after every rank has
// posted sum k + 1, which each does only once its sum k (all reads of the slot) is done.
// abort: a word of host memory the host raises to end the waits of a failed step.
// flags_accumulate_vector: bit 0 asks for out += sum; bit 1 moves values four at a time,
// which the launcher sets where n, capacity and both buffers allow it.
RF_KERNEL void rf_peer_sum_f32(float *out, const float *partial, const uint64_t *peers,
                               uint32_t *epochs, const uint32_t *abort, uint64_t n,
                               uint64_t capacity, uint32_t n_ranks, uint32_t rank,
                               uint32_t flags_accumulate_vector) {
    const bool accumulate = flags_accumulate_vector & 1;
    const uint64_t width = (flags_accumulate_vector & 2) ? 4 : 1;
    __shared__ uint32_t epoch_shared;
    rf_grid_dependency_wait();
    const uint32_t block = blockIdx.x;
    if (threadIdx.x == 0) {
        epoch_shared = epochs[block] + 1;
        epochs[block] = epoch_shared;
    }
    __syncthreads();
    const uint32_t epoch = epoch_shared;
    const uint64_t slot = (epoch & 1) * n_ranks * capacity;
    const uint64_t first = rf_global_thread() * width;
    const uint64_t stride = rf_grid_threads() * width;

    for (uint64_t i = first; i < n; i += stride) {
        for (uint32_t r = 0; r < n_ranks; ++r) {
            float *part = reinterpret_cast<float *>(peers[r]) + slot + rank * capacity;
            if (width == 4) {
                *reinterpret_cast<float4 *>(part + i) =
                    *reinterpret_cast<const float4 *>(partial + i);
            } else {
                part[i] = partial[i];
            }
        }
    }
    // Each thread's writes reach every GPU before the flag that announces them.
    __threadfence_system();
    __syncthreads();
    if (threadIdx.x == 0) {
        for (uint32_t r = 0; r < n_ranks; ++r) {
            volatile uint32_t *flags = reinterpret_cast<uint32_t *>(peers[n_ranks + r]);
            if (r != rank) {
                flags[block * RF_PEER_SUM_RANKS + rank] = epoch;
            }
        }
        const volatile uint32_t *own = reinterpret_cast<uint32_t *>(peers[n_ranks + rank]);
        for (uint32_t r = 0; r < n_ranks; ++r) {
            if (r != rank) {
                rf_wait_for_flag(own + block * RF_PEER_SUM_RANKS + r, epoch, abort);
            }
        }
        __threadfence_system();
    }
    __syncthreads();

    const float *parts = reinterpret_cast<const float *>(peers[rank]) + slot;
    for (uint64_t i = first; i < n; i += stride) {
        if (width == 4) {
            float4 sum = make_float4(0.0f, 0.0f, 0.0f, 0.0f);
            for (uint32_t r = 0; r < n_ranks; ++r) {
                const float4 v = rf_load_fresh4(parts + r * capacity + i);
                sum.x += v.x;
                sum.y += v.y;
                sum.z += v.z;
                sum.w += v.w;
            }
            float4 *o = reinterpret_cast<float4 *>(out + i);
            if (accumulate) {
                const float4 x = *o;
                sum = make_float4(x.x + sum.x, x.y + sum.y, x.z + sum.z, x.w + sum.w);
            }
            *o = sum;
        } else {
            float sum = 0.0f;
            for (uint32_t r = 0; r < n_ranks; ++r) {
                sum += rf_load_fresh(parts + r * capacity + i);
            }
            out[i] = accumulate ? out[i] + sum : sum;
        }
    }
}

// Zeroes a rank's flags and sum counts: after a failed step left the ranks' counts apart,
// every rank clears its own once all of them have stopped.
RF_KERNEL void rf_peer_sum_clear(uint32_t *flags, uint32_t *epochs) {
    rf_grid_dependency_sync();
    for (uint32_t i = threadIdx.x; i < RF_PEER_SUM_BLOCKS * RF_PEER_SUM_RANKS; i += blockDim.x) {
        flags[i] = 0;
    }
    for (uint32_t i = threadIdx.x; i < RF_PEER_SUM_BLOCKS; i += blockDim.x) {
        epochs[i] = 0;
    }
}
