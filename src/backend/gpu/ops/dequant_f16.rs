//! The f16 operands of the prefill matrix product (`kernels/dequant_f16.hip`): weight rows
//! dequantized and rounded to f16, and f32 activations rounded to f16.

use half::f16;

use super::super::safe::{DeviceBuffer, Function, KernelArgs, LaunchConfig, Module, Stream};
use super::weights::{DeviceMatrix, KernelsByFormat};
use super::{GpuOps, check_buffer, product, to_u32};
use crate::error::{Error, Result};

const THREADS: u32 = 256;
/// Grid-stride kernels: enough blocks to fill any current GPU, the loop covers the rest.
const MAX_BLOCKS: u32 = 4096;
/// Values one thread dequantizes at a time in a block format (`RF_QUANT_CHUNK` of
/// ggml_blocks.h); plain formats take one.
const QUANT_CHUNK: u64 = 8;

pub(super) struct DequantF16Kernels {
    by_format: KernelsByFormat,
    f32_to_f16: Function,
}

impl DequantF16Kernels {
    pub(super) fn load(module: &Module) -> Result<DequantF16Kernels> {
        Ok(DequantF16Kernels {
            by_format: KernelsByFormat::load(module, "rf_dequantize_f16")?,
            f32_to_f16: module.function("rf_f32_to_f16")?,
        })
    }
}

impl GpuOps {
    /// Rows `first_row..first_row + n_rows` of `w` as f16, row-major into the first
    /// `n_rows * w.n_cols` values of `out`: each value as [`crate::tensor::dequantize_row`]
    /// gives it, rounded to the nearest f16 (ties to even; beyond ±65504 infinite).
    pub fn dequantize_f16(
        &self,
        stream: &Stream,
        w: &DeviceMatrix<'_>,
        first_row: usize,
        n_rows: usize,
        out: &mut DeviceBuffer<f16>,
    ) -> Result<()> {
        w.check()?;
        let function = self
            .dequant_f16
            .by_format
            .for_matrix(w, "GPU dequantization to f16")?;
        if first_row
            .checked_add(n_rows)
            .is_none_or(|end| end > w.n_rows)
        {
            return Err(Error::InvalidArgument(format!(
                "dequantize_f16: rows {first_row}..+{n_rows} of a matrix of {}",
                w.n_rows
            )));
        }
        check_buffer("dequantize_f16 weights", w.data, 0, stream)?;
        let n_values = product("dequantize_f16 output", &[n_rows, w.n_cols])?;
        check_buffer("dequantize_f16 output", out, n_values, stream)?;
        if n_rows == 0 {
            return Ok(());
        }
        let chunk = if w.dtype.block_size() == 1 {
            1
        } else {
            QUANT_CHUNK
        };
        let mut args = KernelArgs::new();
        args.push(w.data)
            .push(w.row_bytes() as u64)
            .push(first_row as u64)
            .push(n_rows as u64)
            .push(to_u32("dequantize_f16 columns", w.n_cols, u32::MAX)?)
            .push(&mut *out);
        let config = LaunchConfig::for_elements(n_values as u64 / chunk, THREADS, MAX_BLOCKS);
        // SAFETY: the arguments match rf_dequantize_f16_*(w, row_bytes, first_row, n_rows,
        // n_cols, out); w holds rows first_row..first_row + n_rows of row_bytes each (the
        // matrix and the row range are checked) and out n_rows * n_cols f16 values, the
        // buffer's start 16-byte aligned as every allocation is; the grid-stride loop
        // stays below n_rows * n_cols / chunk.
        unsafe { function.launch(stream, &config, &args) }
    }

    /// The first `n` values of `x` rounded to the nearest f16 into `out` (ties to even;
    /// beyond ±65504 infinite).
    pub fn convert_to_f16(
        &self,
        stream: &Stream,
        x: &DeviceBuffer<f32>,
        n: usize,
        out: &mut DeviceBuffer<f16>,
    ) -> Result<()> {
        check_buffer("convert_to_f16 input", x, n, stream)?;
        check_buffer("convert_to_f16 output", out, n, stream)?;
        if n == 0 {
            return Ok(());
        }
        let mut args = KernelArgs::new();
        args.push(x).push(&mut *out).push(n as u64);
        let config = LaunchConfig::for_elements(n as u64, THREADS, MAX_BLOCKS);
        // SAFETY: the arguments match rf_f32_to_f16(x, out, n); both hold n values
        // (checked) and the grid-stride loop stays below n.
        unsafe { self.dequant_f16.f32_to_f16.launch(stream, &config, &args) }
    }
}
