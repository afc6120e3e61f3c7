//! AVX2 building blocks the kernels share: loads from checked slices, unpacking of nibbles
//! and bit planes, integer dot products of 32 bytes, and horizontal sums.
//!
//! Every function enables the kernels' features so it inlines into them; the loads check
//! their slice lengths, which the compiler proves away where the kernels' blocks have fixed
//! sizes.

use std::arch::x86_64::*;

use crate::backend::cpu::activations::{GROUP, Q8KRow, Q8Row};

/// How far ahead of the bytes being read the kernels ask for weight bytes. Decode streams
/// its weights from DRAM, where the hardware prefetcher alone leaves a third of the
/// bandwidth unused. Four cache lines measured best, of 2 to 12.
const PREFETCH_DISTANCE: usize = 1024;

/// 16 bytes from the start of `bytes`.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
pub(super) fn load_u8x16(bytes: &[u8]) -> __m128i {
    let bytes = &bytes[..16];
    // SAFETY: `bytes` holds the 16 bytes the unaligned load reads.
    unsafe { _mm_loadu_si128(bytes.as_ptr().cast()) }
}

/// 32 bytes from the start of `bytes`.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
pub(super) fn load_u8x32(bytes: &[u8]) -> __m256i {
    let bytes = &bytes[..32];
    // SAFETY: `bytes` holds the 32 bytes the unaligned load reads.
    unsafe { _mm256_loadu_si256(bytes.as_ptr().cast()) }
}

/// 32 signed bytes from the start of `quants`.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
pub(super) fn load_i8x32(quants: &[i8]) -> __m256i {
    let quants = &quants[..32];
    // SAFETY: `quants` holds the 32 bytes the unaligned load reads.
    unsafe { _mm256_loadu_si256(quants.as_ptr().cast()) }
}

#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
pub(super) fn load_i8x16(values: &[i8; 16]) -> __m128i {
    // SAFETY: `values` is the 16 bytes the unaligned load reads.
    unsafe { _mm_loadu_si128(values.as_ptr().cast()) }
}

/// 16 i16 from the start of `values`.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
pub(super) fn load_i16x16(values: &[i16; 16]) -> __m256i {
    // SAFETY: `values` is the 32 bytes the unaligned load reads.
    unsafe { _mm256_loadu_si256(values.as_ptr().cast()) }
}

/// 8 f32 read as little-endian bytes from the start of `bytes`.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
pub(super) fn load_f32x8_le(bytes: &[u8]) -> __m256 {
    let bytes = &bytes[..32];
    // SAFETY: `bytes` holds the 32 bytes the unaligned load reads (x86 is little-endian).
    unsafe { _mm256_loadu_ps(bytes.as_ptr().cast()) }
}

/// 8 f32 from the start of `values`.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
pub(super) fn load_f32x8(values: &[f32]) -> __m256 {
    let values = &values[..8];
    // SAFETY: `values` holds the 8 floats the unaligned load reads.
    unsafe { _mm256_loadu_ps(values.as_ptr()) }
}

/// The 32 4-bit values of a legacy block (`qs[16]`: value `j` in the low nibble of byte `j`,
/// value `j + 16` in its high nibble), one per byte, in value order.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
pub(super) fn unpack_nibbles(qs: &[u8]) -> __m256i {
    let packed = load_u8x16(qs);
    let both = _mm256_set_m128i(_mm_srli_epi16::<4>(packed), packed);
    _mm256_and_si256(both, _mm256_set1_epi8(0x0F))
}

/// 0xFF in byte `j` where bit `j` of `bits` is set, 0 elsewhere.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
pub(super) fn bits_to_bytes(bits: u32) -> __m256i {
    // Byte j of the shuffle holds byte j / 8 of `bits`; the OR sets every bit but bit
    // j % 8, so the byte is all ones exactly when that bit was set.
    let spread = _mm256_shuffle_epi8(
        _mm256_set1_epi32(bits as i32),
        _mm256_set_epi64x(
            0x0303_0303_0303_0303,
            0x0202_0202_0202_0202,
            0x0101_0101_0101_0101,
            0,
        ),
    );
    let others = _mm256_or_si256(spread, _mm256_set1_epi64x(0x7FBF_DFEF_F7FB_FDFE));
    _mm256_cmpeq_epi8(others, _mm256_set1_epi64x(-1))
}

