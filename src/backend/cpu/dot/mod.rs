//! Dot products of weight rows with activations: for each weight format a scalar reference
//! and, beside it, the SIMD kernel tested against it.
//!
//! Quantized formats take the activations quantized to 8 bits ([`Q8Row`] for the 32-value
//! formats, [`Q8KRow`] for the 256-value ones) and sum integer products block by block,
//! scaling each block's sum in f32, as ggml's `ggml_vec_dot_*` do. F32, F16 and BF16 weights
//! take the f32 activations as they are. Types with a dequantizer but no kernel (F64 and the
//! integer types) dequantize a piece of a row at a time instead ([`dequantized`]).
//!
//! SIMD kernels compute a tile of up to [`TOKEN_TILE`] tokens per row, so each weight block
//! is loaded and unpacked once for all of them: that is what makes prefill compute-bound
//! rather than unpack-bound.

pub(crate) mod dequantized;
mod float;
mod iq4_nl;
mod iq4_xs;
mod k_scales;
mod mxfp4;
mod q2_k;
mod q3_k;
mod q4_0;
mod q4_1;
mod q4_k;
mod q5_0;
mod q5_1;
mod q5_k;
mod q6_k;
mod q8_0;
mod q8_1;
mod q8_k;

#[cfg(target_arch = "x86_64")]
mod avx2;

use super::SimdLevel;
use super::activations::{Q8KRow, Q8Row};
use crate::tensor::GgmlType;
use crate::{Error, Result};

/// Tokens a SIMD kernel takes per pass over a row in prefill. With two sums per token (the
/// legacy kernels add even and odd blocks apart), four keeps every kernel's accumulators
/// and operands within the 16 AVX2 registers.
pub(crate) const TOKEN_TILE: usize = 4;

// A full tile is one group of the activations' per-group fields.
const _: () = assert!(TOKEN_TILE == super::activations::GROUP);

/// A kernel over a block of consecutive weight rows (`row_bytes` each) and a few tokens:
/// `out[r * tokens.len() + t] = row r · token t`.
///
/// Unsafe because a SIMD kernel needs its instruction set: call one only on a CPU where
/// [`SimdLevel::is_supported`] holds for the level it was selected for.
pub(crate) type RowsFn<A> = unsafe fn(rows: &[u8], row_bytes: usize, tokens: &[A], out: &mut [f32]);

