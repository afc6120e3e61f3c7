//! Rows split in place at upload (`kernels/split_rows.hip`): see [`BlockLayout::SplitRows`].

use super::super::safe::{DeviceBuffer, Function, KernelArgs, LaunchConfig, Module, Stream};
use super::weights::{BlockLayout, DeviceMatrix, MAX_SPLIT_ROW_BYTES, split_types};
use super::{GpuOps, check_buffer};
use crate::error::{Error, Result};
use crate::tensor::GgmlType;

/// Threads per block: a block stages and rewrites one row at a time.
const THREADS: u32 = 256;
/// Blocks of a launch; they stride over the rows.
const MAX_BLOCKS: usize = 4096;

pub(super) struct SplitRowsKernels {
    by_type: Vec<(GgmlType, Function)>,
}

impl SplitRowsKernels {
    pub(super) fn load(module: &Module) -> Result<SplitRowsKernels> {
        let by_type = split_types()
            .map(|(dtype, suffix)| {
                Ok((dtype, module.function(&format!("rf_split_rows_{suffix}"))?))
            })
            .collect::<Result<_>>()?;
        Ok(SplitRowsKernels { by_type })
    }
}

impl GpuOps {
    /// Rewrites `data`, a `dtype` matrix of `n_rows` x `n_cols` in the GGUF layout with its
    /// rows at the split layout's stride ([`BlockLayout::rows_at_stride`]), into split rows
    /// in place, in stream order (returns without waiting); it is then read as
    /// [`DeviceMatrix::with_layout`]`(dtype, BlockLayout::SplitRows, ..)`. Errors, leaving
    /// `data` as it was, unless the type has split rows and a row is whole 256 values and
    /// at most 32 KiB.
    pub fn split_rows(
        &self,
        stream: &Stream,
        dtype: GgmlType,
        data: &mut DeviceBuffer<u8>,
        n_rows: usize,
        n_cols: usize,
    ) -> Result<()> {
        let row_bytes =
            DeviceMatrix::with_layout(dtype, BlockLayout::SplitRows, data, n_rows, n_cols)?
                .row_bytes();
        if row_bytes > MAX_SPLIT_ROW_BYTES {
            return Err(Error::InvalidArgument(format!(
                "split rows of {row_bytes} bytes: at most {MAX_SPLIT_ROW_BYTES}"
            )));
        }
        let function = self
            .split_rows
            .by_type
            .iter()
            .find(|(t, _)| *t == dtype)
            .map(|(_, f)| f)
            .ok_or_else(|| Error::Unsupported(format!("split rows of {dtype} matrices")))?;
        check_buffer("split_rows matrix", data, 0, stream)?;
        let mut args = KernelArgs::new();
        args.push(&mut *data)
            .push(row_bytes as u64)
            .push(n_rows as u64);
        let config = LaunchConfig::linear(n_rows.min(MAX_BLOCKS) as u32, THREADS);
        // SAFETY: the arguments match rf_split_rows_*(w, row_bytes, n_rows); data holds
        // n_rows rows of row_bytes (checked by the matrix above), row_bytes is a multiple
        // of 16 (checked by the matrix's layout) and at most
        // RF_SPLIT_MAX_ROW_BYTES, and the allocation is 16-byte aligned; each block strides
        // over whole rows and only rearranges bytes within a row.
        unsafe { function.launch(stream, &config, &args) }
    }
}
