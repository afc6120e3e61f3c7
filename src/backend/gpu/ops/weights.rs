//! Weight matrices in device memory, in the GGUF tensor's own format or with their rows
//! split (quants, then scales), and the formats the embedding and matrix-vector kernels
//! read.

use std::borrow::Cow;
use std::sync::OnceLock;

use super::super::safe::{DeviceBuffer, Function, Module};
use crate::error::{Error, Result};
use crate::host_memory::reserve;
use crate::tensor::{GgmlType, matrix_bytes};

/// How a matrix's rows lie in device memory.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BlockLayout {
    /// The GGUF tensor's bytes as they are.
    Gguf,
    /// Each row's blocks rewritten as their quants in order, a 32-value group's an aligned
    /// vector, then their scales: the same bytes and row size, but a row's quants are one
    /// 16-byte aligned stretch, so the decode products read them as whole vectors and a
    /// warp's loads as whole cache lines (`kernels/ggml_blocks.h`, "split rows"); Q4_0's
    /// nibbles are stored as signed values (top bit flipped). Written at upload, on the
    /// device, for Q4_0, Q4_1, Q8_0, Q4_K and Q6_K rows of whole 256 values. A row whose
    /// bytes are not a multiple of 16 (Q6_K's 210-byte blocks, unless a row has a multiple
    /// of 8) is followed by padding up to one, so every row starts 16-byte aligned
    /// ([`BlockLayout::row_stride`]).
    SplitRows,
}

/// The types whose rows may be split, with the suffix of their splitting kernel.
const SPLIT_TYPES: [(GgmlType, &str); 5] = [
    (GgmlType::Q4_0, "q4_0"),
    (GgmlType::Q4_1, "q4_1"),
    (GgmlType::Q8_0, "q8_0"),
    (GgmlType::Q4K, "q4_k"),
    (GgmlType::Q6K, "q6_k"),
];

/// The longest row the splitting kernel stages (`RF_SPLIT_MAX_ROW_BYTES`).
pub(super) const MAX_SPLIT_ROW_BYTES: usize = 32 << 10;

impl BlockLayout {
    /// The layout a `dtype` matrix of `n_cols` columns is uploaded in: split rows where
    /// `can_split_rows` allows and a row is at most 32 KiB, unless
    /// `ROCMFORGE_GPU_SPLIT_ROWS=0` (read once per process) asks for the GGUF layout
    /// everywhere, to measure what splitting gains.
    pub fn for_upload(dtype: GgmlType, n_cols: usize) -> BlockLayout {
        static ALLOWED: OnceLock<bool> = OnceLock::new();
        let allowed = *ALLOWED
            .get_or_init(|| std::env::var_os("ROCMFORGE_GPU_SPLIT_ROWS").is_none_or(|v| v != "0"));
        let stride = BlockLayout::SplitRows.row_stride(dtype, n_cols);
        if allowed
            && can_split_rows(dtype, n_cols)
            && stride.is_some_and(|b| b <= MAX_SPLIT_ROW_BYTES as u64)
        {
            BlockLayout::SplitRows
        } else {
            BlockLayout::Gguf
        }
    }

    /// Bytes from one row of a `dtype` matrix of `n_cols` columns to the next in this
    /// layout: the row's blocks, for split rows rounded up to a multiple of 16. None where
    /// that overflows.
    pub fn row_stride(self, dtype: GgmlType, n_cols: usize) -> Option<u64> {
        let row_bytes = dtype.bytes_for(n_cols as u64)?;
        match self {
            BlockLayout::Gguf => Some(row_bytes),
            BlockLayout::SplitRows => row_bytes.checked_next_multiple_of(16),
        }
    }

    /// `gguf`, a `dtype` matrix of `n_cols` columns in the GGUF layout, with its rows at this
    /// layout's stride: as it is where that is a row's size, otherwise a copy with each row
    /// followed by zeros up to the stride, ready for [`GpuOps::split_rows`](super::GpuOps::split_rows).
    /// Errors if the rows are not whole blocks or the copy cannot be allocated.
    pub fn rows_at_stride<'a>(
        self,
        dtype: GgmlType,
        n_cols: usize,
        gguf: &'a [u8],
    ) -> Result<Cow<'a, [u8]>> {
        let invalid = || {
            Error::InvalidArgument(format!(
                "{dtype} rows of {n_cols} columns: not whole blocks, too large, or the bytes \
                 not whole rows"
            ))
        };
        let row_bytes = matrix_bytes(dtype, 1, n_cols).map_err(|_| invalid())? as usize;
        let stride = self.row_stride(dtype, n_cols).ok_or_else(invalid)? as usize;
        if !gguf.len().is_multiple_of(row_bytes) {
            return Err(invalid());
        }
        if stride == row_bytes {
            return Ok(Cow::Borrowed(gguf));
        }
        let n_rows = gguf.len() / row_bytes;
        let mut padded = Vec::new();
        reserve(
            &mut padded,
            n_rows.saturating_mul(stride),
            "padded weight rows",
        )?;
        for row in gguf.chunks_exact(row_bytes) {
            padded.extend_from_slice(row);
            padded.resize(padded.len() + stride - row_bytes, 0);
        }
        Ok(Cow::Owned(padded))
    }
}

