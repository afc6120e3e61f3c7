//! Integer matrix-vector products over Q8 activations, for decode and small batches
//! (`kernels/matvec_q8.hip`): the CPU's method, at a fraction of the f32 kernel's cost per
//! weight byte.

use super::super::safe::{
    Device, DeviceBuffer, Function, KernelArgs, LaunchConfig, Module, Stream,
};
use super::fused_product::{FusedOperands, LeadingMatrix, ProductOutput, SecondMatrix};
use super::weights::{DeviceMatrix, WeightFormat, formats_of};
use super::{GpuOps, MAX_GRID_X, check_buffer, product, to_u32};
use crate::error::{Error, Result};
use crate::tensor::GgmlType;

/// Threads per block: one warp per output row (see `matvec.rs`); the decode kernels are
/// compiled for this size (RF_MMVQ_THREADS in kernels/matvec_q8.hip).
pub(super) const THREADS: u32 = 128;

/// Threads per block of the residual product that prepares the next norm, compiled for
/// this size (RF_ADD_NORM_THREADS): the warps of a block share one group's 32 rows.
const ADD_NORM_THREADS: u32 = 1024;

/// Values per activation group (one scale each).
pub const Q8_GROUP: usize = 32;

/// The most tokens one launch multiplies (`RF_MMVQ_MAX_TOKENS`).
pub const MAX_Q8_TOKENS: usize = 8;

/// The weight types with an integer kernel, with their kernel-name suffixes; those with
/// split rows have a kernel for that layout too ([`formats_of`]).
const Q8_TYPES: [(GgmlType, &str); 7] = [
    (GgmlType::Q4_0, "q4_0"),
    (GgmlType::Q4_1, "q4_1"),
    (GgmlType::Q5_0, "q5_0"),
    (GgmlType::Q5_1, "q5_1"),
    (GgmlType::Q8_0, "q8_0"),
    (GgmlType::Q4K, "q4_k"),
    (GgmlType::Q6K, "q6_k"),
];

/// The weight types whose products take Q8 activations on the GPU (for up to
/// [`MAX_Q8_TOKENS`] tokens), as the CPU's do, in every layout they are uploaded in;
/// other types multiply f32 activations.
pub fn integer_product_types() -> impl Iterator<Item = GgmlType> {
    Q8_TYPES.iter().map(|&(dtype, _)| dtype)
}

/// Activations quantized for the integer kernels: per token `width` int8 quants, and per
/// group of 32 values its step and scaled sum (`kernels/q8_activations.h`).
pub struct Q8Buffers {
    pub quants: DeviceBuffer<i8>,
    pub scales: DeviceBuffer<f32>,
    pub sums: DeviceBuffer<f32>,
}

impl Q8Buffers {
    /// Room for `n_values` values, rounded up to whole groups of 32.
    pub fn new(device: &Device, n_values: usize) -> Result<Q8Buffers> {
        let groups = n_values.div_ceil(Q8_GROUP);
        Ok(Q8Buffers {
            quants: device.alloc(groups * Q8_GROUP)?,
            scales: device.alloc(groups)?,
            sums: device.alloc(groups)?,
        })
    }

    pub fn size_bytes(&self) -> usize {
        self.quants.size_bytes() + self.scales.size_bytes() + self.sums.size_bytes()
    }

    /// Fails unless `n_values` values fit.
    pub(super) fn check(&self, what: &str, n_values: usize, stream: &Stream) -> Result<()> {
        if !n_values.is_multiple_of(Q8_GROUP) {
            return Err(Error::InvalidArgument(format!(
                "{what}: {n_values} values are not whole groups of {Q8_GROUP}"
            )));
        }
        check_buffer(what, &self.quants, n_values, stream)?;
        check_buffer(what, &self.scales, n_values / Q8_GROUP, stream)?;
        check_buffer(what, &self.sums, n_values / Q8_GROUP, stream)
    }
}

/// One token's residual stream `v` after a residual product, prepared for the RMS norm
/// that follows it (`rf_mmvq1_add_norm_*` writes it): `v * weight` as Q8 activations and,
/// per group of 32 values, the sum of squares of `v`. The products that read it finish
/// the norm ([`NormScale`]): its scale is the same for every value of the token.
pub struct UnscaledNorm {
    pub q8: Q8Buffers,
    pub square_sums: DeviceBuffer<f64>,
}

