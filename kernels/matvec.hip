// Quantized matrix-vector (and few-token matrix) products: y[t, r] = W[r] . x[t] for every
// weight format of ggml_blocks.h, with f32 activations and f32 accumulation.
//
// W is the GGUF tensor's bytes: n_rows rows of n_cols values, row r at byte r * row_bytes.
// x is [n_tokens, n_cols] and y [n_tokens, n_rows], both f32 row-major.
//
// Launch: one warp per output row. blockDim.x must be a multiple of the warp size (the
// shuffles need whole warps); grid.x = ceil(n_rows / (blockDim.x / warpSize)). Each lane
// dequantizes chunks lane, lane + warp, ... of its row (neighbouring lanes read neighbouring
// bytes) and multiplies each chunk with up to TOKEN_TILE tokens at once, so a weight is
// read and unpacked once per tile of tokens rather than once per token.
#include "compat.h"
#include "ggml_blocks.h"
#include "product_output.h"
#include "rms_scale.h"

#define TOKEN_TILE 8

template <typename B>
static __device__ void matvec_rows(const uint8_t *w, uint64_t row_bytes, const float *x, float *y,
                                   uint32_t n_rows, uint32_t n_cols, uint32_t n_tokens) {
    const int warp = rf_warp_size();
    const int lane = threadIdx.x % warp;
    const uint64_t row = (uint64_t)blockIdx.x * (blockDim.x / warp) + threadIdx.x / warp;
    // Warp-uniform: a warp leaves whole, so the shuffles below see every lane.
    if (row >= n_rows) {
        return;
    }
    const uint8_t *w_row = w + row * row_bytes;
    const uint64_t n_chunks = n_cols / B::CHUNK;
    for (uint32_t t0 = 0; t0 < n_tokens; t0 += TOKEN_TILE) {
        const uint32_t tile = min((uint32_t)TOKEN_TILE, n_tokens - t0);
        float acc[TOKEN_TILE];
#pragma unroll
        for (int t = 0; t < TOKEN_TILE; ++t) {
            acc[t] = 0.0f;
        }
        for (uint64_t c = lane; c < n_chunks; c += warp) {
            float values[B::CHUNK];
            B::dequantize_chunk(w_row, n_cols, c, values);
            const float *xc = x + (uint64_t)t0 * n_cols + c * B::CHUNK;
#pragma unroll
            for (int t = 0; t < TOKEN_TILE; ++t) {
                if (t < tile) {
#pragma unroll
                    for (int k = 0; k < B::CHUNK; ++k) {
                        acc[t] = fmaf(values[k], xc[(uint64_t)t * n_cols + k], acc[t]);
                    }
                }
            }
        }
#pragma unroll
        for (int t = 0; t < TOKEN_TILE; ++t) {
            const float sum = rf_warp_sum(acc[t]);
            if (lane == 0 && t < tile) {
                y[(uint64_t)(t0 + t) * n_rows + row] = sum;
            }
        }
    }
}

#define RF_MATVEC_KERNEL(NAME, TYPE)                                                             \
    RF_KERNEL void rf_matvec_##NAME(const uint8_t *w, uint64_t row_bytes, const float *x,        \
                                    float *y, uint32_t n_rows, uint32_t n_cols,                  \
                                    uint32_t n_tokens) {                                         \
        rf_grid_dependency_sync();                                                               \
        matvec_rows<TYPE>(w, row_bytes, x, y, n_rows, n_cols, n_tokens);                         \
    }

RF_FOR_EACH_WEIGHT_TYPE(RF_MATVEC_KERNEL)

// Eight f16 weights (one aligned 16-byte vector) times eight f32 activations (16-byte
// aligned), accumulated in order into acc.
RF_DEVICE float rf_f16x8_fma(uint4 packed, const float *x, float acc) {
    const __half2 *halves = (const __half2 *)&packed;
    const float4 a = ((const float4 *)x)[0], b = ((const float4 *)x)[1];
    const float xs[8] = {a.x, a.y, a.z, a.w, b.x, b.y, b.z, b.w};
#pragma unroll
    for (int k = 0; k < 4; ++k) {
        const float2 f = __half22float2(halves[k]);
        acc = fmaf(f.x, xs[2 * k], acc);
        acc = fmaf(f.y, xs[2 * k + 1], acc);
    }
    return acc;
}

// The block size the F16 kernels are launched with (THREADS in src/backend/gpu/ops/matvec.rs)
// and the blocks an SM should hold of the one-token kernel: 4 caps it at 64 registers,
// room for the pieces it loads early (5, at 48, spilled them).
#define RF_MATVEC_THREADS 256
#define RF_MATVEC1_BLOCKS_PER_SM 4