/// Sums of 4 consecutive products of unsigned bytes `x` (at most 127 where `y` may be
/// -128, so no i16 pair saturates) with signed bytes `y`, as 8 i32.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
pub(super) fn dot_u8_i8(x: __m256i, y: __m256i) -> __m256i {
    _mm256_madd_epi16(_mm256_maddubs_epi16(x, y), _mm256_set1_epi16(1))
}

#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
pub(super) fn hsum_f32x8(v: __m256) -> f32 {
    let sum4 = _mm_add_ps(_mm256_extractf128_ps::<1>(v), _mm256_castps256_ps128(v));
    hsum_f32x4(sum4)
}

#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
pub(super) fn hsum_f32x4(v: __m128) -> f32 {
    let sum2 = _mm_add_ps(v, _mm_movehl_ps(v, v));
    _mm_cvtss_f32(_mm_add_ss(sum2, _mm_movehdup_ps(sum2)))
}

/// The f16 at `offset` of `bytes`, widened with F16C.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
pub(super) fn f16_at(bytes: &[u8], offset: usize) -> f32 {
    let bits = u16::from_le_bytes([bytes[offset], bytes[offset + 1]]);
    // A broadcast rather than an insert into lane 0: an insert would make the conversion
    // wait for whatever the register held before, often a loop's accumulator.
    _mm_cvtss_f32(_mm_cvtph_ps(_mm_set1_epi16(bits as i16)))
}

/// The two consecutive f16 at `offset` of `bytes` (a scale and a min), widened with F16C.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
pub(super) fn f16_pair_at(bytes: &[u8], offset: usize) -> (f32, f32) {
    let bits = u32::from_le_bytes([
        bytes[offset],
        bytes[offset + 1],
        bytes[offset + 2],
        bytes[offset + 3],
    ]);
    let pair = _mm_cvtph_ps(_mm_cvtsi32_si128(bits as i32));
    (_mm_cvtss_f32(pair), _mm_cvtss_f32(_mm_movehdup_ps(pair)))
}

/// The per-block fields of `T` tokens' activations, each cut to a row's block count so that
/// indexing them by block needs no bounds checks.
pub(super) struct Columns<'a, Q, S, const T: usize> {
    pub quants: [&'a [Q]; T],
    pub scales: [&'a [f32]; T],
    /// Q8's scaled block sums, or Q8_K's group sums.
    pub sums: [&'a [S]; T],
}

/// [`Columns`] of Q8 activations.
#[inline(always)]
pub(super) fn q8_columns<'a, const T: usize>(
    tokens: &[Q8Row<'a>; T],
    n: usize,
) -> Columns<'a, [i8; 32], f32, T> {
    let mut columns = Columns {
        quants: [&[][..]; T],
        scales: [&[][..]; T],
        sums: [&[][..]; T],
    };
    for (t, token) in tokens.iter().enumerate() {
        columns.quants[t] = &token.quants[..n];
        columns.scales[t] = &token.scales[..n];
        columns.sums[t] = &token.scaled_sums[..n];
    }
    columns
}

/// [`Columns`] of Q8_K activations.
#[inline(always)]
pub(super) fn q8k_columns<'a, const T: usize>(
    tokens: &[Q8KRow<'a>; T],
    n: usize,
) -> Columns<'a, [i8; 256], [i16; 16], T> {
    let mut columns = Columns {
        quants: [&[][..]; T],
        scales: [&[][..]; T],
        sums: [&[][..]; T],
    };
    for (t, token) in tokens.iter().enumerate() {
        columns.quants[t] = &token.quants[..n];
        columns.scales[t] = &token.scales[..n];
        columns.sums[t] = &token.group_sums[..n];
    }
    columns
}

/// Asks for the cache lines of `row[start..start + len]`, moved [`PREFETCH_DISTANCE`]
/// ahead, to be brought into L1.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
pub(super) fn prefetch_ahead(row: &[u8], start: usize, len: usize) {
    for offset in (0..len).step_by(64) {
        let line = row
            .as_ptr()
            .wrapping_add(start + offset + PREFETCH_DISTANCE);
        // A prefetch never faults: the address may lie past the end of the row.
        _mm_prefetch::<_MM_HINT_T0>(line.cast());
    }
}