/// The types whose rows can be split, with their kernel-name suffixes.
pub(super) fn split_types() -> impl Iterator<Item = (GgmlType, &'static str)> {
    SPLIT_TYPES.iter().copied()
}

fn has_split_rows(dtype: GgmlType) -> bool {
    split_types().any(|(t, _)| t == dtype)
}

/// Whether rows of `n_cols` `dtype` values can be split: the type has split rows, and a row
/// is whole 256 values, so its quants end 16-byte aligned.
fn can_split_rows(dtype: GgmlType, n_cols: usize) -> bool {
    has_split_rows(dtype) && n_cols.is_multiple_of(256)
}

/// A weight type in one of its layouts.
pub type WeightFormat = (GgmlType, BlockLayout);

/// Every weight format the CPU runs, each with its kernel-name suffix (the ggml name in
/// lower case): `rf_matvec_q4_k`, `rf_embedding_q4_k`, ...; then the split-row layouts
/// (`rf_matvec_q4_0_split`, ...).
const WEIGHT_TYPES: [(GgmlType, &str); 22] = [
    (GgmlType::F32, "f32"),
    (GgmlType::F16, "f16"),
    (GgmlType::Bf16, "bf16"),
    (GgmlType::F64, "f64"),
    (GgmlType::I8, "i8"),
    (GgmlType::I16, "i16"),
    (GgmlType::I32, "i32"),
    (GgmlType::Q4_0, "q4_0"),
    (GgmlType::Q4_1, "q4_1"),
    (GgmlType::Q5_0, "q5_0"),
    (GgmlType::Q5_1, "q5_1"),
    (GgmlType::Q8_0, "q8_0"),
    (GgmlType::Q8_1, "q8_1"),
    (GgmlType::Iq4Nl, "iq4_nl"),
    (GgmlType::Mxfp4, "mxfp4"),
    (GgmlType::Q2K, "q2_k"),
    (GgmlType::Q3K, "q3_k"),
    (GgmlType::Q4K, "q4_k"),
    (GgmlType::Q5K, "q5_k"),
    (GgmlType::Q6K, "q6_k"),
    (GgmlType::Q8K, "q8_k"),
    (GgmlType::Iq4Xs, "iq4_xs"),
];

/// The weight types the GPU kernels read in their GGUF layout: the same as the CPU's
/// matmul.
pub fn supported_weight_types() -> impl Iterator<Item = GgmlType> {
    WEIGHT_TYPES.iter().map(|&(dtype, _)| dtype)
}

/// Each of `types` (type, kernel-name suffix) in its GGUF layout, then those that have
/// split rows in that layout (suffix `{suffix}_split`).
pub(super) fn formats_of(
    types: &'static [(GgmlType, &'static str)],
) -> impl Iterator<Item = (WeightFormat, String)> {
    let gguf = types
        .iter()
        .map(|&(dtype, suffix)| ((dtype, BlockLayout::Gguf), suffix.to_owned()));
    let split = types
        .iter()
        .filter(|&&(dtype, _)| has_split_rows(dtype))
        .map(|&(dtype, suffix)| ((dtype, BlockLayout::SplitRows), format!("{suffix}_split")));
    gguf.chain(split)
}

/// `"{prefix}_{suffix}"` for each supported format, in each layout.
fn kernel_names(prefix: &str) -> impl Iterator<Item = (WeightFormat, String)> + '_ {
    formats_of(&WEIGHT_TYPES).map(move |(format, suffix)| (format, format!("{prefix}_{suffix}")))
}

/// One kernel for each weight format, `"{prefix}_{suffix}"`.
pub(super) struct KernelsByFormat(Vec<(WeightFormat, Function)>);

impl KernelsByFormat {
    pub(super) fn load(module: &Module, prefix: &str) -> Result<KernelsByFormat> {
        kernel_names(prefix)
            .map(|(format, name)| Ok((format, module.function(&name)?)))
            .collect::<Result<_>>()
            .map(KernelsByFormat)
    }

    /// The kernel for `w`'s type and layout; `what` names the operation in the error.
    pub(super) fn for_matrix(&self, w: &DeviceMatrix<'_>, what: &str) -> Result<&Function> {
        self.0
            .iter()
            .find(|(format, _)| *format == w.format())
            .map(|(_, f)| f)
            .ok_or_else(|| {
                Error::Unsupported(format!("{what} of {} weights ({:?})", w.dtype, w.layout))
            })
    }
}