/// The kernel for a weight type, by the activations it takes.
pub(crate) enum RowsKernel<'a> {
    Q8(RowsFn<Q8Row<'a>>),
    Q8K(RowsFn<Q8KRow<'a>>),
    Float(RowsFn<&'a [f32]>),
    /// Dequantize with [`crate::tensor::dequantize_row`], then take f32 dot products.
    Dequantized,
}

/// The scalar reference dot product of a weight format with one token's activations `A`.
trait RowDot<A> {
    fn dot(row: &[u8], token: &A) -> f32;
}

/// SIMD dot products of one weight row with `T` tokens, each weight block unpacked once
/// for all of them.
#[cfg(target_arch = "x86_64")]
trait Avx2TileDot<A> {
    /// # Safety
    /// The CPU must have AVX2, FMA and F16C.
    unsafe fn dot_tile<const T: usize>(row: &[u8], tokens: &[A; T]) -> [f32; T];
}

/// The kernel for `dtype` weights at `simd`, or [`Error::Unsupported`].
pub(crate) fn select<'a>(dtype: GgmlType, simd: SimdLevel) -> Result<RowsKernel<'a>> {
    use GgmlType::*;
    let kernel = match dtype {
        F32 => float_kernel::<float::F32>(simd),
        F16 => float_kernel::<float::F16>(simd),
        Bf16 => float_kernel::<float::Bf16>(simd),
        Q4_0 => q8_kernel::<q4_0::Q4_0>(simd),
        Q4_1 => q8_vnni_kernel::<q4_1::Q4_1, q4_1::Q4_1<true>>(simd),
        Q5_0 => q8_kernel::<q5_0::Q5_0>(simd),
        Q5_1 => q8_vnni_kernel::<q5_1::Q5_1, q5_1::Q5_1<true>>(simd),
        Q8_0 => q8_kernel::<q8_0::Q8_0>(simd),
        Q8_1 => RowsKernel::Q8(scalar_rows::<_, q8_1::Q8_1>),
        Iq4Nl => q8_kernel::<iq4_nl::Iq4Nl>(simd),
        Mxfp4 => q8_kernel::<mxfp4::Mxfp4>(simd),
        Q2K => q8k_kernel::<q2_k::Q2K>(simd),
        Q3K => q8k_kernel::<q3_k::Q3K>(simd),
        Q4K => q8k_kernel::<q4_k::Q4K>(simd),
        Q5K => q8k_kernel::<q5_k::Q5K>(simd),
        Q6K => q8k_kernel::<q6_k::Q6K>(simd),
        Q8K => RowsKernel::Q8K(scalar_rows::<_, q8_k::Q8K>),
        Iq4Xs => q8k_kernel::<iq4_xs::Iq4Xs>(simd),
        F64 | I8 | I16 | I32 => RowsKernel::Dequantized,
        Iq2Xxs | Iq2Xs | Iq2S | Iq3Xxs | Iq3S | Iq1S | Iq1M | Tq1_0 | Tq2_0 | I64 => {
            return Err(Error::Unsupported(format!(
                "CPU matmul with {dtype} weights"
            )));
        }
    };
    Ok(kernel)
}

/// Row after row, token after token, through the scalar reference.
fn scalar_rows<A, W: RowDot<A>>(rows: &[u8], row_bytes: usize, tokens: &[A], out: &mut [f32]) {
    for (row, out) in rows
        .chunks_exact(row_bytes)
        .zip(out.chunks_exact_mut(tokens.len()))
    {
        for (token, out) in tokens.iter().zip(out) {
            *out = W::dot(row, token);
        }
    }
}

/// Row after row (so the weights stream from memory in order), in tiles of [`TOKEN_TILE`]
/// tokens and then one token at a time.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma,f16c")]
fn avx2_rows<A, W: Avx2TileDot<A>>(rows: &[u8], row_bytes: usize, tokens: &[A], out: &mut [f32]) {
    let n_tokens = tokens.len();
    let full_tiles = n_tokens - n_tokens % TOKEN_TILE;
    let (tiles, rest) = tokens.split_at(full_tiles);
    for (row, out) in rows
        .chunks_exact(row_bytes)
        .zip(out.chunks_exact_mut(n_tokens))
    {
        let (tiles_out, rest_out) = out.split_at_mut(full_tiles);
        let tiles = tiles
            .chunks_exact(TOKEN_TILE)
            .zip(tiles_out.chunks_exact_mut(TOKEN_TILE));
        for (tile, tile_out) in tiles {
            let tile = tile.first_chunk::<TOKEN_TILE>();
            if let (Some(tile), Some(tile_out)) = (tile, tile_out.first_chunk_mut()) {
                // SAFETY: this function's own target features are the kernel's.
                *tile_out = unsafe { W::dot_tile(row, tile) };
            }
        }
        for (token, out) in rest.iter().zip(rest_out) {
            // SAFETY: as above.
            [*out] = unsafe { W::dot_tile(row, std::array::from_ref(token)) };
        }
    }
}

#[cfg(target_arch = "x86_64")]
fn q8_kernel<'a, W>(simd: SimdLevel) -> RowsKernel<'a>
where
    W: RowDot<Q8Row<'a>> + Avx2TileDot<Q8Row<'a>>,
{
    RowsKernel::Q8(match simd {
        SimdLevel::Scalar => scalar_rows::<_, W>,
        SimdLevel::Avx2 => avx2_rows::<_, W>,
    })
}

/// [`q8_kernel`] of `W`, or of `Vnni` (the same kernel summing its products with AVX-512
/// VNNI) where the CPU has it.
#[cfg(target_arch = "x86_64")]
fn q8_vnni_kernel<'a, W, Vnni>(simd: SimdLevel) -> RowsKernel<'a>
where
    W: RowDot<Q8Row<'a>> + Avx2TileDot<Q8Row<'a>>,
    Vnni: Avx2TileDot<Q8Row<'a>>,
{
    match simd {
        SimdLevel::Avx2 if avx2::vnni_detected() => RowsKernel::Q8(avx2_rows::<_, Vnni>),
        _ => q8_kernel::<W>(simd),
    }
}

#[cfg(target_arch = "x86_64")]
fn q8k_kernel<'a, W>(simd: SimdLevel) -> RowsKernel<'a>
where
    W: RowDot<Q8KRow<'a>> + Avx2TileDot<Q8KRow<'a>>,
{
    RowsKernel::Q8K(match simd {
        SimdLevel::Scalar => scalar_rows::<_, W>,
        SimdLevel::Avx2 => avx2_rows::<_, W>,
    })
}

#[cfg(target_arch = "x86_64")]
fn float_kernel<'a, W>(simd: SimdLevel) -> RowsKernel<'a>
where
    W: RowDot<&'a [f32]> + Avx2TileDot<&'a [f32]>,
{
    RowsKernel::Float(match simd {
        SimdLevel::Scalar => scalar_rows::<_, W>,
        SimdLevel::Avx2 => avx2_rows::<_, W>,
    })
}

#[cfg(not(target_arch = "x86_64"))]
fn q8_kernel<'a, W: RowDot<Q8Row<'a>>>(_: SimdLevel) -> RowsKernel<'a> {
    RowsKernel::Q8(scalar_rows::<_, W>)
}

#[cfg(not(target_arch = "x86_64"))]
fn q8_vnni_kernel<'a, W: RowDot<Q8Row<'a>>, Vnni>(simd: SimdLevel) -> RowsKernel<'a> {
    q8_kernel::<W>(simd)
}