impl UnscaledNorm {
    /// Room for a stream of `width` values (a multiple of 32).
    pub fn new(device: &Device, width: usize) -> Result<UnscaledNorm> {
        Ok(UnscaledNorm {
            q8: Q8Buffers::new(device, width)?,
            square_sums: device.alloc(width.div_ceil(Q8_GROUP))?,
        })
    }

    pub fn size_bytes(&self) -> usize {
        self.q8.size_bytes() + self.square_sums.size_bytes()
    }

    /// How the products reading these activations finish a norm of epsilon `eps`.
    pub fn scale(&self, eps: f32) -> NormScale<'_> {
        NormScale {
            square_sums: &self.square_sums,
            eps,
        }
    }
}

/// The input of [`GpuOps::matvec_q8_add_norm`]: Q8 activations, or f32 ones that each
/// block quantizes for itself into shared memory (as [`GpuOps::quantize_q8`] would, so to
/// the same result) instead of a launch of its own before the product.
pub enum AddNormInput<'a> {
    Q8(&'a Q8Buffers),
    F32(&'a DeviceBuffer<f32>),
}

/// The weight bytes from which a residual product, or a one-token F16 product
/// (`rf_matvec1_f16x8*`), lets the next kernel launch before it waits for its input: the
/// next kernel's blocks then take their places, and load their first weights, while this
/// product streams. That pays where a product streams for long (H100, tg128: 1B-class
/// Q4_0 +7.4%, Q8_0 +3.4%, Q4_K_M +1.6%, F16 +0.8%) and cost the small models' short
/// products (SmolLM2's, under 1 MiB: up to 1.3%; docs/performance.md).
const EARLY_LAUNCH_BYTES: usize = 2 << 20;

/// Whether a product of `w` lets the next kernel launch before it waits
/// ([`EARLY_LAUNCH_BYTES`]).
pub(super) fn lets_next_launch_first(w: &DeviceMatrix<'_>) -> bool {
    w.n_rows.saturating_mul(w.row_bytes()) >= EARLY_LAUNCH_BYTES
}

/// The widest f32 input a block of `rf_mmvq1_add_norm_*` quantizes for itself: two values
/// a thread. Every block quantizes the whole input, which a launch of its own spreads over
/// the GPU, so staging pays only for narrow inputs (H200, tg128: SmolLM2's 1,536-wide down
/// product +5%; the 1B's 8,192-wide and the 8B's 14,336-wide -7%). Staged, it takes 5/4
/// bytes a value of shared memory (2.5 KiB), far within what every GPU gives a block.
const MAX_STAGED_VALUES: usize = 2 * ADD_NORM_THREADS as usize;

/// What turns an [`UnscaledNorm`]'s products into products of the normalised vector:
/// its groups' sums of squares and the norm's epsilon.
#[derive(Clone, Copy)]
pub struct NormScale<'a> {
    pub square_sums: &'a DeviceBuffer<f64>,
    pub eps: f32,
}

/// A weight format's instances: for up to [`MAX_Q8_TOKENS`] tokens, for one, and the
/// one-token residual product that prepares the next norm, from Q8 or from f32 input.
struct FormatKernels {
    format: WeightFormat,
    tokens: Function,
    single: Function,
    add_norm: Function,
    add_norm_f32: Function,
}

pub(super) struct MatvecQ8Kernels {
    by_format: Vec<FormatKernels>,
    quantize: Function,
    rows_per_block: u32,
}

impl MatvecQ8Kernels {
    /// `warp_size` is 32 or 64 (checked by the caller).
    pub(super) fn load(module: &Module, warp_size: u32) -> Result<MatvecQ8Kernels> {
        let by_format = formats_of(&Q8_TYPES)
            .map(|(format, suffix)| {
                Ok(FormatKernels {
                    format,
                    tokens: module.function(&format!("rf_mmvq_{suffix}"))?,
                    single: module.function(&format!("rf_mmvq1_{suffix}"))?,
                    add_norm: module.function(&format!("rf_mmvq1_add_norm_{suffix}"))?,
                    add_norm_f32: module.function(&format!("rf_mmvq1_add_norm_f32_{suffix}"))?,
                })
            })
            .collect::<Result<_>>()?;
        Ok(MatvecQ8Kernels {
            by_format,
            quantize: module.function("rf_quantize_q8_f32")?,
            rows_per_block: THREADS / warp_size,
        })
    }

