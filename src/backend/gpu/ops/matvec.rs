//! Quantized matrix-vector and few-token matrix products `y = x · Wᵀ` with f32
//! accumulation (`kernels/matvec.hip`).

use super::super::safe::{DeviceBuffer, Function, KernelArgs, LaunchConfig, Module, Stream};
use super::fused_product::{FusedOperands, LeadingMatrix, ProductOutput, SecondMatrix};
use super::matvec_q8::lets_next_launch_first;
use super::weights::{DeviceMatrix, KernelsByFormat};
use super::{GpuOps, MAX_GRID_X, check_buffer, product, to_u32};
use crate::error::{Error, Result};
use crate::tensor::GgmlType;

/// Threads per block: one warp per output row, so 8 rows per block on NVIDIA and 4 on AMD
/// CDNA. A multiple of both warp sizes, as the kernel's shuffles need whole warps. The
/// one-token F16 kernel is compiled for this size (RF_MATVEC_THREADS in kernels/matvec.hip).
const THREADS: u32 = 256;

/// `RF_OUT_ADD_NORM` (kernels/product_output.h): the one-token F16 kernel's residual add
/// that also writes the next norm's input.
const OUT_ADD_NORM: u32 = 3;

/// `RF_OUT_STORE_OWN_ROWS`: a store of two matrices with each row its own warp.
const OUT_STORE_OWN_ROWS: u32 = 4;

/// Blocks of the one-token F16 kernel an SM holds at once, as it is compiled
/// (RF_MATVEC1_BLOCKS_PER_SM).
const ONE_TOKEN_BLOCKS_PER_SM: u32 = 4;

pub(super) struct MatvecKernels {
    by_format: KernelsByFormat,
    /// F16 rows of whole 8-value pieces, read 16 bytes a lane.
    f16x8: Function,
    /// The same for one token (decode): fewer registers, its first weights read early.
    one_token: OneTokenKernels,
    /// The one-token kernels that finish a norm ([`StreamNorm`]).
    one_token_normed: OneTokenKernels,
    rows_per_block: u32,
}

/// The one-token F16 kernel with a warp a row, and with a row shared by several warps
/// ([`f16_row_parts`]).
struct OneTokenKernels {
    rows: Function,
    parts: Function,
}

impl OneTokenKernels {
    fn load(module: &Module, suffix: &str) -> Result<OneTokenKernels> {
        Ok(OneTokenKernels {
            rows: module.function(&format!("rf_matvec1_f16x8{suffix}"))?,
            parts: module.function(&format!("rf_matvec1_f16x8_parts{suffix}"))?,
        })
    }
}

impl MatvecKernels {
    /// `warp_size` is 32 or 64 (checked by the caller).
    pub(super) fn load(module: &Module, warp_size: u32) -> Result<MatvecKernels> {
        Ok(MatvecKernels {
            by_format: KernelsByFormat::load(module, "rf_matvec")?,
            f16x8: module.function("rf_matvec_f16x8")?,
            one_token: OneTokenKernels::load(module, "")?,
            one_token_normed: OneTokenKernels::load(module, "_normed")?,
            rows_per_block: THREADS / warp_size,
        })
    }
}

/// What turns one token's products of `v * weight`, the next norm's input as
/// [`GpuOps::matvec1_f16_add_norm`] writes it, into products of the normalised `v`: the
/// stream `v` itself, whose mean square the products work out, and the norm's epsilon.
#[derive(Clone, Copy)]
pub struct StreamNorm<'a> {
    pub stream: &'a DeviceBuffer<f32>,
    pub eps: f32,
}