// The 16-byte pieces a lane of the one-token kernel loads before waiting on the previous
// kernel: all of them from the row of a lone matrix, three from each row of a pair. A
// SmolLM2-sized row (72 pieces, at most three a lane) is then in registers whole by the
// time its input is ready, a 1B-class row of one matrix (256, eight a lane) all but one
// piece. Eight spill at the 64 registers RF_MATVEC1_BLOCKS_PER_SM leaves (H100, tg128
// against seven: 1B F16 -2.5%, SmolLM2 F16 -3.5%).
#define RF_F16_EARLY_PIECES 7

// Adds the sum of the squares of eight f32 values (16-byte aligned) into sum: theirs in f32
// (eight terms), the running sum in f64.
RF_DEVICE double rf_squares8(const float *v, double sum) {
    const float4 a = ((const float4 *)v)[0], b = ((const float4 *)v)[1];
    const float vs[8] = {a.x, a.y, a.z, a.w, b.x, b.y, b.z, b.w};
    float squares = 0.0f;
#pragma unroll
    for (int k = 0; k < 8; ++k) {
        squares = fmaf(vs[k], vs[k], squares);
    }
    return sum + (double)squares;
}

// Adds piece c of a row (a of the first matrix, b of the second where `two`) times x into
// the row's sums, and with NORMED the squares of the stream's values beside x's.
template <bool NORMED>
RF_DEVICE void matvec1_f16_piece(uint4 a, uint4 b, bool two, const float *x, const float *stream,
                                 uint32_t c, float &acc, float &acc_b, double &sq) {
    const float *xs = x + 8 * (uint64_t)c;
    acc = rf_f16x8_fma(a, xs, acc);
    if (two) {
        acc_b = rf_f16x8_fma(b, xs, acc_b);
    }
    if (NORMED) {
        sq = rf_squares8(stream + 8 * (uint64_t)c, sq);
    }
}