#[cfg(not(target_arch = "x86_64"))]
fn q8k_kernel<'a, W: RowDot<Q8KRow<'a>>>(_: SimdLevel) -> RowsKernel<'a> {
    RowsKernel::Q8K(scalar_rows::<_, W>)
}

#[cfg(not(target_arch = "x86_64"))]
fn float_kernel<'a, W: RowDot<&'a [f32]>>(_: SimdLevel) -> RowsKernel<'a> {
    RowsKernel::Float(scalar_rows::<_, W>)
}

/// The f16 at `offset`, widened to f32.
#[inline]
fn f16_at(bytes: &[u8], offset: usize) -> f32 {
    half::f16::from_le_bytes([bytes[offset], bytes[offset + 1]]).to_f32()
}

#[cfg(all(test, target_arch = "x86_64"))]
mod tests {
    use super::*;
    use crate::backend::cpu::activations::Q8Activations;

    /// xorshift32, in -1..1.
    fn numbers(seed: u32) -> impl FnMut() -> f32 {
        let mut state = seed;
        move || {
            state ^= state << 13;
            state ^= state >> 17;
            state ^= state << 5;
            state as f32 / u32::MAX as f32 * 2.0 - 1.0
        }
    }

    /// `n_rows` rows of `n_blocks` blocks of `block_bytes`, random but for finite f16 scale
    /// and min in the first 4 bytes of each block.
    fn rows(n_rows: usize, n_blocks: usize, block_bytes: usize, seed: u32) -> Vec<u8> {
        let mut next = numbers(seed);
        let mut bytes = vec![0; n_rows * n_blocks * block_bytes];
        for block in bytes.chunks_exact_mut(block_bytes) {
            let d = half::f16::from_f32(next() * 0.05).to_le_bytes();
            let m = half::f16::from_f32(next() * 0.5).to_le_bytes();
            block[..4].copy_from_slice(&[d[0], d[1], m[0], m[1]]);
            for byte in &mut block[4..] {
                *byte = (next().to_bits() >> 7) as u8;
            }
        }
        bytes
    }

