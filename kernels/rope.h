// RoPE's rotation, shared by rf_rope_kv_write (rope.hip) and decode attention, which
// rotates the step's query and key heads itself (attention.hip): one definition, so both
// produce the same bits.
//
// Angles as src/backend/cpu/ops.rs RopeAngles: theta_0 = pos, theta_{i+1} = theta_i *
// theta_scale (theta_scale = base^(-2 / rope_dims), computed on the host in f32 exactly as
// the CPU does), each multiplication rounded in f32 in the same order, so the angles are
// the CPU's bit for bit; only cosf/sinf may differ from the CPU's by an ulp or two. The
// rotation's products are rounded separately (no FMA), as on the CPU.
//
// Pairs: "normal" (llama) rotates (2i, 2i + 1), "neox" (i, i + rope_dims / 2), for
// i < rope_dims / 2; dimensions rope_dims..head_dim pass through unchanged.
#pragma once
#include "compat.h"
#include "ggml_blocks.h"

// The cosine and sine of one pair's angle.
struct PairTurn {
    float c, s;
};

// x = (x0, x1) rotated by the turn: (x0 cos - x1 sin, x0 sin + x1 cos).
RF_DEVICE void rotate_by(float *x0, float *x1, PairTurn turn) {
    const float a = *x0, b = *x1;
    *x0 = rf_mul(a, turn.c) - rf_mul(b, turn.s);
    *x1 = rf_mul(a, turn.s) + rf_mul(b, turn.c);
}

// The angle of pair i at position pos, by the CPU's sequence of multiplications.
RF_DEVICE float pair_angle(int32_t pos, uint32_t i, float theta_scale) {
    float theta = (float)pos;
    for (uint32_t k = 0; k < i; ++k) {
        theta *= theta_scale;
    }
    return theta;
}

// The turn of pair i at position pos.
RF_DEVICE PairTurn pair_turn(int32_t pos, uint32_t i, float theta_scale) {
    const float theta = pair_angle(pos, i, theta_scale);
    return PairTurn{cosf(theta), sinf(theta)};
}

// The offsets within a head of the two elements of pair i.
RF_DEVICE void pair_offsets(uint32_t i, uint32_t n_pairs, uint32_t neox, uint32_t *a,
                            uint32_t *b) {
    *a = neox ? i : 2 * i;
    *b = neox ? i + n_pairs : 2 * i + 1;
}

// Rotates one head of head_dim values in place, threads tid of n_threads sharing its pairs.
RF_DEVICE void rope_head(float *head, int32_t pos, uint32_t rope_dims, float theta_scale,
                         uint32_t neox, uint32_t tid, uint32_t n_threads) {
    const uint32_t n_pairs = rope_dims / 2;
    for (uint32_t i = tid; i < n_pairs; i += n_threads) {
        uint32_t a, b;
        pair_offsets(i, n_pairs, neox, &a, &b);
        rotate_by(&head[a], &head[b], pair_turn(pos, i, theta_scale));
    }
}

// rope_head with the turn of pair tid worked out beforehand (`own`, from pair_turn(pos,
// tid, theta_scale)), so a kernel can take that chain of multiplications and cosf/sinf off
// its critical path; pairs past n_threads, if any, work theirs out here.
RF_DEVICE void rope_head_turned(float *head, PairTurn own, int32_t pos, uint32_t rope_dims,
                                float theta_scale, uint32_t neox, uint32_t tid,
                                uint32_t n_threads) {
    const uint32_t n_pairs = rope_dims / 2;
    for (uint32_t i = tid; i < n_pairs; i += n_threads) {
        uint32_t a, b;
        pair_offsets(i, n_pairs, neox, &a, &b);
        rotate_by(&head[a], &head[b], i == tid ? own : pair_turn(pos, i, theta_scale));
    }
}
