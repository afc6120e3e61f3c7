//! Weight matrices in device memory, in the GGUF tensor's own format, and the formats
//! the embedding and matrix-vector kernels read.

use super::super::safe::DeviceBuffer;
use crate::error::{Error, Result};
use crate::tensor::{GgmlType, matrix_bytes};

/// Every weight format the CPU runs, each with its kernel-name suffix (the ggml name in
/// lower case): `rf_matvec_q4_k`, `rf_embedding_q4_k`, ...
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

/// The weight formats the GPU kernels read: the same as the CPU's matmul.
pub fn supported_weight_types() -> impl Iterator<Item = GgmlType> {
    WEIGHT_TYPES.iter().map(|&(dtype, _)| dtype)
}

/// `"{prefix}_{suffix}"` for each supported format.
pub(super) fn kernel_names(prefix: &str) -> impl Iterator<Item = (GgmlType, String)> + '_ {
    WEIGHT_TYPES
        .iter()
        .map(move |&(dtype, suffix)| (dtype, format!("{prefix}_{suffix}")))
}

/// A weight matrix on the device: `n_rows` rows of `n_cols` values of `dtype`, row `r` at
/// byte `r * row_bytes()` of `data`, exactly as the GGUF tensor's bytes.
#[derive(Clone, Copy, Debug)]
pub struct DeviceMatrix<'a> {
    pub dtype: GgmlType,
    pub data: &'a DeviceBuffer<u8>,
    pub n_rows: usize,
    pub n_cols: usize,
}

impl<'a> DeviceMatrix<'a> {
    /// Errors unless both dimensions are at least 1, a row is whole blocks of `dtype`
    /// and `data` holds the whole matrix.
    pub fn new(
        dtype: GgmlType,
        data: &'a DeviceBuffer<u8>,
        n_rows: usize,
        n_cols: usize,
    ) -> Result<DeviceMatrix<'a>> {
        let matrix = DeviceMatrix {
            dtype,
            data,
            n_rows,
            n_cols,
        };
        matrix.check()?;
        Ok(matrix)
    }

    /// Bytes one row takes (the shape was checked by [`DeviceMatrix::new`]; a matrix built
    /// by hand is checked again by every launcher).
    pub fn row_bytes(&self) -> usize {
        self.n_cols / self.dtype.block_size() as usize * self.dtype.block_bytes() as usize
    }

    pub(super) fn check(&self) -> Result<()> {
        let DeviceMatrix {
            dtype,
            n_rows,
            n_cols,
            ..
        } = *self;
        let invalid = |problem: String| {
            Err(Error::InvalidArgument(format!(
                "{dtype} device matrix of {n_rows} rows x {n_cols} columns: {problem}"
            )))
        };
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