/// One accumulator per token, all zero.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
pub(super) fn zeros<const T: usize>() -> [__m256; T] {
    [_mm256_setzero_ps(); T]
}

/// Each accumulator summed across its lanes.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
pub(super) fn hsums<const T: usize>(acc: [__m256; T]) -> [f32; T] {
    acc.map(|acc| hsum_f32x8(acc))
}

/// Runs `$add_block!(acc, b, block)` over the `$block_bytes`-byte blocks of `$row`, the even
/// ones into the accumulators `$even` and the odd ones into `$odd`: with one chain of
/// dependent FMAs per token, each block would wait for the one before. A macro because
/// LLVM does not always inline a closure this size, and accumulators behind a call live in
/// memory.
macro_rules! even_odd_blocks {
    ($row:expr, $block_bytes:expr, $even:ident, $odd:ident, $add_block:ident) => {
        let mut blocks = $row.chunks_exact($block_bytes).enumerate();
        while let Some((b, block)) = blocks.next() {
            $add_block!($even, b, block);
            if let Some((b, block)) = blocks.next() {
                $add_block!($odd, b, block);
            }
        }
    };
}
pub(super) use even_odd_blocks;

/// The tile loop of the formats whose 32-value blocks decode to a scale and signed values
/// (Q4_0, Q5_0, Q8_0, IQ4_NL, MXFP4): `decode(block) = (d, values)`, and a block contributes
/// `d * dy * Σ values * qy`.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
pub(super) fn signed_blocks_tile<const B: usize, const T: usize>(
    row: &[u8],
    tokens: &[Q8Row<'_>; T],
    decode: impl Fn(&[u8]) -> (f32, __m256i),
) -> [f32; T] {
    let n = row.len() / B;
    let Columns { quants, scales, .. } = q8_columns(tokens, n);
    macro_rules! add_block {
        ($acc:ident, $b:expr, $block:expr) => {
            prefetch_ahead(row, $b * B, B);
            let (d, qx) = decode($block);
            // The multiply takes unsigned bytes on one side: use |x| and move x's sign to y.
            let abs_x = _mm256_sign_epi8(qx, qx);
            for t in 0..T {
                let qy = _mm256_sign_epi8(load_i8x32(&quants[t][$b]), qx);
                let products = _mm256_cvtepi32_ps(dot_u8_i8(abs_x, qy));
                let scale = _mm256_set1_ps(d * scales[t][$b]);
                $acc[t] = _mm256_fmadd_ps(scale, products, $acc[t]);
            }
        };
    }
    let (mut even, mut odd) = (zeros::<T>(), zeros::<T>());
    even_odd_blocks!(row, B, even, odd, add_block);
    hsums(std::array::from_fn(|t| _mm256_add_ps(even[t], odd[t])))
}

/// The tile loop of the formats whose 32-value blocks decode to a scale, a min and values in
/// 0..32 (Q4_1, Q5_1): `decode(block) = (d, m, values)`, and a block contributes
/// `d * dy * Σ values * qy + m * (dy * Σ qy)`. `VNNI` takes the integer dot products with
/// AVX-512 VNNI's `vpdpbusd` (see [`dot_u8_i8_vnni`]), which sums the same products exactly.
///
/// A tile of one group of tokens (see [`Q8Row::group`]) goes
/// through [`unsigned_blocks_group`]: the same operations in the same order, so every
/// token's result is the same bits whichever way it is computed.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
pub(super) fn unsigned_blocks_tile<const B: usize, const T: usize, const VNNI: bool>(
    row: &[u8],
    tokens: &[Q8Row<'_>; T],
    decode: impl Fn(&[u8]) -> (f32, f32, __m256i),
) -> [f32; T] {
    let n = row.len() / B;
    if let Some(group) = whole_group(tokens, n) {
        let sums = unsigned_blocks_group::<B, VNNI>(row, group, decode);
        let mut out = [0.0; T];
        out.copy_from_slice(&sums[..T]);
        return out;
    }
    let Columns {
        quants,
        scales,
        sums,
    } = q8_columns(tokens, n);
    let mut min_terms = [0.0_f32; T];
    macro_rules! add_block {
        ($acc:ident, $b:expr, $block:expr) => {
            prefetch_ahead(row, $b * B, B);
            let (d, m, qx) = decode($block);
            for t in 0..T {
                let products = _mm256_cvtepi32_ps(dot_u8_i8_with::<VNNI>(qx, &quants[t][$b]));
                let scale = _mm256_set1_ps(d * scales[t][$b]);
                $acc[t] = _mm256_fmadd_ps(scale, products, $acc[t]);
                min_terms[t] += m * sums[t][$b];
            }
        };
    }
    let (mut even, mut odd) = (zeros::<T>(), zeros::<T>());
    even_odd_blocks!(row, B, even, odd, add_block);
    let sums = hsums::<T>(std::array::from_fn(|t| _mm256_add_ps(even[t], odd[t])));
    std::array::from_fn(|t| sums[t] + min_terms[t])
}

/// The quants, and the group's scales and sums cut to `n` blocks, of a tile that is one
/// whole group of tokens in lane order; `None` for any other tile.
#[inline(always)]
fn whole_group<'a, const T: usize>(tokens: &[Q8Row<'a>; T], n: usize) -> Option<GroupColumns<'a>> {
    if T != GROUP {
        return None;
    }
    let first = tokens[0].group?;
    let mut quants = [&[][..]; GROUP];
    for (t, token) in tokens.iter().enumerate() {
        let group = token.group?;
        let same = std::ptr::eq(group.scales, first.scales) && group.lane == t;
        if !same {
            return None;
        }
        quants[t] = token.quants.get(..n)?;
    }
    Some(GroupColumns {
        quants,
        scales: first.scales.get(..n)?,
        sums: first.scaled_sums.get(..n)?,
    })
}

