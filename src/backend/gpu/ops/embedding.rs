//! Embedding rows: `x[t] = table[tokens[t]]`, dequantized to f32 (`kernels/embedding.hip`).

use super::super::safe::{DeviceBuffer, KernelArgs, LaunchConfig, Module, Stream};
use super::weights::{DeviceMatrix, KernelsByFormat};
use super::{GpuOps, MAX_GRID_X, check_buffer, product, to_u32};
use crate::error::Result;

/// Threads per block; they walk one row.
const THREADS: u32 = 256;

pub(super) struct EmbeddingKernels {
    by_format: KernelsByFormat,
}

impl EmbeddingKernels {
    pub(super) fn load(module: &Module) -> Result<EmbeddingKernels> {
        Ok(EmbeddingKernels {
            by_format: KernelsByFormat::load(module, "rf_embedding")?,
        })
    }
}

impl GpuOps {
    /// `x[t] = table row tokens[t]` as f32 for the first `n_tokens` tokens: `table` is
    /// `[n_vocab rows, n_embd columns]`, `x` `[n_tokens, n_embd]`. Bit-exact with
    /// [`crate::tensor::dequantize_row`]. A token outside `0..n_vocab` gets a row of zeros
    /// (validate ids on the host to report them).
    pub fn embedding(
        &self,
        stream: &Stream,
        table: &DeviceMatrix<'_>,
        tokens: &DeviceBuffer<i32>,
        n_tokens: usize,
        x: &mut DeviceBuffer<f32>,
    ) -> Result<()> {
        table.check()?;
        let function = self
            .embedding
            .by_format
            .for_matrix(table, "GPU embedding rows")?;
        check_buffer("embedding table", table.data, 0, stream)?;
        check_buffer("embedding tokens", tokens, n_tokens, stream)?;
        check_buffer(
            "embedding output",
            x,
            product("embedding output", &[n_tokens, table.n_cols])?,
            stream,
        )?;
        if n_tokens == 0 {
            return Ok(());
        }
        let mut args = KernelArgs::new();
        args.push(table.data)
            .push(table.row_bytes() as u64)
            .push(to_u32("n_vocab", table.n_rows, u32::MAX)?)
            .push(tokens)
            .push(to_u32("n_tokens", n_tokens, MAX_GRID_X)?)
            .push(&mut *x)
            .push(to_u32("n_embd", table.n_cols, u32::MAX)?);
        let config = LaunchConfig::linear(n_tokens as u32, THREADS);
        // SAFETY: the arguments match rf_embedding_*(table, row_bytes, n_vocab, tokens,
        // n_tokens, x, n_embd); table holds n_vocab rows of row_bytes (checked), tokens
        // n_tokens ids and x n_tokens * n_embd floats; ids outside the table are not read.
        // All live on the stream's device; a buffer dropped early is freed only after the
        // queued kernel (the vendor's free waits).
        unsafe { function.launch(stream, &config, &args) }
    }
}