    fn kernels(&self, format: WeightFormat) -> Option<&FormatKernels> {
        self.by_format.iter().find(|k| k.format == format)
    }

    /// The kernel for `format` and `n_tokens` (at most [`MAX_Q8_TOKENS`]).
    fn for_format(&self, format: WeightFormat, n_tokens: usize) -> Option<&Function> {
        let kernels = self.kernels(format)?;
        Some(if n_tokens == 1 {
            &kernels.single
        } else {
            &kernels.tokens
        })
    }
}

impl GpuOps {
    /// Whether [`GpuOps::matvec_q8`] multiplies `w` with `n_tokens` tokens.
    pub fn has_q8_matvec(&self, w: &DeviceMatrix<'_>, n_tokens: usize) -> bool {
        n_tokens <= MAX_Q8_TOKENS
            && w.n_cols.is_multiple_of(Q8_GROUP)
            && self.matvec_q8.for_format(w.format(), n_tokens).is_some()
    }

    /// The first `n_values` values of `x` (whole groups of 32) as Q8 activations.
    pub fn quantize_q8(
        &self,
        stream: &Stream,
        x: &DeviceBuffer<f32>,
        n_values: usize,
        out: &mut Q8Buffers,
    ) -> Result<()> {
        check_buffer("quantize_q8 input", x, n_values, stream)?;
        out.check("quantize_q8 output", n_values, stream)?;
        if n_values == 0 {
            return Ok(());
        }
        let blocks = (n_values as u64).div_ceil(u64::from(THREADS));
        let blocks = u32::try_from(blocks)
            .ok()
            .filter(|&b| b <= MAX_GRID_X)
            .ok_or_else(|| Error::InvalidArgument(format!("quantize_q8 of {n_values} values")))?;
        let mut args = KernelArgs::new();
        args.push(x)
            .push(&mut out.quants)
            .push(&mut out.scales)
            .push(&mut out.sums)
            .push(n_values as u64);
        // SAFETY: the arguments match rf_quantize_q8_f32(x, q, d, s, n_values); x holds
        // n_values floats, the outputs n_values quants and n_values / 32 groups (checked);
        // n_values and THREADS are multiples of 32, so threads past the end leave in whole
        // groups and every group's shuffles see all 32 of its lanes.
        unsafe {
            self.matvec_q8
                .quantize
                .launch(stream, &LaunchConfig::linear(blocks, THREADS), &args)
        }
    }

    /// `y[t][r] (=, +=) w[r] · x[t]` for the first `n_tokens` tokens of the Q8 activations
    /// `x` (`[n_tokens, w.n_cols]`), `y` being `[n_tokens, w.n_rows]`; with a second matrix
    /// of the same shape, its product too, or the SwiGLU of the pair (see [`ProductOutput`]).
    /// Only for matrices [`GpuOps::has_q8_matvec`] accepts.
    #[allow(clippy::too_many_arguments)]
    pub fn matvec_q8(
        &self,
        stream: &Stream,
        w: &DeviceMatrix<'_>,
        second: Option<SecondMatrix<'_, '_>>,
        x: &Q8Buffers,
        n_tokens: usize,
        y: &mut DeviceBuffer<f32>,
        output: ProductOutput,
    ) -> Result<()> {
        self.mmvq(stream, None, w, second, x, None, n_tokens, y, output)
    }

    /// Whether [`GpuOps::matvec_q8_add_norm`] takes `w`.
    pub fn has_q8_add_norm(&self, w: &DeviceMatrix<'_>) -> bool {
        self.has_q8_matvec(w, 1) && w.n_rows.is_multiple_of(Q8_GROUP)
    }