/// A whole group's activations, each cut to a row's block count.
struct GroupColumns<'a> {
    quants: [&'a [[i8; 32]]; GROUP],
    scales: &'a [[f32; GROUP]],
    sums: &'a [[f32; GROUP]],
}

/// [`unsigned_blocks_tile`] of one whole group: a block's `d * dy` for the group's tokens
/// come from one multiply and its min terms from one multiply and one add, where the
/// token-by-token loop takes one multiply (and a broadcast) for each token and each term.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
fn unsigned_blocks_group<const B: usize, const VNNI: bool>(
    row: &[u8],
    group: GroupColumns<'_>,
    decode: impl Fn(&[u8]) -> (f32, f32, __m256i),
) -> [f32; GROUP] {
    let GroupColumns {
        quants,
        scales,
        sums,
    } = group;
    let mut min_terms = _mm_setzero_ps();
    macro_rules! add_block {
        ($acc:ident, $b:expr, $block:expr) => {
            prefetch_ahead(row, $b * B, B);
            let (d, m, qx) = decode($block);
            let group_scales = _mm_mul_ps(_mm_set1_ps(d), load_f32x4(&scales[$b]));
            // `min_terms[t] += m * sums[t][b]`, each lane rounded as the scalar loop rounds.
            let terms = _mm_mul_ps(_mm_set1_ps(m), load_f32x4(&sums[$b]));
            min_terms = _mm_add_ps(min_terms, terms);
            if VNNI {
                let mut scales = [0.0; GROUP];
                // SAFETY: `scales` is the 4 floats the unaligned store writes.
                unsafe { _mm_storeu_ps(scales.as_mut_ptr(), group_scales) };
                // SAFETY: the kernels take `VNNI` only where `vnni_detected` held; `b` is
                // below the `n` blocks every token's quants were cut to.
                unsafe { group_step_vnni(&mut $acc, qx, &quants, $b, &scales) };
            } else {
                let group_scales = _mm256_set_m128(group_scales, group_scales);
                for t in 0..GROUP {
                    let products = _mm256_cvtepi32_ps(dot_u8_i8(qx, load_i8x32(&quants[t][$b])));
                    let index = _mm256_set1_epi32(t as i32);
                    let scale = _mm256_permutevar8x32_ps(group_scales, index);
                    $acc[t] = _mm256_fmadd_ps(scale, products, $acc[t]);
                }
            }
        };
    }
    let (mut even, mut odd) = (zeros::<GROUP>(), zeros::<GROUP>());
    even_odd_blocks!(row, B, even, odd, add_block);
    let mut min_lanes = [0.0; GROUP];
    // SAFETY: `min_lanes` is the 4 floats the unaligned store writes.
    unsafe { _mm_storeu_ps(min_lanes.as_mut_ptr(), min_terms) };
    // Written out: `map` and `from_fn` here were left as calls, a tenth of prefill's time.
    let [e0, e1, e2, e3] = even;
    let [o0, o1, o2, o3] = odd;
    [
        hsum_f32x8(_mm256_add_ps(e0, o0)) + min_lanes[0],
        hsum_f32x8(_mm256_add_ps(e1, o1)) + min_lanes[1],
        hsum_f32x8(_mm256_add_ps(e2, o2)) + min_lanes[2],
        hsum_f32x8(_mm256_add_ps(e3, o3)) + min_lanes[3],
    ]
}

