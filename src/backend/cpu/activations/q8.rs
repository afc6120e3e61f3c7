//! Q8 blocks of 32 values: ggml's Q8_0 (scale `d`, 32 quants) with Q8_1's scaled block sum,
//! the activation format of the 32-value weight formats (Q4_0 … Q8_0, IQ4_NL, MXFP4).

use super::arrays;
use crate::backend::cpu::SimdLevel;
use crate::error::Result;
use crate::host_memory::resize;

const BLOCK: usize = 32;

/// One token's activations as Q8 blocks.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Q8Row<'a> {
    pub quants: &'a [[i8; BLOCK]],
    /// Per block, the step `d` (a value is about `d * q`), rounded to f16 as ggml stores it.
    pub scales: &'a [f32],
    /// Per block, `d * sum(q)` (Q8_1's `s`, with `d` before rounding), for the min term of
    /// Q4_1 and Q5_1 weights. Kept in f32 where ggml rounds it to f16: a block of large
    /// activations (summing past 65504) would make ggml's infinite.
    pub scaled_sums: &'a [f32],
    /// The token's group of [`GROUP`] consecutive tokens, when its matmul has one: the
    /// kernels of a tile of those tokens read the group's scales and sums of a block with
    /// one load each.
    pub group: Option<Q8Group<'a>>,
}

/// Tokens a [`Q8Group`] holds: the kernels' tile ([`crate::backend::cpu::dot::TOKEN_TILE`]).
pub(crate) const GROUP: usize = 4;

/// The scales and scaled sums of [`GROUP`] consecutive tokens (the first a multiple of
/// [`GROUP`]), block by block: `scales[b][lane]` is block `b` of token `first + lane`.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Q8Group<'a> {
    pub scales: &'a [[f32; GROUP]],
    pub scaled_sums: &'a [[f32; GROUP]],
    /// Which of the group's tokens this is.
    pub lane: usize,
}

/// The quantized activations of every token of a matmul, reused from call to call.
#[derive(Default)]
pub(crate) struct Q8Activations {
    blocks_per_token: usize,
    quants: Vec<[i8; BLOCK]>,
    scales: Vec<f32>,
    scaled_sums: Vec<f32>,
    /// Per group of [`GROUP`] tokens, per block, the tokens' scales (see [`Q8Group`]); empty
    /// for a batch smaller than a group. A partial last group has zeros in its empty lanes.
    group_scales: Vec<[f32; GROUP]>,
    group_sums: Vec<[f32; GROUP]>,
}

/// One quantized block.
#[derive(Clone, Copy, Debug, PartialEq)]
struct Q8Block {
    quants: [i8; BLOCK],
    scale: f32,
    scaled_sum: f32,
}

impl Q8Activations {
    /// Quantizes `x`, tokens of `n_cols` values each (`n_cols` a multiple of 32).
    pub fn quantize(&mut self, x: &[f32], n_cols: usize, simd: SimdLevel) -> Result<()> {
        debug_assert!(n_cols.is_multiple_of(BLOCK) && x.len().is_multiple_of(n_cols));
        let n_blocks = x.len() / BLOCK;
        self.blocks_per_token = n_cols / BLOCK;
        // Grown at the largest batch so far, then reused: a decode step allocates nothing.
        let what = "the quantized activations of a batch";
        resize(&mut self.quants, n_blocks, [0; BLOCK], what)?;
        resize(&mut self.scales, n_blocks, 0.0, what)?;
        resize(&mut self.scaled_sums, n_blocks, 0.0, what)?;
        let blocks = arrays::<f32, BLOCK>(x);
        let outputs = self
            .quants
            .iter_mut()
            .zip(&mut self.scales)
            .zip(&mut self.scaled_sums);
        match simd {
            SimdLevel::Scalar => {
                for (x, ((quants, scale), scaled_sum)) in blocks.zip(outputs) {
                    let block = quantize_block(x);
                    (*quants, *scale, *scaled_sum) = (block.quants, block.scale, block.scaled_sum);
                }
            }
            #[cfg(target_arch = "x86_64")]
            SimdLevel::Avx2 => {
                for (x, ((quants, scale), scaled_sum)) in blocks.zip(outputs) {
                    // SAFETY: an `Avx2` level is only ever used after `is_supported` said the
                    // CPU has AVX2, FMA and F16C (see `CpuMatmul::with_simd`).
                    let block = unsafe { avx2::quantize_block(x) };
                    (*quants, *scale, *scaled_sum) = (block.quants, block.scale, block.scaled_sum);
                }
            }
            #[cfg(not(target_arch = "x86_64"))]
            SimdLevel::Avx2 => unreachable!("AVX2 is never detected off x86-64"),
        }
        self.group_fields(x.len() / n_cols, what)
    }

