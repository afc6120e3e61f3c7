//! Weight matrices in device memory, in the GGUF tensor's own format or with their rows
//! split (quants, then scales), and the formats the embedding and matrix-vector kernels
//! read.

use std::sync::OnceLock;

use super::super::safe::{DeviceBuffer, Function, Module};
use crate::error::{Error, Result};
use crate::tensor::{GgmlType, matrix_bytes};

/// How a matrix's rows lie in device memory.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BlockLayout {
    /// The GGUF tensor's bytes as they are.
    Gguf,
    /// Each row's blocks rewritten as their quants in order, a 32-value group's an aligned
    /// vector, then their scales: the same bytes and row size, but a row's quants are one
    /// 16-byte aligned stretch, so the decode products read them as whole vectors and a
    /// warp's loads as whole cache lines (`kernels/ggml_blocks.h`, "split rows"). Written
    /// at upload, on the device, for Q4_0, Q4_1, Q8_0, Q4_K and Q6_K rows of whole 256
    /// values and a multiple of 16 bytes.
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
        let row_bytes = dtype.bytes_for(n_cols as u64);
        if allowed
            && can_split_rows(dtype, n_cols)
            && row_bytes.is_some_and(|b| b <= MAX_SPLIT_ROW_BYTES as u64)
        {
            BlockLayout::SplitRows
        } else {
            BlockLayout::Gguf
        }
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
/// is whole 256 values and a multiple of 16 bytes, so every row starts, and its quants
/// end, 16-byte aligned (Q6_K's 210-byte blocks: rows of a multiple of 2,048 values).
fn can_split_rows(dtype: GgmlType, n_cols: usize) -> bool {
    has_split_rows(dtype)
        && n_cols.is_multiple_of(256)
        && dtype
            .bytes_for(n_cols as u64)
            .is_some_and(|b| b.is_multiple_of(16))
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

    /// Bytes one row takes (the shape was checked by [`DeviceMatrix::new`]; a matrix built
    /// by hand is checked again by every launcher).
    pub fn row_bytes(&self) -> usize {
        self.n_cols / self.dtype.block_size() as usize * self.dtype.block_bytes() as usize
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
                "split rows need Q4_0, Q4_1, Q8_0, Q4_K or Q6_K rows of whole 256 values \
                 and a multiple of 16 bytes"
                    .into(),
            );
        }
        match matrix_bytes(dtype, n_rows, n_cols) {
            Ok(bytes) if bytes <= self.data.len() as u64 => Ok(()),
            Ok(bytes) => invalid(format!(
                "needs {bytes} bytes, the buffer holds {}",
                self.data.len()
            )),
            Err(problem) => invalid(problem),
        }
    }
}