    /// `kernel` over `weights` (`n_rows` rows of `row_bytes`) and `tokens`, in one call or
    /// one call per token; the outputs' bits, `[rows, tokens]`.
    fn run_kernel<'a>(
        kernel: RowsFn<Q8Row<'a>>,
        weights: &[u8],
        row_bytes: usize,
        n_rows: usize,
        tokens: &[Q8Row<'a>],
        one_by_one: bool,
    ) -> Vec<u32> {
        let n_tokens = tokens.len();
        let mut out = vec![f32::NAN; n_rows * n_tokens];
        if one_by_one {
            for (t, token) in tokens.iter().enumerate() {
                let mut column = vec![0.0; n_rows];
                // SAFETY: the callers run a kernel only where its instructions were detected.
                unsafe { kernel(weights, row_bytes, std::slice::from_ref(token), &mut column) };
                for (r, value) in column.into_iter().enumerate() {
                    out[r * n_tokens + t] = value;
                }
            }
        } else {
            // SAFETY: as above.
            unsafe { kernel(weights, row_bytes, tokens, &mut out) };
        }
        out.into_iter().map(f32::to_bits).collect()
    }

    /// Every way a Q4_1 or Q5_1 output can be computed gives the same bits: a whole group
    /// of tokens, the same tile without its group, one token at a time, each with and
    /// without VNNI.
    #[test]
    fn unsigned_kernels_agree_bit_for_bit_in_every_path() {
        if !SimdLevel::Avx2.is_supported() {
            eprintln!("AVX2 not supported here: nothing to compare");
            return;
        }
        let vnni = avx2::vnni_detected();
        if !vnni {
            eprintln!("no AVX-512 VNNI here: its kernels are not compared");
        }
        type Rows<'a> = RowsFn<Q8Row<'a>>;
        for (name, block_bytes) in [("Q4_1", 20), ("Q5_1", 24)] {
            for (n_blocks, n_tokens, seed) in [(1, 4, 1), (3, 8, 2), (18, 11, 3), (48, 13, 4)] {
                let n_rows = 7;
                let n_cols = 32 * n_blocks;
                let row_bytes = n_blocks * block_bytes;
                let weights = rows(n_rows, n_blocks, block_bytes, seed);
                let mut next = numbers(seed + 100);
                let x: Vec<f32> = (0..n_tokens * n_cols)
                    .map(|i| next() * [0.01, 1.0, 300.0][i % 3])
                    .collect();
                let mut q8 = Q8Activations::default();
                q8.quantize(&x, n_cols, SimdLevel::Avx2).unwrap();
                let tokens: Vec<Q8Row<'_>> = (0..n_tokens).map(|t| q8.token(t)).collect();
                assert!(tokens[..n_tokens / 4 * 4].iter().all(|t| t.group.is_some()));
                let ungrouped: Vec<Q8Row<'_>> =
                    tokens.iter().map(|t| Q8Row { group: None, ..*t }).collect();
                let (plain, with_vnni): (Rows<'_>, Rows<'_>) = if name == "Q4_1" {
                    (avx2_rows::<_, q4_1::Q4_1>, avx2_rows::<_, q4_1::Q4_1<true>>)
                } else {
                    (avx2_rows::<_, q5_1::Q5_1>, avx2_rows::<_, q5_1::Q5_1<true>>)
                };
                let run = |kernel, tokens: &_, one_by_one| {
                    run_kernel(kernel, &weights, row_bytes, n_rows, tokens, one_by_one)
                };
                let want = run(plain, &ungrouped, true);
                assert!(want.iter().all(|&v| f32::from_bits(v).is_finite()));
                let mut paths = vec![
                    ("grouped tiles", run(plain, &tokens, false)),
                    ("ungrouped tiles", run(plain, &ungrouped, false)),
                ];
                if vnni {
                    paths.push(("VNNI grouped tiles", run(with_vnni, &tokens, false)));
                    paths.push(("VNNI ungrouped tiles", run(with_vnni, &ungrouped, false)));
                    paths.push(("VNNI one by one", run(with_vnni, &tokens, true)));
                }
                for (path, got) in paths {
                    assert_eq!(
                        got, want,
                        "{name}, {n_blocks} blocks, {n_tokens} tokens: {path}"
                    );
                }
            }
        }
    }
}