    /// Fills the groups' scales and sums from the tokens' (prefill only: one token needs
    /// none).
    fn group_fields(&mut self, n_tokens: usize, what: &str) -> Result<()> {
        let n_groups = if n_tokens >= GROUP {
            n_tokens.div_ceil(GROUP)
        } else {
            0
        };
        let per_token = self.blocks_per_token;
        resize(
            &mut self.group_scales,
            n_groups * per_token,
            [0.0; GROUP],
            what,
        )?;
        resize(
            &mut self.group_sums,
            n_groups * per_token,
            [0.0; GROUP],
            what,
        )?;
        let fields = [
            (&mut self.group_scales, &self.scales),
            (&mut self.group_sums, &self.scaled_sums),
        ];
        for (grouped, by_token) in fields {
            for (g, group) in grouped.chunks_exact_mut(per_token).enumerate() {
                for (lane, token) in by_token.chunks_exact(per_token).skip(g * GROUP).enumerate() {
                    if lane == GROUP {
                        break;
                    }
                    for (block, &value) in group.iter_mut().zip(token) {
                        block[lane] = value;
                    }
                }
                if (g + 1) * GROUP > n_tokens {
                    for block in group.iter_mut() {
                        block[n_tokens - g * GROUP..].fill(0.0);
                    }
                }
            }
        }
        Ok(())
    }

    /// Token `t` of the last `quantize`.
    pub fn token(&self, t: usize) -> Q8Row<'_> {
        let blocks = t * self.blocks_per_token..(t + 1) * self.blocks_per_token;
        let per_token = self.blocks_per_token;
        let group_blocks = t / GROUP * per_token..(t / GROUP + 1) * per_token;
        let group = self
            .group_scales
            .get(group_blocks.clone())
            .map(|scales| Q8Group {
                scales,
                scaled_sums: &self.group_sums[group_blocks],
                lane: t % GROUP,
            });
        Q8Row {
            quants: &self.quants[blocks.clone()],
            scales: &self.scales[blocks.clone()],
            scaled_sums: &self.scaled_sums[blocks],
            group,
        }
    }
}

/// `x` (a multiple of 32 values) as ggml's Q8_0 blocks in `out`: per block the f16 step
/// `d`, then 32 quants, 34 bytes, rounded as [`Q8Activations::quantize`] rounds them.
pub(crate) fn quantize_q8_0(x: &[f32], out: &mut [u8]) {
    for (x, bytes) in arrays::<f32, BLOCK>(x).zip(out.chunks_exact_mut(2 + BLOCK)) {
        let block = quantize_block(x);
        bytes[..2].copy_from_slice(&half::f16::from_f32(block.scale).to_le_bytes());
        for (byte, q) in bytes[2..].iter_mut().zip(block.quants) {
            *byte = q as u8;
        }
    }
}

/// The scalar reference: `d = max|x| / 127`, `q = round_half_even(x * 127 / max|x|)`.
/// ggml's AVX2 build rounds half to even, its scalar one half away from zero; we follow the
/// build llama.cpp runs on x86.
fn quantize_block(x: &[f32; BLOCK]) -> Q8Block {
    let amax = x.iter().fold(0.0_f32, |m, v| m.max(v.abs()));
    let d = amax / 127.0;
    let inverse = if amax != 0.0 { 127.0 / amax } else { 0.0 };
    let quants = x.map(|v| (v * inverse).round_ties_even() as i8);
    let sum: i32 = quants.iter().map(|&q| i32::from(q)).sum();
    Q8Block {
        quants,
        scale: round_to_f16(d),
        scaled_sum: d * sum as f32,
    }
}

fn round_to_f16(v: f32) -> f32 {
    half::f16::from_f32(v).to_f32()
}

#[cfg(target_arch = "x86_64")]
mod avx2 {
    use std::arch::x86_64::*;

    use super::{BLOCK, Q8Block};