// rf_matvec_f16x8 for one token (decode): one accumulator, the lane's first
// RF_F16_EARLY_PIECES pieces loaded before waiting on the previous kernel (as the integer
// products load their first groups, matvec_q8.hip), then a walk along the row unrolled four
// deep. With overlapped launches the blocks that become resident while the previous kernel
// runs hold those weights by the time their input is ready (SmolLM2 F16, H200: tg128
// +12% over one piece early).
//
// Like the integer products it fuses what follows the product (product_output.h): with
// w_b, a second matrix of the same shape over the same input (y_b = W_b x, or SwiGLU of
// the two), `mode` an add into y (the residual) or a SwiGLU, and n_lead rows of w_lead
// (same width) before the others, written to y_lead: decode's Q beside the K+V pair.
//
// The RMS norm between a residual product and the products that read the stream needs no
// launch of its own. The residual product (mode RF_OUT_ADD_NORM) writes y += W x and,
// into y_b, the new y times the norm's weights norm_w. Its readers (the _normed instances,
// NORMED) get that as x and the stream y itself as `stream`: each lane adds the squares of
// the stream's values where it reads x's, and the row's products are scaled by the norm's
// 1 / sqrt(mean(stream^2) + eps), the same for every value of the token.
//
// With let_next_launch_first (a large product: EARLY_LAUNCH_BYTES in
// src/backend/gpu/ops/matvec_q8.rs) it lets the next kernel launch before it waits, as the
// integer products do: the next one's blocks take their places, and load their first
// weights, while this one streams.
//
// A row may be shared by `parts` warps (rf_matvec1_f16x8_parts; the launcher picks it by
// the row's length alone, so a product's bits do not depend on its row count): part p of a
// row takes its 16-byte pieces p * warp + lane, then every parts * warp on, and the row's
// first warp adds the parts' sums in order. A few long rows (the 1B class's down
// product, 2,048 rows of 8,192) then have as many loads in flight as many short ones.
template <bool NORMED>
RF_DEVICE void matvec1_f16_sums(const uint8_t *w, const uint8_t *w_b, uint64_t row_bytes,
                                const float *x, const float *stream, uint64_t row,
                                uint32_t n_cols, uint32_t part, uint32_t parts, float &a,
                                float &b, double &squares, bool let_next_launch_first) {
    const int warp = rf_warp_size();
    const uint32_t lane = threadIdx.x % warp;
    const bool two = w_b != nullptr;
    const uint8_t *row_a = w + row * row_bytes;
    const uint8_t *row_b = two ? w_b + row * row_bytes : nullptr;
    const uint32_t n_chunks = n_cols / 8;
    const uint32_t first = part * warp + lane, stride = parts * warp;
    // A pair's pieces interleave: piece k of row_a at early[2k], of row_b at early[2k + 1].
    const uint32_t n_early = two ? RF_F16_EARLY_PIECES / 2 : RF_F16_EARLY_PIECES;
    uint4 early[RF_F16_EARLY_PIECES] = {};
    if (two) {
#pragma unroll
        for (int k = 0; k < RF_F16_EARLY_PIECES / 2; ++k) {
            const uint32_t c = first + k * stride;
            if (c < n_chunks) {
                early[2 * k] = rf_load_weights16(row_a + 16 * (uint64_t)c);
                early[2 * k + 1] = rf_load_weights16(row_b + 16 * (uint64_t)c);
            }
        }
    } else {
#pragma unroll
        for (int k = 0; k < RF_F16_EARLY_PIECES; ++k) {
            const uint32_t c = first + k * stride;
            if (c < n_chunks) {
                early[k] = rf_load_weights16(row_a + 16 * (uint64_t)c);
            }
        }
    }
    rf_grid_dependency_sync(let_next_launch_first);
    float acc = 0.0f, acc_b = 0.0f;
    double sq = 0.0;
    if (two) {
#pragma unroll
        for (int k = 0; k < RF_F16_EARLY_PIECES / 2; ++k) {
            const uint32_t c = first + k * stride;
            if (c < n_chunks) {
                matvec1_f16_piece<NORMED>(early[2 * k], early[2 * k + 1], true, x, stream, c,
                                          acc, acc_b, sq);
            }
        }
    } else {
#pragma unroll
        for (int k = 0; k < RF_F16_EARLY_PIECES; ++k) {
            const uint32_t c = first + k * stride;
            if (c < n_chunks) {
                matvec1_f16_piece<NORMED>(early[k], uint4{}, false, x, stream, c, acc, acc_b,
                                          sq);
            }
        }
    }
#pragma unroll 4
    for (uint32_t c = first + n_early * stride; c < n_chunks; c += stride) {
        const uint64_t at = 16 * (uint64_t)c;
        const uint4 piece_a = rf_load_weights16(row_a + at);
        const uint4 piece_b = two ? rf_load_weights16(row_b + at) : uint4{};
        matvec1_f16_piece<NORMED>(piece_a, piece_b, two, x, stream, c, acc, acc_b, sq);
    }
    a = rf_warp_sum(acc);
    b = two ? rf_warp_sum(acc_b) : 0.0f;
    squares = NORMED ? rf_lanes_sum_f64(sq, warp) : 0.0;
}

// Writes output `at` as rf_write_output does, or with RF_OUT_ADD_NORM the new stream value
// into y and that times its norm weight into y_b.
RF_DEVICE void matvec1_f16_write(float *y, float *y_b, uint64_t at, float a, float b,
                                 bool two, uint32_t mode, float norm_weight) {
    if (mode == RF_OUT_ADD_NORM) {
        const float v = y[at] + a;
        y[at] = v;
        y_b[at] = v * norm_weight;
    } else {
        rf_write_output(y, y_b, at, a, b, two, mode);
    }
}