    /// Whether [`GpuOps::matvec_q8_add_norm`] takes an f32 input ([`AddNormInput::F32`])
    /// for `w`: whether `w.n_cols` is narrow enough for each block to quantize it.
    pub fn add_norm_stages_f32(&self, w: &DeviceMatrix<'_>) -> bool {
        w.n_cols <= MAX_STAGED_VALUES
    }

    /// One token's residual product that prepares the next RMS norm: `y += w · x` (x Q8 or
    /// f32, see [`AddNormInput`]), then
    /// `out` = the new `y` times `norm` as an [`UnscaledNorm`] (`y` and `norm` of
    /// `w.n_rows` values, a multiple of 32). Only for matrices
    /// [`GpuOps::has_q8_add_norm`] accepts.
    pub fn matvec_q8_add_norm(
        &self,
        stream: &Stream,
        w: &DeviceMatrix<'_>,
        x: AddNormInput<'_>,
        y: &mut DeviceBuffer<f32>,
        norm: &DeviceBuffer<f32>,
        out: &mut UnscaledNorm,
    ) -> Result<()> {
        w.check()?;
        let function = self
            .matvec_q8
            .kernels(w.format())
            .filter(|_| self.has_q8_add_norm(w))
            .ok_or_else(|| {
                Error::Unsupported(format!(
                    "a residual product with the next norm over a {} {}x{} matrix",
                    w.dtype, w.n_rows, w.n_cols
                ))
            })?;
        check_buffer("matvec_q8_add_norm weights", w.data, 0, stream)?;
        let what = "matvec_q8_add_norm input";
        let (kernel, shared_mem_bytes) = match x {
            AddNormInput::Q8(q8) => {
                q8.check(what, w.n_cols, stream)?;
                (&function.add_norm, 0)
            }
            AddNormInput::F32(x) => {
                check_buffer(what, x, w.n_cols, stream)?;
                if !self.add_norm_stages_f32(w) {
                    return Err(Error::InvalidArgument(format!(
                        "{what}: {} f32 values, more than the {MAX_STAGED_VALUES} a block \
                         quantizes for itself",
                        w.n_cols
                    )));
                }
                (&function.add_norm_f32, staged_bytes(w.n_cols))
            }
        };
        check_buffer("matvec_q8_add_norm residual", y, w.n_rows, stream)?;
        check_buffer("matvec_q8_add_norm norm", norm, w.n_rows, stream)?;
        out.q8
            .check("matvec_q8_add_norm output", w.n_rows, stream)?;
        let groups = w.n_rows / Q8_GROUP;
        check_buffer("matvec_q8_add_norm sums", &out.square_sums, groups, stream)?;
        if groups == 0 {
            return Ok(());
        }
        let blocks = u32::try_from(groups)
            .ok()
            .filter(|&b| b <= MAX_GRID_X)
            .ok_or_else(|| {
                Error::InvalidArgument(format!("matvec_q8_add_norm of {} rows", w.n_rows))
            })?;
        let mut args = KernelArgs::new();
        args.push(w.data).push(w.row_bytes() as u64);
        match x {
            AddNormInput::Q8(q8) => args
                .push(&q8.quants)
                .push(&q8.scales)
                .push(&q8.sums)
                .push(0u64),
            AddNormInput::F32(x) => args.push(0u64).push(0u64).push(0u64).push(x),
        };
        args.push(&mut *y)
            .push(to_u32("matvec_q8_add_norm columns", w.n_cols, u32::MAX)?)
            .push(norm)
            .push(&mut out.q8.quants)
            .push(&mut out.q8.scales)
            .push(&mut out.q8.sums)
            .push(&mut out.square_sums);
        args.push(u32::from(lets_next_launch_first(w)));
        // SAFETY: the arguments match rf_mmvq1_add_norm_*'s and rf_mmvq1_add_norm_f32_*'s
        // (w, row_bytes, xq, xd, xs, x_f32, y, n_cols, norm_w, oq, od, os, square_sums,
        // let_next_launch_first); w holds n_rows rows of row_bytes, the input either n_cols
        // quants and their groups (x_f32 null, never read by the first) or n_cols floats
        // (the quants null, never read by the second, which gets n_cols * 5 / 4 bytes of
        // shared memory to stage them), y and norm n_rows floats, out n_rows quants and
        // n_rows / 32 groups (all checked); n_rows and n_cols are whole groups, and each of
        // the n_rows / 32 blocks of ADD_NORM_THREADS (a multiple of the warp size) computes
        // one group's 32 rows.
        unsafe {
            kernel.launch(
                stream,
                &LaunchConfig {
                    shared_mem_bytes,
                    ..LaunchConfig::linear(blocks, ADD_NORM_THREADS)
                },
                &args,
            )
        }
    }