    /// [`super::quantize_block`] with AVX2: the same operations on 8 lanes at a time.
    #[inline]
    #[target_feature(enable = "avx2,fma,f16c")]
    pub(super) fn quantize_block(x: &[f32; BLOCK]) -> Q8Block {
        let v = [0, 8, 16, 24].map(|i| load_f32x8(&x[i..]));
        let abs = v.map(|v| _mm256_andnot_ps(_mm256_set1_ps(-0.0), v));
        let max8 = _mm256_max_ps(_mm256_max_ps(abs[0], abs[1]), _mm256_max_ps(abs[2], abs[3]));
        let max4 = _mm_max_ps(
            _mm256_extractf128_ps::<1>(max8),
            _mm256_castps256_ps128(max8),
        );
        let max2 = _mm_max_ps(max4, _mm_movehl_ps(max4, max4));
        let amax = _mm_cvtss_f32(_mm_max_ss(max2, _mm_movehdup_ps(max2)));

        let d = amax / 127.0;
        let inverse = _mm256_set1_ps(if amax != 0.0 { 127.0 / amax } else { 0.0 });
        let ints = v.map(|v| {
            let rounded = _mm256_round_ps::<{ _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC }>(
                _mm256_mul_ps(v, inverse),
            );
            _mm256_cvtps_epi32(rounded)
        });
        let sum = hsum_i32x8(_mm256_add_epi32(
            _mm256_add_epi32(ints[0], ints[1]),
            _mm256_add_epi32(ints[2], ints[3]),
        ));
        // The packs work within 128-bit lanes and leave 4-byte groups in the order
        // 0 2 4 6 1 3 5 7; the permute puts them back.
        let i16s_low = _mm256_packs_epi32(ints[0], ints[1]);
        let i16s_high = _mm256_packs_epi32(ints[2], ints[3]);
        let i8s = _mm256_packs_epi16(i16s_low, i16s_high);
        let i8s = _mm256_permutevar8x32_epi32(i8s, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
        let mut quants = [0_i8; BLOCK];
        // SAFETY: `quants` is 32 bytes, exactly what the unaligned store writes.
        unsafe { _mm256_storeu_si256(quants.as_mut_ptr().cast(), i8s) };
        Q8Block {
            quants,
            scale: round_to_f16(d),
            scaled_sum: d * sum as f32,
        }
    }

    /// 8 floats from the start of `values`.
    #[inline]
    #[target_feature(enable = "avx2,fma,f16c")]
    fn load_f32x8(values: &[f32]) -> __m256 {
        let values = &values[..8];
        // SAFETY: `values` holds the 8 floats the unaligned load reads.
        unsafe { _mm256_loadu_ps(values.as_ptr()) }
    }

    #[inline]
    #[target_feature(enable = "avx2,fma,f16c")]
    fn hsum_i32x8(v: __m256i) -> i32 {
        let sum4 = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256::<1>(v));
        let sum2 = _mm_add_epi32(sum4, _mm_unpackhi_epi64(sum4, sum4));
        let sum1 = _mm_add_epi32(sum2, _mm_shuffle_epi32::<0b10_11_00_01>(sum2));
        _mm_cvtsi128_si32(sum1)
    }

    /// Rounds to the nearest f16 (ties to even, as `half` does) and widens back.
    #[inline]
    #[target_feature(enable = "avx2,fma,f16c")]
    fn round_to_f16(v: f32) -> f32 {
        let half = _mm_cvtps_ph::<_MM_FROUND_TO_NEAREST_INT>(_mm_set_ss(v));
        _mm_cvtss_f32(_mm_cvtph_ps(half))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn test_blocks() -> Vec<[f32; BLOCK]> {
        let mut state = 0x9E37_79B9_u32;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 17;
            state ^= state << 5;
            state as f32 / u32::MAX as f32 - 0.5
        };
        let mut blocks: Vec<[f32; BLOCK]> = (0..200)
            .map(|i| std::array::from_fn(|_| next() * 10_f32.powi(i % 9 - 4)))
            .collect();
        blocks.push([0.0; BLOCK]);
        // Ties: 127 / 2 * 2k+1 halves, which round to even.
        blocks.push(std::array::from_fn(|j| {
            if j == 0 { 254.0 } else { j as f32 - 15.5 }
        }));
        blocks.push(std::array::from_fn(
            |j| if j % 2 == 0 { -1e-30 } else { 3e-30 },
        ));
        blocks
    }

    #[test]
    fn reference_is_within_half_a_step() {
        for x in test_blocks() {
            let block = quantize_block(&x);
            let amax = x.iter().fold(0.0_f32, |m, v| m.max(v.abs()));
            for (&v, &q) in x.iter().zip(&block.quants) {
                let error = (f32::from(q) * block.scale - v).abs();
                // Half a step, plus 127 times the f16 rounding of the scale: relative 2^-11,
                // or 2^-25 absolute where the scale is an f16 subnormal.
                let scale_rounding = (amax / 127.0 * 2e-3).max(2.0_f32.powi(-25));
                assert!(
                    error <= amax / 127.0 * 0.5 + 127.0 * scale_rounding,
                    "{v} -> {q}"
                );
            }
            let sum: i32 = block.quants.iter().map(|&q| i32::from(q)).sum();
            assert_eq!(block.scaled_sum, amax / 127.0 * sum as f32);
        }
    }

    #[test]
    fn ties_round_to_even() {
        let mut x = [0.0; BLOCK];
        x[0] = 127.0;
        x[1] = 2.5;
        x[2] = -3.5;
        assert_eq!(&quantize_block(&x).quants[..3], &[127, 2, -4]);
    }

    #[cfg(target_arch = "x86_64")]
    #[test]
    fn avx2_matches_the_reference_bit_for_bit() {
        if !SimdLevel::Avx2.is_supported() {
            eprintln!("AVX2 not supported here: nothing to compare");
            return;
        }
        for x in test_blocks() {
            // SAFETY: AVX2, FMA and F16C were detected above.
            let simd = unsafe { avx2::quantize_block(&x) };
            let reference = quantize_block(&x);
            assert_eq!(simd.quants, reference.quants);
            assert_eq!(simd.scale.to_bits(), reference.scale.to_bits());
            assert_eq!(simd.scaled_sum.to_bits(), reference.scaled_sum.to_bits());
        }
    }
}
