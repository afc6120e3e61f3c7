//! Q8_K super-blocks of 256 values: ggml's activation format for the K-quants and IQ4_XS.
//! One f32 scale, 256 quants, and the sum of each group of 16 quants, from which the
//! kernels take the min and offset terms without touching the quants again.

use super::arrays;
use crate::backend::cpu::SimdLevel;
use crate::error::Result;
use crate::host_memory::resize;

const BLOCK: usize = 256;
const GROUPS: usize = BLOCK / 16;

/// One token's activations as Q8_K super-blocks.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Q8KRow<'a> {
    pub quants: &'a [[i8; BLOCK]],
    /// Per super-block, the step `d` (a value is about `d * q`). Negative when the value of
    /// largest magnitude is positive: ggml maps that value to -127.
    pub scales: &'a [f32],
    /// Per super-block, the sums of its 16 groups of 16 quants.
    pub group_sums: &'a [[i16; GROUPS]],
}

/// The quantized activations of every token of a matmul, reused from call to call.
#[derive(Default)]
pub(crate) struct Q8KActivations {
    blocks_per_token: usize,
    quants: Vec<[i8; BLOCK]>,
    scales: Vec<f32>,
    group_sums: Vec<[i16; GROUPS]>,
}

/// One quantized super-block.
#[derive(Clone, Copy, Debug, PartialEq)]
struct Q8KBlock {
    quants: [i8; BLOCK],
    scale: f32,
    group_sums: [i16; GROUPS],
}

impl Q8KActivations {
    /// Quantizes `x`, tokens of `n_cols` values each (`n_cols` a multiple of 256).
    pub fn quantize(&mut self, x: &[f32], n_cols: usize, simd: SimdLevel) -> Result<()> {
        debug_assert!(n_cols.is_multiple_of(BLOCK) && x.len().is_multiple_of(n_cols));
        let n_blocks = x.len() / BLOCK;
        self.blocks_per_token = n_cols / BLOCK;
        // Grown at the largest batch so far, then reused: a decode step allocates nothing.
        let what = "the quantized activations of a batch";
        resize(&mut self.quants, n_blocks, [0; BLOCK], what)?;
        resize(&mut self.scales, n_blocks, 0.0, what)?;
        resize(&mut self.group_sums, n_blocks, [0; GROUPS], what)?;
        let outputs = self
            .quants
            .iter_mut()
            .zip(&mut self.scales)
            .zip(&mut self.group_sums);
        for (x, ((quants, scale), group_sums)) in arrays::<f32, BLOCK>(x).zip(outputs) {
            let block = match simd {
                SimdLevel::Scalar => quantize_block(x),
                #[cfg(target_arch = "x86_64")]
                // SAFETY: an `Avx2` level is only ever used after `is_supported` said the CPU
                // has AVX2, FMA and F16C (see `CpuMatmul::with_simd`).
                SimdLevel::Avx2 => unsafe { avx2::quantize_block(x) },
                #[cfg(not(target_arch = "x86_64"))]
                SimdLevel::Avx2 => unreachable!("AVX2 is never detected off x86-64"),
            };
            (*quants, *scale, *group_sums) = (block.quants, block.scale, block.group_sums);
        }
        Ok(())
    }

    /// Token `t` of the last `quantize`.
    pub fn token(&self, t: usize) -> Q8KRow<'_> {
        let blocks = t * self.blocks_per_token..(t + 1) * self.blocks_per_token;
        Q8KRow {
            quants: &self.quants[blocks.clone()],
            scales: &self.scales[blocks.clone()],
            group_sums: &self.group_sums[blocks],
        }
    }
}

/// The scalar reference, ggml's `quantize_row_q8_K_ref`: the first value of largest
/// magnitude becomes -127, the rest `round_half_even(-127 * x / max)`, and `d = max / -127`.
fn quantize_block(x: &[f32; BLOCK]) -> Q8KBlock {
    let (mut amax, mut max) = (0.0_f32, 0.0_f32);
    for &v in x {
        if v.abs() > amax {
            (amax, max) = (v.abs(), v);
        }
    }
    if amax == 0.0 {
        return Q8KBlock {
            quants: [0; BLOCK],
            scale: 0.0,
            group_sums: [0; GROUPS],
        };
    }
    let inverse = -127.0 / max;
    // `as i8` saturates, which is ggml's `MIN(127, v)` (nothing can fall below -127).
    let quants = x.map(|v| (inverse * v).round_ties_even() as i8);
    Q8KBlock {
        quants,
        scale: 1.0 / inverse,
        group_sums: group_sums(&quants),
    }
}

fn group_sums(quants: &[i8; BLOCK]) -> [i16; GROUPS] {
    // A group sums to at most 16 * 127 in magnitude.
    std::array::from_fn(|g| quants[16 * g..][..16].iter().map(|&q| i16::from(q)).sum())
}

#[cfg(target_arch = "x86_64")]
mod avx2 {
    use std::arch::x86_64::*;

    use super::{BLOCK, GROUPS, Q8KBlock};

