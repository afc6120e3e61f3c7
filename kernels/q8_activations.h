// Q8 activations: the CPU's 8-bit form of a vector for the integer matrix products
// (src/backend/cpu/activations/q8.rs). Per 32 consecutive values: 32 int8 quants q, the
// step d (amax / 127, rounded to f16 and stored widened to f32; the prepared norm's of
// rf_mmvq1_add_norm_* stay in f32, rf_quantize_q8_group<false>) and s = d * sum(q) with d
// before rounding. Stored as three arrays: quants [n, width] int8, d and s [n, width / 32].
#pragma once

#include "compat.h"

// a . b over four int8 lanes, plus c.
RF_DEVICE int rf_dp4a(int a, int b, int c) {
#if defined(RF_CUDA)
    return __dp4a(a, b, c);
#elif defined(__gfx906__) || defined(__gfx908__) || defined(__gfx90a__) || \
    defined(__gfx940__) || defined(__gfx941__) || defined(__gfx942__) || defined(__gfx1030__)
    return __builtin_amdgcn_sdot4(a, b, c, false);
#else
    const int8_t *x = (const int8_t *)&a, *y = (const int8_t *)&b;
    return c + x[0] * y[0] + x[1] * y[1] + x[2] * y[2] + x[3] * y[3];
#endif
}

// Quantizes `v`, value `lane32` (0..32) of a group of 32 held by 32 consecutive lanes of
// one warp, as the CPU does: q = round_half_even(v * 127 / amax). Every lane of the group
// must call it together (it shuffles within the group; the xor offsets stay inside 32
// lanes, so a 64-lane wavefront holds two independent groups). Lane 0 of the group writes
// d and s at `group`. ROUND_STEP false keeps d in f32 (not the CPU's form: for values
// whose norm is still to be applied, so of any size, where f16 would lose a small step).
template <bool ROUND_STEP = true>
RF_DEVICE void rf_quantize_q8_group(float v, int lane32, int8_t *q, float *d, float *s,
                                    uint64_t value, uint64_t group) {
    float amax = fabsf(v);
    for (int offset = 16; offset > 0; offset /= 2) {
        amax = fmaxf(amax, rf_shfl_xor(amax, offset));
    }
    const float step = amax / 127.0f;
    const float inverse = amax != 0.0f ? 127.0f / amax : 0.0f;
    const int quant = __float2int_rn(v * inverse);
    q[value] = (int8_t)quant;
    // The stored quant, as the CPU's saturating cast gives it (0 for NaN); exact in f32:
    // |sum| <= 32 * 127.
    float sum = (float)(int8_t)quant;
    for (int offset = 16; offset > 0; offset /= 2) {
        sum += rf_shfl_xor(sum, offset);
    }
    if (lane32 == 0) {
        d[group] = ROUND_STEP ? __half2float(__float2half_rn(step)) : step;
        s[group] = step * sum;
    }
}

// One group of a residual stream's new values v (value lane32 of the group, in 32
// consecutive lanes as above) prepared for the RMS norm that follows: v * weight as Q8
// activations with the step in f32, and the group's sum of squares of v in f64 (lane 0
// writes it), from which the products that read them finish the norm. The residual product
// with the next norm (matvec_q8.hip) and the norm prepared from the stream alone
// (norm.hip) both end here, so they give the same bits.
RF_DEVICE void rf_prepare_norm_group(float v, float weight, int lane32, uint64_t group,
                                     int8_t *q, float *d, float *s, double *square_sums) {
    rf_quantize_q8_group<false>(v * weight, lane32, q, d, s, group * 32 + lane32, group);
    const double square = rf_lanes_sum_f64((double)v * v, 32);
    if (lane32 == 0) {
        square_sums[group] = square;
    }
}