/// For each token `t` of a group, `acc[t] += scales[t] * (x · quants[t][b])` (the dot
/// product [`dot_u8_i8_vnni`]'s, converted to f32, the step one fused multiply-add as in
/// the AVX2 loop): four instructions a token, the scale broadcast from memory by the
/// multiply-add itself, where intrinsics take six or seven. In assembly for the AVX-512
/// forms.
///
/// # Safety
/// The CPU must have AVX-512 VNNI and VL ([`vnni_detected`]), and `b` must be below every
/// `quants[t].len()`.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn group_step_vnni(
    acc: &mut [__m256; GROUP],
    x: __m256i,
    quants: &[&[[i8; 32]]; GROUP],
    b: usize,
    scales: &[f32; GROUP],
) {
    debug_assert!(quants.iter().all(|quants| b < quants.len()));
    let [a0, a1, a2, a3] = acc;
    // SAFETY: each token's block `b` is the 32 quants `vpdpbusd` reads (the caller vouches
    // for `b`), `scales` the 4 floats the multiply-adds read; the caller vouches for the
    // CPU.
    unsafe {
        std::arch::asm!(
            "vpxor {t}, {t}, {t}",
            "vpdpbusd {t}, {x}, ymmword ptr [{q0} + {offset}]",
            "vcvtdq2ps {t}, {t}",
            "vfmadd231ps {a0}, {t}, dword ptr [{s}]{{1to8}}",
            "vpxor {u}, {u}, {u}",
            "vpdpbusd {u}, {x}, ymmword ptr [{q1} + {offset}]",
            "vcvtdq2ps {u}, {u}",
            "vfmadd231ps {a1}, {u}, dword ptr [{s} + 4]{{1to8}}",
            "vpxor {t}, {t}, {t}",
            "vpdpbusd {t}, {x}, ymmword ptr [{q2} + {offset}]",
            "vcvtdq2ps {t}, {t}",
            "vfmadd231ps {a2}, {t}, dword ptr [{s} + 8]{{1to8}}",
            "vpxor {u}, {u}, {u}",
            "vpdpbusd {u}, {x}, ymmword ptr [{q3} + {offset}]",
            "vcvtdq2ps {u}, {u}",
            "vfmadd231ps {a3}, {u}, dword ptr [{s} + 12]{{1to8}}",
            a0 = inout(ymm_reg) *a0,
            a1 = inout(ymm_reg) *a1,
            a2 = inout(ymm_reg) *a2,
            a3 = inout(ymm_reg) *a3,
            x = in(ymm_reg) x,
            q0 = in(reg) quants[0].as_ptr(),
            q1 = in(reg) quants[1].as_ptr(),
            q2 = in(reg) quants[2].as_ptr(),
            q3 = in(reg) quants[3].as_ptr(),
            offset = in(reg) b * 32,
            s = in(reg) scales.as_ptr(),
            t = out(ymm_reg) _,
            u = out(ymm_reg) _,
            options(pure, readonly, nostack, preserves_flags),
        );
    }
}

/// 4 f32 from `values`.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
fn load_f32x4(values: &[f32; 4]) -> __m128 {
    // SAFETY: `values` is the 16 bytes the unaligned load reads.
    unsafe { _mm_loadu_ps(values.as_ptr()) }
}

/// [`dot_u8_i8`] of `x` with the 32 quants `y`, through `vpdpbusd` when `VNNI`.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
pub(super) fn dot_u8_i8_with<const VNNI: bool>(x: __m256i, y: &[i8; 32]) -> __m256i {
    if VNNI {
        // SAFETY: the kernels take `VNNI` only where `vnni_detected` held.
        unsafe { dot_u8_i8_vnni(x, y) }
    } else {
        // SAFETY: `y` is the 32 bytes the unaligned load reads.
        dot_u8_i8(x, unsafe { _mm256_loadu_si256(y.as_ptr().cast()) })
    }
}

