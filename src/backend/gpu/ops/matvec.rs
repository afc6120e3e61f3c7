//! Quantized matrix-vector and few-token matrix products `y = x · Wᵀ` with f32
//! accumulation (`kernels/matvec.hip`).

use super::super::safe::{DeviceBuffer, Function, KernelArgs, LaunchConfig, Module, Stream};
use super::fused_product::{FusedOperands, LeadingMatrix, ProductOutput, SecondMatrix};
use super::weights::{DeviceMatrix, KernelsByFormat};
use super::{GpuOps, MAX_GRID_X, check_buffer, product, to_u32};
use crate::error::{Error, Result};
use crate::tensor::GgmlType;

/// Threads per block: one warp per output row, so 8 rows per block on NVIDIA and 4 on AMD
/// CDNA. A multiple of both warp sizes, as the kernel's shuffles need whole warps. The
/// one-token F16 kernel is compiled for this size (RF_MATVEC_THREADS in kernels/matvec.hip).
const THREADS: u32 = 256;

pub(super) struct MatvecKernels {
    by_format: KernelsByFormat,
    /// F16 rows of whole 8-value pieces, read 16 bytes a lane.
    f16x8: Function,
    /// The same for one token (decode): fewer registers, its first weights read early.
    f16x8_one_token: Function,
    /// The one-token kernel with a row shared by several warps ([`f16_row_parts`]).
    f16x8_one_token_parts: Function,
    rows_per_block: u32,
}

impl MatvecKernels {
    /// `warp_size` is 32 or 64 (checked by the caller).
    pub(super) fn load(module: &Module, warp_size: u32) -> Result<MatvecKernels> {
        Ok(MatvecKernels {
            by_format: KernelsByFormat::load(module, "rf_matvec")?,
            f16x8: module.function("rf_matvec_f16x8")?,
            f16x8_one_token: module.function("rf_matvec1_f16x8")?,
            f16x8_one_token_parts: module.function("rf_matvec1_f16x8_parts")?,
            rows_per_block: THREADS / warp_size,
        })
    }
}

impl GpuOps {
    /// `y[t][r] = w[r] · x[t]` for the first `n_tokens` tokens: `x` is `[n_tokens,
    /// w.n_cols]` and `y` `[n_tokens, w.n_rows]`, f32 row-major. Weights are dequantized
    /// exactly as [`crate::tensor::dequantize_row`] does and multiplied with the f32
    /// activations as they are (no 8-bit quantization of `x`), summed in f32.
    pub fn matvec(
        &self,
        stream: &Stream,
        w: &DeviceMatrix<'_>,
        x: &DeviceBuffer<f32>,
        n_tokens: usize,
        y: &mut DeviceBuffer<f32>,
    ) -> Result<()> {
        w.check()?;
        if n_tokens == 1 && self.has_f16_one_token(w) {
            return self.matvec1_f16(stream, None, w, None, x, y, ProductOutput::Store);
        }
        let function = if w.dtype == GgmlType::F16 && w.n_cols.is_multiple_of(8) {
            &self.matvec.f16x8
        } else {
            self.matvec.by_format.for_matrix(w, "GPU matmul")?
        };
        check_buffer("matvec weights", w.data, 0, stream)?;
        check_buffer(
            "matvec input",
            x,
            product("matvec input", &[n_tokens, w.n_cols])?,
            stream,
        )?;
        check_buffer(
            "matvec output",
            y,
            product("matvec output", &[n_tokens, w.n_rows])?,
            stream,
        )?;
        if n_tokens == 0 {
            return Ok(());
        }
        let n_rows = to_u32("matvec rows", w.n_rows, u32::MAX)?;
        let blocks = n_rows.div_ceil(self.matvec.rows_per_block);
        if blocks > MAX_GRID_X {
            return Err(Error::InvalidArgument(format!(
                "matvec of {n_rows} rows: too many"
            )));
        }
        let mut args = KernelArgs::new();
        args.push(w.data)
            .push(w.row_bytes() as u64)
            .push(x)
            .push(&mut *y)
            .push(n_rows)
            .push(to_u32("matvec columns", w.n_cols, u32::MAX)?)
            .push(to_u32("matvec tokens", n_tokens, u32::MAX)?);
        let config = LaunchConfig::linear(blocks, THREADS);
        // SAFETY: the arguments match rf_matvec_*(w, row_bytes, x, y, n_rows, n_cols,
        // n_tokens) (rf_matvec_f16x8 only for F16 rows of whole 8-value pieces, so every
        // row and every token's activations start 16-byte aligned in allocations that
        // are); w holds n_rows rows of row_bytes, x n_tokens * n_cols floats and y
        // n_tokens * n_rows (all checked); THREADS is a multiple of the warp size, so the
        // kernel's shuffles see whole warps; rows past n_rows are skipped by whole warps.
        unsafe { function.launch(stream, &config, &args) }
    }