/// A weight matrix on the device: `n_rows` rows of `n_cols` values of `dtype`, row `r` at
/// byte `r * row_bytes()` of `data`, in `layout`.
#[derive(Clone, Copy, Debug)]
pub struct DeviceMatrix<'a> {
    pub dtype: GgmlType,
    pub layout: BlockLayout,
    pub data: &'a DeviceBuffer<u8>,
    pub n_rows: usize,
    pub n_cols: usize,
}

impl<'a> DeviceMatrix<'a> {
    /// A matrix of the GGUF tensor's bytes as they are. Errors unless both dimensions are
    /// at least 1, a row is whole blocks of `dtype` and `data` holds the whole matrix.
    pub fn new(
        dtype: GgmlType,
        data: &'a DeviceBuffer<u8>,
        n_rows: usize,
        n_cols: usize,
    ) -> Result<DeviceMatrix<'a>> {
        DeviceMatrix::with_layout(dtype, BlockLayout::Gguf, data, n_rows, n_cols)
    }

    /// A matrix in `layout` ([`GpuOps::split_rows`](super::GpuOps::split_rows) writes
    /// split rows); checked as [`DeviceMatrix::new`] does.
    pub fn with_layout(
        dtype: GgmlType,
        layout: BlockLayout,
        data: &'a DeviceBuffer<u8>,
        n_rows: usize,
        n_cols: usize,
    ) -> Result<DeviceMatrix<'a>> {
        let matrix = DeviceMatrix {
            dtype,
            layout,
            data,
            n_rows,
            n_cols,
        };
        matrix.check()?;
        Ok(matrix)
    }

    /// The type and layout the kernels are chosen by.
    pub fn format(&self) -> WeightFormat {
        (self.dtype, self.layout)
    }

    /// Bytes from one row to the next, [`BlockLayout::row_stride`] (the shape was checked
    /// by [`DeviceMatrix::new`]; a matrix built by hand is checked again by every launcher).
    pub fn row_bytes(&self) -> usize {
        self.layout
            .row_stride(self.dtype, self.n_cols)
            .and_then(|stride| usize::try_from(stride).ok())
            .unwrap_or(usize::MAX)
    }

    pub(super) fn check(&self) -> Result<()> {
        let DeviceMatrix {
            dtype,
            layout,
            n_rows,
            n_cols,
            ..
        } = *self;
        let invalid = |problem: String| {
            Err(Error::InvalidArgument(format!(
                "{dtype} device matrix of {n_rows} rows x {n_cols} columns: {problem}"
            )))
        };
        if layout == BlockLayout::SplitRows && !can_split_rows(dtype, n_cols) {
            return invalid(
                "split rows need Q4_0, Q4_1, Q8_0, Q4_K or Q6_K rows of whole 256 values".into(),
            );
        }
        let bytes = matrix_bytes(dtype, n_rows, n_cols).and_then(|_| {
            layout
                .row_stride(dtype, n_cols)
                .and_then(|stride| stride.checked_mul(n_rows as u64))
                .ok_or_else(|| "the size overflows".to_owned())
        });
        match bytes {
            Ok(bytes) if bytes <= self.data.len() as u64 => Ok(()),
            Ok(bytes) => invalid(format!(
                "needs {bytes} bytes, the buffer holds {}",
                self.data.len()
            )),
            Err(problem) => invalid(problem),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_rows_of_q6_k_are_padded_to_16_bytes_and_others_kept_as_they_are() {
        // Three 210-byte blocks a row: 630 bytes, padded to 640.
        let gguf: Vec<u8> = (0..2 * 630).map(|i| (i % 251) as u8 + 1).collect();
        let split = BlockLayout::SplitRows;
        assert_eq!(split.row_stride(GgmlType::Q6K, 768), Some(640));
        let padded = split.rows_at_stride(GgmlType::Q6K, 768, &gguf).unwrap();
        assert_eq!(padded.len(), 2 * 640);
        for (row, padded_row) in gguf.chunks_exact(630).zip(padded.chunks_exact(640)) {
            assert_eq!(&padded_row[..630], row);
            assert!(padded_row[630..].iter().all(|&b| b == 0));
        }
        // Eight blocks (1,680 bytes), and every GGUF row: no copy.
        assert_eq!(split.row_stride(GgmlType::Q6K, 2048), Some(1680));
        let whole: Vec<u8> = vec![7; 1680];
        let kept = split.rows_at_stride(GgmlType::Q6K, 2048, &whole).unwrap();
        assert!(matches!(kept, Cow::Borrowed(_)));
        let gguf_rows = BlockLayout::Gguf
            .rows_at_stride(GgmlType::Q6K, 768, &gguf)
            .unwrap();
        assert!(matches!(gguf_rows, Cow::Borrowed(_)));
        // Bytes that are not whole rows, and rows that are not whole blocks.
        for (n_cols, bytes) in [(768, &gguf[..700]), (700, &gguf[..])] {
            let result = split.rows_at_stride(GgmlType::Q6K, n_cols, bytes);
            assert!(
                matches!(result, Err(Error::InvalidArgument(_))),
                "{result:?}"
            );
        }
    }
}