    #[allow(clippy::too_many_arguments)]
    pub(super) fn mmvq(
        &self,
        stream: &Stream,
        lead: Option<LeadingMatrix<'_, '_>>,
        w: &DeviceMatrix<'_>,
        second: Option<SecondMatrix<'_, '_>>,
        x: &Q8Buffers,
        norm: Option<NormScale<'_>>,
        n_tokens: usize,
        y: &mut DeviceBuffer<f32>,
        output: ProductOutput,
    ) -> Result<()> {
        w.check()?;
        let function = self
            .matvec_q8
            .for_format(w.format(), n_tokens)
            .filter(|_| self.has_q8_matvec(w, n_tokens))
            .ok_or_else(|| {
                Error::Unsupported(format!(
                    "integer GPU matmul of {} {} columns with {n_tokens} tokens",
                    w.dtype, w.n_cols
                ))
            })?;
        check_buffer("matvec_q8 weights", w.data, 0, stream)?;
        x.check(
            "matvec_q8 input",
            product("matvec_q8 input", &[n_tokens, w.n_cols])?,
            stream,
        )?;
        if let Some(norm) = norm {
            let groups = product("matvec_q8 norm", &[n_tokens, w.n_cols / Q8_GROUP])?;
            check_buffer("matvec_q8 norm sums", norm.square_sums, groups, stream)?;
        }
        let mut fused =
            FusedOperands::check("matvec_q8", w, y, lead, second, output, n_tokens, stream)?;
        if n_tokens == 0 {
            return Ok(());
        }
        let blocks = fused.blocks("matvec_q8", self.matvec_q8.rows_per_block)?;
        let mut args = KernelArgs::new();
        args.push(w.data);
        fused.push_second_weights(&mut args);
        args.push(w.row_bytes() as u64)
            .push(&x.quants)
            .push(&x.scales)
            .push(&x.sums)
            .push(&mut *y);
        fused.push_second_output(&mut args);
        args.push(fused.n_rows)
            .push(to_u32("matvec_q8 columns", w.n_cols, u32::MAX)?)
            .push(to_u32("matvec_q8 tokens", n_tokens, MAX_Q8_TOKENS as u32)?)
            .push(output as u32);
        fused.push_lead(&mut args);
        match norm {
            Some(norm) => args.push(norm.square_sums).push(norm.eps),
            None => args.push(0u64).push(0.0f32),
        };
        let config = LaunchConfig::linear(blocks, THREADS);
        // SAFETY: the arguments match rf_mmvq_*(w, w_b, row_bytes, xq, xd, xs, y, y_b,
        // n_rows, n_cols, n_tokens, mode, w_lead, y_lead, n_lead, square_sums, eps); a null
        // square_sums is no norm, else it holds n_tokens * n_cols / 32 sums (checked); w
        // (and w_b, of the same shape) hold n_rows rows of row_bytes, x n_tokens * n_cols
        // quants and their groups, y (and y_b when it is written) n_tokens * n_rows floats
        // (all checked); a null w_b is read as "one matrix" and a null y_b is never written
        // (Add and Swiglu write y only); a leading matrix (n_lead 0 and null pointers
        // without one) has the type and width of w, so rows of row_bytes, and y_lead
        // n_tokens * n_lead floats (checked by FusedOperands::check); n_cols is whole
        // groups; THREADS is a multiple of the warp size and rows past n_lead + n_rows are
        // skipped by whole warps.
        unsafe { function.launch(stream, &config, &args) }
    }
}

/// Shared memory for `n_cols` (at most [`MAX_STAGED_VALUES`]) quantized values: the
/// quants, then a step and a sum a group.
fn staged_bytes(n_cols: usize) -> u32 {
    (n_cols + n_cols / Q8_GROUP * 8) as u32
}