/// The norm a one-token F16 launch takes part in: none, the one its products finish, or the
/// next one, whose input the residual product writes (`out` = the new stream times
/// `weights`).
enum OneTokenNorm<'a, 'b> {
    None,
    Finish(StreamNorm<'a>),
    Prepare {
        weights: &'a DeviceBuffer<f32>,
        out: &'b mut DeviceBuffer<f32>,
    },
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
            return self.matvec1_f16(stream, None, w, None, x, None, y, ProductOutput::Store);
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
    /// (its rows first, into its own output) and the output mode. With `norm`, `x` is a
    /// stream times a norm's weights ([`GpuOps::matvec1_f16_add_norm`]'s output) and the
    /// products are those of the normalised stream. Same products as [`GpuOps::matvec`]'s,
    /// in the same order for rows of under 4,096 values (longer ones are shared by several
    /// warps, `f16_row_parts`).
    #[allow(clippy::too_many_arguments)]
    pub fn matvec1_f16(
        &self,
        stream: &Stream,
        lead: Option<LeadingMatrix<'_, '_>>,
        w: &DeviceMatrix<'_>,
        second: Option<SecondMatrix<'_, '_>>,
        x: &DeviceBuffer<f32>,
        norm: Option<StreamNorm<'_>>,
        y: &mut DeviceBuffer<f32>,
        output: ProductOutput,
    ) -> Result<()> {
        let norm = norm.map_or(OneTokenNorm::None, OneTokenNorm::Finish);
        self.launch_matvec1_f16(stream, lead, w, second, x, norm, y, output)
    }

    /// One token's residual product that also prepares the next RMS norm: `y += w · x`,
    /// then `out` = the new `y` times `norm` (`y`, `norm` and `out` of `w.n_rows` values),
    /// which [`GpuOps::matvec1_f16`] reads with a [`StreamNorm`] of `y`: the norm needs no
    /// launch of its own.
    pub fn matvec1_f16_add_norm(
        &self,
        stream: &Stream,
        w: &DeviceMatrix<'_>,
        x: &DeviceBuffer<f32>,
        y: &mut DeviceBuffer<f32>,
        norm: &DeviceBuffer<f32>,
        out: &mut DeviceBuffer<f32>,
    ) -> Result<()> {
        let norm = OneTokenNorm::Prepare { weights: norm, out };
        self.launch_matvec1_f16(stream, None, w, None, x, norm, y, ProductOutput::Add)
    }

    #[allow(clippy::too_many_arguments)]
    fn launch_matvec1_f16(
        &self,
        stream: &Stream,
        lead: Option<LeadingMatrix<'_, '_>>,
        w: &DeviceMatrix<'_>,
        second: Option<SecondMatrix<'_, '_>>,
        x: &DeviceBuffer<f32>,
        mut norm: OneTokenNorm<'_, '_>,
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
        match &norm {
            OneTokenNorm::None => {}
            OneTokenNorm::Finish(norm) => {
                check_buffer("matvec1_f16 normed stream", norm.stream, w.n_cols, stream)?;
            }
            OneTokenNorm::Prepare { weights, out } => {
                check_buffer("matvec1_f16_add_norm weights", weights, w.n_rows, stream)?;
                check_buffer("matvec1_f16_add_norm output", out, w.n_rows, stream)?;
            }
        }
        let stores_two =
            output == ProductOutput::Store && second.as_ref().is_some_and(|s| s.y.is_some());
        let mut fused = FusedOperands::check("matvec1_f16", w, y, lead, second, output, 1, stream)?;
        let parts = f16_row_parts(w.n_cols);
        let warps_per_block = self.matvec.rows_per_block;
        // Two stored matrices (K and V) as rows of their own where one wave of blocks holds
        // every row of the launch: each warp then sums one row, and loads up to
        // RF_F16_EARLY_PIECES of its pieces before the wait where a pair's lane loads 3 of
        // each row (H100, tg128: 1B F16 +0.5% and +0.8%, SmolLM2 F16 +1.4% and +1.5%).
        // Past one wave the pair stays: there rows of their own would start the last ones
        // only as others end (the integer products' 8B Q+K+V lost 0.8% so). Whole rows
        // only (the parts kernel pairs).
        let own_rows = stores_two
            && parts == 1
            && fused.rows_with_second_rows()
                <= self.rows_in_one_wave(ONE_TOKEN_BLOCKS_PER_SM, warps_per_block);
        let blocks = if own_rows {
            fused.blocks_with_second_rows("matvec1_f16", warps_per_block)?
        } else {
            fused.blocks("matvec1_f16", warps_per_block / parts)?
        };
        let mut args = KernelArgs::new();
        args.push(w.data);
        fused.push_second_weights(&mut args);
        args.push(w.row_bytes() as u64).push(x).push(&mut *y);
        let mode = match &mut norm {
            OneTokenNorm::Prepare { out, .. } => {
                args.push(&mut **out);
                OUT_ADD_NORM
            }
            _ if own_rows => {
                fused.push_second_output(&mut args);
                OUT_STORE_OWN_ROWS
            }
            _ => {
                fused.push_second_output(&mut args);
                output as u32
            }
        };
        args.push(fused.n_rows)
            .push(to_u32("matvec1_f16 columns", w.n_cols, u32::MAX)?)
            .push(mode);
        fused.push_lead(&mut args);
        if parts > 1 {
            args.push(parts);
        }
        match &norm {
            OneTokenNorm::Finish(norm) => args.push(norm.stream).push(norm.eps).push(0u64),
            OneTokenNorm::Prepare { weights, .. } => args.push(0u64).push(0.0f32).push(*weights),
            OneTokenNorm::None => args.push(0u64).push(0.0f32).push(0u64),
        };
        args.push(u32::from(lets_next_launch_first(w)));
        let kernels = match norm {
            OneTokenNorm::Finish(_) => &self.matvec.one_token_normed,
            _ => &self.matvec.one_token,
        };
        let function = if parts == 1 {
            &kernels.rows
        } else {
            &kernels.parts
        };
        let config = LaunchConfig::linear(blocks, THREADS);
        // SAFETY: the arguments match rf_matvec1_f16x8{,_normed}(w, w_b, row_bytes, x, y,
        // y_b, n_rows, n_cols, mode, w_lead, y_lead, n_lead, stream, eps, norm_w,
        // let_next_launch_first), and with `parts` after n_lead
        // rf_matvec1_f16x8_parts{,_normed} (never RF_OUT_STORE_OWN_ROWS, whose blocks cover
        // n_lead + 2 n_rows rows, each stored); w (and w_b, of the same
        // shape and type) hold n_rows F16 rows of whole 8-value pieces, 16-byte aligned, x
        // n_cols floats, y (and y_b when it is written) n_rows floats (all checked); a null
        // w_b is read as "one matrix" and a null y_b is never written (Add and Swiglu write
        // y only; RF_OUT_ADD_NORM writes y_b, then the norm's output of n_rows floats, and
        // reads norm_w, its n_rows weights); a leading matrix (n_lead 0 and null pointers
        // without one) has the type and width of w, so rows of row_bytes, and y_lead n_lead
        // floats (FusedOperands::check); the _normed instances read `stream`, n_cols
        // floats, the others never; THREADS is the kernel's block size, a multiple of the
        // warp size, and rows past n_lead + n_rows are skipped by whole warps; parts (2,
        // f16_row_parts) divides the block's warps (8, or 4 of 64 lanes), so a row's parts
        // share a block.
        unsafe { function.launch(stream, &config, &args) }
    }
}

/// How many warps share one row of the one-token F16 product (`rf_matvec1_f16x8`): two for
/// rows of 4,096 values or more, which leaves each lane of a 32-lane warp at least 8 of the
/// row's 16-byte pieces. Four (the kernel takes them) put the 1B class's down product in
/// 1.55 waves of blocks (of five an SM then) instead of one: H200, 1B F16 tg128 1,067.5,
/// 1,078.5 with two, 1,046.5, 1,049.8 with four; sharing rows of 2,048 by two cost 3%.
/// Chosen by the row's length alone, so a product gives the same bits whatever rides in
/// its launch.
fn f16_row_parts(n_cols: usize) -> u32 {
    match n_cols / 8 / 256 {
        0 | 1 => 1,
        _ => 2,
    }
}