// One warp a row. Warps past the last row leave at once: leaving counts as reaching the
// dependency sync. With RF_OUT_STORE_OWN_ROWS the launch covers n_lead + 2 * n_rows rows,
// w_b's after w's: each of those rows loads up to RF_F16_EARLY_PIECES pieces before the
// wait where a pair's lane loads RF_F16_EARLY_PIECES / 2 of each of its two rows, and its
// sums are the pair's, bit for bit.
template <bool NORMED>
RF_DEVICE void matvec1_f16_rows(const uint8_t *w, const uint8_t *w_b, uint64_t row_bytes,
                                const float *x, float *y, float *y_b, uint32_t n_rows,
                                uint32_t n_cols, uint32_t mode, const uint8_t *w_lead,
                                float *y_lead, uint32_t n_lead, const float *stream, float eps,
                                const float *norm_w, bool let_next_launch_first) {
    const int warp = rf_warp_size();
    const bool writer = threadIdx.x % warp == 0;
    const uint64_t row = (uint64_t)blockIdx.x * (blockDim.x / warp) + threadIdx.x / warp;
    float a, b;
    double squares;
    // Warp-uniform: a warp takes a row whole or leaves whole, so the shuffles see every lane.
    if (row < n_lead) {
        matvec1_f16_sums<NORMED>(w_lead, nullptr, row_bytes, x, stream, row, n_cols, 0, 1, a,
                                 b, squares, let_next_launch_first);
        if (NORMED) {
            a *= rf_rms_scale_of(squares, n_cols, eps);
        }
        if (writer) {
            rf_write_output(y_lead, nullptr, row, a, 0.0f, false, RF_OUT_STORE);
        }
    } else if (mode == RF_OUT_STORE_OWN_ROWS) {
        const uint64_t r = row - n_lead;
        const bool second = r >= n_rows;
        if (r < 2 * (uint64_t)n_rows) {
            const uint64_t own = second ? r - n_rows : r;
            matvec1_f16_sums<NORMED>(second ? w_b : w, nullptr, row_bytes, x, stream, own,
                                     n_cols, 0, 1, a, b, squares, let_next_launch_first);
            if (NORMED) {
                a *= rf_rms_scale_of(squares, n_cols, eps);
            }
            if (writer) {
                (second ? y_b : y)[own] = a;
            }
        }
    } else if (row - n_lead < n_rows) {
        const uint64_t r = row - n_lead;
        // A norm weight is a weight: read before the wait.
        const float norm_weight = mode == RF_OUT_ADD_NORM && writer ? norm_w[r] : 0.0f;
        matvec1_f16_sums<NORMED>(w, w_b, row_bytes, x, stream, r, n_cols, 0, 1, a, b, squares,
                                 let_next_launch_first);
        if (NORMED) {
            const float scale = rf_rms_scale_of(squares, n_cols, eps);
            a *= scale;
            b *= scale;
        }
        if (writer) {
            matvec1_f16_write(y, y_b, r, a, b, w_b != nullptr, mode, norm_weight);
        }
    }
}

// The same with `parts` (2 or 4, dividing the block's warps) warps a row, a separate
// instance so that the one-warp kernel above keeps its shorter code (SmolLM2 F16 tg128
// -2% with one kernel for both). Every warp reaches the block's barrier.
template <bool NORMED>
RF_DEVICE void matvec1_f16_parts(const uint8_t *w, const uint8_t *w_b, uint64_t row_bytes,
                                 const float *x, float *y, float *y_b, uint32_t n_rows,
                                 uint32_t n_cols, uint32_t mode, const uint8_t *w_lead,
                                 float *y_lead, uint32_t n_lead, uint32_t parts,
                                 const float *stream, float eps, const float *norm_w,
                                 bool let_next_launch_first) {
    __shared__ float part_sums[RF_MATVEC_THREADS / 32][2];  // each warp's sums
    __shared__ double part_squares[RF_MATVEC_THREADS / 32];
    const int warp = rf_warp_size();
    const bool writer = threadIdx.x % warp == 0;
    const uint32_t block_warp = threadIdx.x / warp;
    const uint64_t global_warp = (uint64_t)blockIdx.x * (blockDim.x / warp) + block_warp;
    const uint64_t row = global_warp / parts;
    const uint32_t part = (uint32_t)(global_warp % parts);
    // Warp-uniform: a warp takes a part of a row whole or none.
    const bool lead = row < n_lead, mine = !lead && row - n_lead < n_rows;
    const bool adds_norm = mine && part == 0 && mode == RF_OUT_ADD_NORM && writer;
    const float norm_weight = adds_norm ? norm_w[row - n_lead] : 0.0f;  // before the wait
    float a = 0.0f, b = 0.0f;
    double squares = 0.0;
    if (lead) {
        matvec1_f16_sums<NORMED>(w_lead, nullptr, row_bytes, x, stream, row, n_cols, part,
                                 parts, a, b, squares, let_next_launch_first);
    } else if (mine) {
        matvec1_f16_sums<NORMED>(w, w_b, row_bytes, x, stream, row - n_lead, n_cols, part,
                                 parts, a, b, squares, let_next_launch_first);
    }
    if (writer) {
        part_sums[block_warp][0] = a;
        part_sums[block_warp][1] = b;
        part_squares[block_warp] = squares;
    }
    __syncthreads();
    if (part != 0 || !writer) {
        return;
    }
    for (uint32_t p = 1; p < parts; ++p) {
        a += part_sums[block_warp + p][0];
        b += part_sums[block_warp + p][1];
        squares += part_squares[block_warp + p];
    }
    if (NORMED) {
        const float scale = rf_rms_scale_of(squares, n_cols, eps);
        a *= scale;
        b *= scale;
    }
    if (lead) {
        rf_write_output(y_lead, nullptr, row, a, 0.0f, false, RF_OUT_STORE);
    } else if (mine) {
        matvec1_f16_write(y, y_b, row - n_lead, a, b, w_b != nullptr, mode, norm_weight);
    }
}

