//! Matrix products of many tokens (prefill) on the vendor BLAS's tensor-core GEMM: the
//! weights dequantized to f16, the activations rounded to f16, accumulated in f32.
//!
//! The matrix-vector kernel reads and unpacks every weight once per 8 tokens, which is
//! right for decode and slow for hundreds of tokens; here each weight is unpacked once per
//! call and the GEMM reuses it from on-chip tiles across all tokens. The price is
//! precision: rounding both operands to f16 costs up to 2^-11 relative each, against
//! f32 activations in `matvec`.

use half::f16;

use super::super::safe::{Blas, Device, DeviceBuffer, GemmShape, Stream};
use super::weights::DeviceMatrix;
use super::{GpuOps, check_buffer, product};
use crate::error::{Error, Result};
use crate::tensor::GgmlType;

/// The f16 operands of [`GpuOps::matmul_prefill`], allocated once per context and reused
/// by every call.
pub struct PrefillScratch {
    /// A panel of dequantized weight rows, `[rows, n_cols]`.
    weights: DeviceBuffer<f16>,
    /// The step's activations, `[n_tokens, n_cols]`.
    activations: DeviceBuffer<f16>,
}

impl PrefillScratch {
    /// Room for `weight_values` dequantized weights and `activation_values` activations.
    /// Activations need `n_batch` times the widest input of any product. Weights need a
    /// whole matrix for one GEMM per product; a matrix larger than the room is done in
    /// panels of as many whole rows as fit (at least one row must).
    pub fn new(
        device: &Device,
        weight_values: usize,
        activation_values: usize,
    ) -> Result<PrefillScratch> {
        Ok(PrefillScratch {
            weights: device.alloc(weight_values)?,
            activations: device.alloc(activation_values)?,
        })
    }

    /// Device memory held.
    pub fn bytes(&self) -> u64 {
        (self.weights.size_bytes() + self.activations.size_bytes()) as u64
    }
}

impl GpuOps {
    /// `y[t][r] = w[r] · x[t]` for the first `n_tokens` tokens, as [`GpuOps::matvec`] but
    /// through `blas`: `x` is `[n_tokens, w.n_cols]` and `y` `[n_tokens, w.n_rows]`, f32
    /// row-major. The weights, dequantized exactly, and `x` are each rounded to f16; the
    /// products are summed in f32. Queued on `stream` (the one `blas` was made for)
    /// without waiting.
    #[allow(clippy::too_many_arguments)]
    pub fn matmul_prefill(
        &self,
        stream: &Stream,
        blas: &mut Blas,
        w: &DeviceMatrix<'_>,
        x: &DeviceBuffer<f32>,
        n_tokens: usize,
        y: &mut DeviceBuffer<f32>,
        scratch: &mut PrefillScratch,
    ) -> Result<()> {
        w.check()?;
        let (n_rows, n_cols) = (w.n_rows, w.n_cols);
        let n_inputs = product("matmul_prefill input", &[n_tokens, n_cols])?;
        check_buffer("matmul_prefill input", x, n_inputs, stream)?;
        check_buffer(
            "matmul_prefill output",
            y,
            product("matmul_prefill output", &[n_tokens, n_rows])?,
            stream,
        )?;
        check_buffer(
            "matmul_prefill activation scratch",
            &scratch.activations,
            n_inputs,
            stream,
        )?;
        let panel_rows = (scratch.weights.len() / n_cols).min(n_rows);
        if panel_rows == 0 {
            return Err(Error::InvalidArgument(format!(
                "matmul_prefill: the weight scratch holds {} values, less than one row of {n_cols}",
                scratch.weights.len()
            )));
        }
        if n_tokens == 0 {
            return Ok(());
        }
        self.convert_to_f16(stream, x, n_inputs, &mut scratch.activations)?;
        if w.dtype == GgmlType::F16 {
            // Already f16, rows of n_cols values: the product reads the weights as they are.
            let shape = GemmShape {
                n_rows,
                n_cols,
                n_tokens,
                y_stride: n_rows,
                y_offset: 0,
            };
            return blas.gemm_f16(stream, &shape, w.data, &scratch.activations, y);
        }
        // Each panel's dequantization waits, in stream order, for the previous panel's
        // product to have read the scratch.
        for first_row in (0..n_rows).step_by(panel_rows) {
            let rows = panel_rows.min(n_rows - first_row);
            self.dequantize_f16(stream, w, first_row, rows, &mut scratch.weights)?;
            let shape = GemmShape {
                n_rows: rows,
                n_cols,
                n_tokens,
                y_stride: n_rows,
                y_offset: first_row,
            };
            blas.gemm_f16(
                stream,
                &shape,
                &scratch.weights,
                &scratch.activations,
                &mut *y,
            )?;
        }
        Ok(())
    }
}