/// [`dot_u8_i8`] with AVX-512 VNNI's 256-bit `vpdpbusd`: each i32 lane the exact sum of its 4
/// products, which the AVX2 pair of multiplies also gives wherever no i16 pair saturates
/// (the kernels' unsigned values stay below 32, so none does). In assembly since the
/// AVX-512 intrinsics are newer than this crate's minimum Rust.
///
/// # Safety
/// The CPU must have AVX-512 VNNI and VL ([`vnni_detected`]).
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
pub(super) unsafe fn dot_u8_i8_vnni(x: __m256i, y: &[i8; 32]) -> __m256i {
    let mut sums = _mm256_setzero_si256();
    // SAFETY: `y` is the 32 bytes the instruction reads; the caller vouches for the CPU.
    unsafe {
        std::arch::asm!(
            "vpdpbusd {sums}, {x}, ymmword ptr [{y}]",
            sums = inout(ymm_reg) sums,
            x = in(ymm_reg) x,
            y = in(reg) y.as_ptr(),
            options(pure, readonly, nostack, preserves_flags),
        );
    }
    sums
}

/// Whether this CPU runs [`dot_u8_i8_vnni`].
pub(super) fn vnni_detected() -> bool {
    is_x86_feature_detected!("avx512vnni") && is_x86_feature_detected!("avx512vl")
}

/// A 16-entry byte table in both 128-bit lanes, for `_mm256_shuffle_epi8` look-ups by
/// nibble.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
pub(super) fn look_up_levels(levels: &[i8; 16]) -> __m256i {
    _mm256_broadcastsi128_si256(load_i8x16(levels))
}

/// Lane `index` (0..8) of the 8 i16 that `v` holds in each 128-bit half, in all 16 lanes.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
pub(super) fn broadcast_i16(v: __m256i, index: usize) -> __m256i {
    let byte = 2 * index as i16;
    _mm256_shuffle_epi8(v, _mm256_set1_epi16(((byte + 1) << 8) | byte))
}

/// A Q4_K or Q5_K super-block's 8 group scales as i16 in both 128-bit halves, and its 8 mins
/// as i16.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
pub(super) fn k4_scales_and_mins(packed: &[u8]) -> (__m256i, __m128i) {
    let [w0, w1, w2, w3] = super::k_scales::k4_scale_words(packed).map(|w| w as i32);
    let both = _mm256_cvtepu8_epi16(_mm_set_epi32(w3, w2, w1, w0));
    let scales = _mm256_broadcastsi128_si256(_mm256_castsi256_si128(both));
    (scales, _mm256_extracti128_si256::<1>(both))
}

/// `m_j * Σ qy` for the 8 groups of 32 of a Q4_K or Q5_K super-block, in 4 lanes, from the
/// activations' 16 group sums of 16.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
pub(super) fn k4_min_terms(mins: __m128i, group_sums: &[i16; 16]) -> __m128 {
    let sums16 = load_i16x16(group_sums);
    let sums32 = _mm_hadd_epi16(
        _mm256_castsi256_si128(sums16),
        _mm256_extracti128_si256::<1>(sums16),
    );
    _mm_cvtepi32_ps(_mm_madd_epi16(mins, sums32))
}

/// Each accumulator's sum minus its min terms.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
pub(super) fn sums_minus_mins<const T: usize>(acc: [__m256; T], mins: [__m128; T]) -> [f32; T] {
    std::array::from_fn(|t| hsum_f32x8(acc[t]) - hsum_f32x4(mins[t]))
}

/// For each 128-bit lane of a 32-value chunk, the i16 scale of its group of 16: groups
/// `group` and `group + 1` of the 16 i8 `scales`.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
pub(super) fn group_pair_scales(scales: __m128i, group: usize) -> __m256i {
    let pick = _mm_set_epi64x(
        0x0101_0101_0101_0101 * (group as i64 + 1),
        0x0101_0101_0101_0101 * group as i64,
    );
    _mm256_cvtepi8_epi16(_mm_shuffle_epi8(scales, pick))
}