    /// [`super::quantize_block`] with AVX2, the same operations 8 lanes at a time.
    #[inline]
    #[target_feature(enable = "avx2,fma,f16c")]
    pub(super) fn quantize_block(x: &[f32; BLOCK]) -> Q8KBlock {
        let lanes = x.chunks_exact(8);
        let sign_bit = _mm256_set1_ps(-0.0);
        let mut max8 = _mm256_setzero_ps();
        for lane in lanes {
            max8 = _mm256_max_ps(max8, _mm256_andnot_ps(sign_bit, load_f32x8(lane)));
        }
        let max4 = _mm_max_ps(
            _mm256_extractf128_ps::<1>(max8),
            _mm256_castps256_ps128(max8),
        );
        let max2 = _mm_max_ps(max4, _mm_movehl_ps(max4, max4));
        let amax = _mm_cvtss_f32(_mm_max_ss(max2, _mm_movehdup_ps(max2)));
        if amax == 0.0 {
            return Q8KBlock {
                quants: [0; BLOCK],
                scale: 0.0,
                group_sums: [0; GROUPS],
            };
        }
        // The reference keeps the first value of largest magnitude; its sign decides the
        // sign of every quant.
        let amax8 = _mm256_set1_ps(amax);
        let max = x
            .chunks_exact(8)
            .find_map(|lane| {
                let abs = _mm256_andnot_ps(sign_bit, load_f32x8(lane));
                let hits = _mm256_movemask_ps(_mm256_cmp_ps::<_CMP_EQ_OQ>(abs, amax8));
                (hits != 0).then(|| lane[hits.trailing_zeros() as usize])
            })
            .unwrap_or(amax);

        let inverse = -127.0 / max;
        let inverse8 = _mm256_set1_ps(inverse);
        let mut quants = [0_i8; BLOCK];
        let mut group_sums = [0_i16; GROUPS];
        let chunks = x
            .chunks_exact(32)
            .zip(quants.chunks_exact_mut(32))
            .zip(group_sums.chunks_exact_mut(2));
        for ((x, quants), sums) in chunks {
            let ints = [0, 8, 16, 24].map(|i| {
                let scaled = _mm256_mul_ps(inverse8, load_f32x8(&x[i..]));
                let rounded =
                    _mm256_round_ps::<{ _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC }>(scaled);
                _mm256_cvtps_epi32(rounded)
            });
            // The packs saturate like the reference's cast.
            let i8s = _mm256_packs_epi16(
                _mm256_packs_epi32(ints[0], ints[1]),
                _mm256_packs_epi32(ints[2], ints[3]),
            );
            let i8s = _mm256_permutevar8x32_epi32(i8s, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
            let quants = &mut quants[..32];
            // SAFETY: `quants` holds the 32 bytes the unaligned store writes.
            unsafe { _mm256_storeu_si256(quants.as_mut_ptr().cast(), i8s) };
            // Group sums from the saturated bytes, as the reference takes them.
            let pairs = _mm256_maddubs_epi16(_mm256_set1_epi8(1), i8s);
            let quads = _mm256_madd_epi16(pairs, _mm256_set1_epi16(1));
            let halves = _mm256_hadd_epi32(quads, quads);
            let sums16 = _mm256_hadd_epi32(halves, halves);
            // Each 128-bit lane now holds its group's sum in every element.
            sums[0] = _mm256_extract_epi32::<0>(sums16) as i16;
            sums[1] = _mm256_extract_epi32::<4>(sums16) as i16;
        }
        Q8KBlock {
            quants,
            scale: 1.0 / inverse,
            group_sums,
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
}

#[cfg(test)]
mod tests {
    use super::*;

    fn test_blocks() -> Vec<[f32; BLOCK]> {
        let mut state = 0x2545_F491_u32;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 17;
            state ^= state << 5;
            state as f32 / u32::MAX as f32 - 0.5
        };
        let mut blocks: Vec<[f32; BLOCK]> = (0..60)
            .map(|i| std::array::from_fn(|_| next() * 10_f32.powi(i % 7 - 3)))
            .collect();
        blocks.push([0.0; BLOCK]);
        // Equal magnitudes of both signs: the first one decides.
        blocks.push(std::array::from_fn(|j| [3.0, -3.0, 1.0, 0.5][j % 4]));
        blocks.push(std::array::from_fn(|j| [-3.0, 3.0, 1.0, 0.5][j % 4]));
        blocks
    }

    #[test]
    fn reference_is_within_half_a_step() {
        for x in test_blocks() {
            let block = quantize_block(&x);
            let amax = x.iter().fold(0.0_f32, |m, v| m.max(v.abs()));
            for (&v, &q) in x.iter().zip(&block.quants) {
                let error = (f32::from(q) * block.scale - v).abs();
                assert!(error <= amax / 127.0 * 0.501, "{v} -> {q}");
            }
            assert_eq!(block.group_sums, group_sums(&block.quants));
        }
    }

    #[test]
    fn first_value_of_largest_magnitude_becomes_minus_127() {
        let block = quantize_block(&test_blocks()[61]);
        assert_eq!(block.quants[..4], [-127, 127, -42, -21]);
        assert_eq!(block.scale, 3.0 / -127.0);
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
            assert_eq!(simd, quantize_block(&x));
        }
    }
}