// rf_matvec1_f16x8 and rf_matvec1_f16x8_parts multiply x as it is; the _normed instances
// finish the norm of `stream` (with eps) that x was prepared for. Every instance takes
// RF_OUT_ADD_NORM with norm_w.
#define RF_MATVEC1_F16_KERNELS(SUFFIX, NORMED)                                                 \
    RF_KERNEL void RF_LAUNCH_BOUNDS(RF_MATVEC_THREADS, RF_MATVEC1_BLOCKS_PER_SM)               \
        rf_matvec1_f16x8##SUFFIX(const uint8_t *w, const uint8_t *w_b, uint64_t row_bytes,     \
                                 const float *x, float *y, float *y_b, uint32_t n_rows,        \
                                 uint32_t n_cols, uint32_t mode, const uint8_t *w_lead,        \
                                 float *y_lead, uint32_t n_lead, const float *stream,          \
                                 float eps, const float *norm_w,                               \
                                 uint32_t let_next_launch_first) {                             \
        matvec1_f16_rows<NORMED>(w, w_b, row_bytes, x, y, y_b, n_rows, n_cols, mode, w_lead,   \
                                 y_lead, n_lead, stream, eps, norm_w,                          \
                                 let_next_launch_first != 0);                                  \
    }                                                                                          \
    RF_KERNEL void RF_LAUNCH_BOUNDS(RF_MATVEC_THREADS, RF_MATVEC1_BLOCKS_PER_SM)               \
        rf_matvec1_f16x8_parts##SUFFIX(                                                        \
            const uint8_t *w, const uint8_t *w_b, uint64_t row_bytes, const float *x,          \
            float *y, float *y_b, uint32_t n_rows, uint32_t n_cols, uint32_t mode,             \
            const uint8_t *w_lead, float *y_lead, uint32_t n_lead, uint32_t parts,             \
            const float *stream, float eps, const float *norm_w,                               \
            uint32_t let_next_launch_first) {                                                  \
        matvec1_f16_parts<NORMED>(w, w_b, row_bytes, x, y, y_b, n_rows, n_cols, mode, w_lead,  \
                                  y_lead, n_lead, parts, stream, eps, norm_w,                  \
                                  let_next_launch_first != 0);                                 \
    }

RF_MATVEC1_F16_KERNELS(, false)
RF_MATVEC1_F16_KERNELS(_normed, true)

// F16 rows whose length is a multiple of 8, so each starts 16-byte aligned: a lane reads 8
// values (16 bytes) at once and the activations as two float4, instead of one value at a
// time. Same launch, products and summation order per lane as rf_matvec_f16 otherwise.
RF_KERNEL void rf_matvec_f16x8(const uint8_t *w, uint64_t row_bytes, const float *x, float *y,
                               uint32_t n_rows, uint32_t n_cols, uint32_t n_tokens) {
    rf_grid_dependency_sync();
    const int warp = rf_warp_size();
    const int lane = threadIdx.x % warp;
    const uint64_t row = (uint64_t)blockIdx.x * (blockDim.x / warp) + threadIdx.x / warp;
    // Warp-uniform: a warp leaves whole, so the shuffles below see every lane.
    if (row >= n_rows) {
        return;
    }
    const uint4 *w_row = (const uint4 *)(w + row * row_bytes);
    const uint32_t n_chunks = n_cols / 8;
    for (uint32_t t0 = 0; t0 < n_tokens; t0 += TOKEN_TILE) {
        const uint32_t tile = min((uint32_t)TOKEN_TILE, n_tokens - t0);
        float acc[TOKEN_TILE];
#pragma unroll
        for (int t = 0; t < TOKEN_TILE; ++t) {
            acc[t] = 0.0f;
        }
#pragma unroll 2
        for (uint32_t c = lane; c < n_chunks; c += warp) {
            const uint4 packed = w_row[c];
#pragma unroll
            for (int t = 0; t < TOKEN_TILE; ++t) {
                if (t < tile) {
                    acc[t] = rf_f16x8_fma(packed, x + (uint64_t)(t0 + t) * n_cols + 8 * c, acc[t]);
                }
            }
        }
#pragma unroll
        for (int t = 0; t < TOKEN_TILE; ++t) {
            const float sum = rf_warp_sum(acc[t]);
            if (lane == 0 && t < tile) {
                y[(uint64_t)(t0 + t) * n_rows + row] = sum;
            }
        }
    }
}