    /// Whether [`GpuOps::matvec1_f16`] takes `w`: F16 rows of whole 8-value pieces.
    pub fn has_f16_one_token(&self, w: &DeviceMatrix<'_>) -> bool {
        w.dtype == GgmlType::F16 && w.n_cols.is_multiple_of(8)
    }

    /// One token's product with F16 weights, `y = w · x` with `x` `[w.n_cols]` f32, and
    /// what may ride in its launch (`fused_product.rs`): a second matrix, a leading one
    /// (its rows first, into its own output) and the output mode. Same products as
    /// [`GpuOps::matvec`]'s, in the same order for rows of under 4,096 values (longer ones
    /// are shared by several warps, `f16_row_parts`).
    #[allow(clippy::too_many_arguments)]
    pub fn matvec1_f16(
        &self,
        stream: &Stream,
        lead: Option<LeadingMatrix<'_, '_>>,
        w: &DeviceMatrix<'_>,
        second: Option<SecondMatrix<'_, '_>>,
        x: &DeviceBuffer<f32>,
        y: &mut DeviceBuffer<f32>,
        output: ProductOutput,
    ) -> Result<()> {
        w.check()?;
        if !self.has_f16_one_token(w) {
            return Err(Error::Unsupported(format!(
                "the one-token F16 product of a {} matrix of {} columns",
                w.dtype, w.n_cols
            )));
        }
        check_buffer("matvec1_f16 weights", w.data, 0, stream)?;
        check_buffer("matvec1_f16 input", x, w.n_cols, stream)?;
        let mut fused = FusedOperands::check("matvec1_f16", w, y, lead, second, output, 1, stream)?;
        let parts = f16_row_parts(w.n_cols);
        let warps_per_block = self.matvec.rows_per_block;
        let blocks = fused.blocks("matvec1_f16", warps_per_block / parts)?;
        let mut args = KernelArgs::new();
        args.push(w.data);
        fused.push_second_weights(&mut args);
        args.push(w.row_bytes() as u64).push(x).push(&mut *y);
        fused.push_second_output(&mut args);
        args.push(fused.n_rows)
            .push(to_u32("matvec1_f16 columns", w.n_cols, u32::MAX)?)
            .push(output as u32);
        fused.push_lead(&mut args);
        let function = if parts == 1 {
            &self.matvec.f16x8_one_token
        } else {
            args.push(parts);
            &self.matvec.f16x8_one_token_parts
        };
        let config = LaunchConfig::linear(blocks, THREADS);
        // SAFETY: the arguments match rf_matvec1_f16x8(w, w_b, row_bytes, x, y, y_b,
        // n_rows, n_cols, mode, w_lead, y_lead, n_lead), and with `parts` after them
        // rf_matvec1_f16x8_parts; w (and w_b, of the same shape and type) hold n_rows F16
        // rows of whole 8-value pieces, 16-byte aligned, x n_cols floats, y (and y_b when
        // it is written) n_rows floats (all checked); a null w_b is read as "one matrix" and
        // a null y_b is never written (Add and Swiglu write y only); a leading matrix
        // (n_lead 0 and null pointers without one) has the type and width of w, so rows of
        // row_bytes, and y_lead n_lead floats (FusedOperands::check); THREADS is the
        // kernel's block size, a multiple of the warp size, and rows past n_lead + n_rows
        // are skipped by whole warps; parts (2 or 4) divides the block's warps (8, or 4 of
        // 64 lanes), so a row's parts share a block.
        unsafe { function.launch(stream, &config, &args) }
    }
}

/// How many warps share one row of the one-token F16 product (`rf_matvec1_f16x8`): as many
/// as leave each lane of a 32-lane warp at least 8 of the row's 16-byte pieces, at most 4.
/// Chosen by the row's length alone, so a product gives the same bits whatever rides in its
/// launch.
fn f16_row_parts(n_cols: usize) -> u32 {
    match n_cols / 8 / 256 {
        0 | 1 => 1,
        2 | 3 => 2,
        _ => 4,
    }
}
