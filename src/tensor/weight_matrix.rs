//! A borrowed weight matrix: the bytes of a GGUF tensor read as rows.

use std::ops::Range;

use crate::gguf::TensorView;
use crate::tensor::GgmlType;
use crate::{Error, Result};

/// `n_rows` rows of `n_cols` values each, stored row after row in `dtype` blocks.
///
/// This is the layout of a GGUF tensor of shape `[n_cols, n_rows]`: `ne[0]`, the
/// fastest-varying dimension, is the row length. A matmul computes one output per row, so
/// a projection from `n_embd` to `n_ff` values is a matrix of `n_ff` rows of `n_embd` values.
///
/// The fields are public for convenience; [`WeightMatrix::new`] checks them, and every
/// kernel checks them again before reading `data`.
#[derive(Clone, Copy, Debug)]
pub struct WeightMatrix<'a> {
    pub dtype: GgmlType,
    pub data: &'a [u8],
    pub n_rows: usize,
    pub n_cols: usize,
}

impl<'a> WeightMatrix<'a> {
    /// Errors with [`Error::InvalidArgument`] unless both dimensions are at least 1, a row
    /// is a whole number of `dtype` blocks and `data` holds exactly the matrix.
    pub fn new(dtype: GgmlType, data: &'a [u8], n_rows: usize, n_cols: usize) -> Result<Self> {
        let matrix = WeightMatrix {
            dtype,
            data,
            n_rows,
            n_cols,
        };
        matrix.check()?;
        Ok(matrix)
    }

    /// The matrix a 2-D GGUF tensor describes (`shape` `[n_cols, n_rows]`); a 1-D tensor is
    /// a single row.
    pub fn from_tensor(tensor: &TensorView<'a>) -> Result<Self> {
        let name = tensor.info.name();
        let (n_cols, n_rows) = match *tensor.info.shape() {
            [n_cols] => (n_cols, 1),
            [n_cols, n_rows] => (n_cols, n_rows),
            ref shape => {
                return Err(Error::InvalidArgument(format!(
                    "tensor '{name}' has shape {shape:?}; a weight matrix needs 1 or 2 dimensions"
                )));
            }
        };
        let to_usize = |n: u64| {
            usize::try_from(n).map_err(|_| {
                Error::InvalidArgument(format!("tensor '{name}': dimension {n} overflows usize"))
            })
        };
        WeightMatrix::new(
            tensor.info.dtype(),
            tensor.data,
            to_usize(n_rows)?,
            to_usize(n_cols)?,
        )
    }

    /// Bytes one row takes.
    pub fn row_bytes(&self) -> usize {
        // Checked in `check`: a row is whole blocks and the matrix fits in `data`.
        self.n_cols / self.dtype.block_size() as usize * self.dtype.block_bytes() as usize
    }

    /// Rows `rows` of the matrix, as a view of its bytes.
    pub fn rows(&self, rows: Range<usize>) -> Result<WeightMatrix<'a>> {
        let row_bytes = self.row_bytes();
        match self.data.get(rows.start * row_bytes..rows.end * row_bytes) {
            Some(data) if rows.start <= rows.end => {
                WeightMatrix::new(self.dtype, data, rows.len(), self.n_cols)
            }
            _ => Err(Error::InvalidArgument(format!(
                "rows {rows:?} of a matrix of {} rows",
                self.n_rows
            ))),
        }
    }

    /// Columns `cols` of every row, copied row after row: the bytes of a matrix of
    /// `n_rows` rows of `cols.len()` values. The columns must be whole `dtype` blocks.
    pub fn column_bytes(&self, cols: Range<usize>) -> Result<Vec<u8>> {
        let block = self.dtype.block_size() as usize;
        if cols.start > cols.end
            || cols.end > self.n_cols
            || !cols.start.is_multiple_of(block)
            || !cols.end.is_multiple_of(block)
        {
            return Err(Error::InvalidArgument(format!(
                "columns {cols:?} of a {} matrix of {} columns: expected whole blocks of {block}",
                self.dtype, self.n_cols
            )));
        }
        let block_bytes = self.dtype.block_bytes() as usize;
        let bytes = cols.start / block * block_bytes..cols.end / block * block_bytes;
        Ok(self
            .data
            .chunks_exact(self.row_bytes())
            .flat_map(|row| &row[bytes.clone()])
            .copied()
            .collect())
    }

    /// Validates the shape against the dtype and the data length.
    pub(crate) fn check(&self) -> Result<()> {
        let WeightMatrix {
            dtype,
            n_rows,
            n_cols,
            ..
        } = *self;
        let invalid = |problem: String| {
            Err(Error::InvalidArgument(format!(
                "{dtype} weight matrix of {n_rows} rows x {n_cols} columns: {problem}"
            )))
        };
        match matrix_bytes(dtype, n_rows, n_cols) {
            Ok(bytes) if bytes == self.data.len() as u64 => Ok(()),
            Ok(bytes) => invalid(format!("needs {bytes} bytes, got {}", self.data.len())),
            Err(problem) => invalid(problem),
        }
    }
}

/// The bytes a matrix of `n_rows` rows of `n_cols` `dtype` values takes, or what is wrong
/// with the shape: a dimension of 0, a row that is not whole blocks, a size that
/// overflows. Shared by every place a matrix's bytes live (host views, device buffers).
pub fn matrix_bytes(
    dtype: GgmlType,
    n_rows: usize,
    n_cols: usize,
) -> std::result::Result<u64, String> {
    if n_rows == 0 || n_cols == 0 {
        return Err("both dimensions must be at least 1".into());
    }
    let block_size = dtype.block_size();
    if !(n_cols as u64).is_multiple_of(block_size) {
        return Err(format!(
            "a row is not a whole number of {block_size}-value blocks"
        ));
    }
    dtype
        .bytes_for(n_cols as u64)
        .and_then(|row_bytes| row_bytes.checked_mul(n_rows as u64))
        .ok_or_else(|| "the size overflows".to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_are_checked() {
        let data = [0_u8; 40];
        assert!(WeightMatrix::new(GgmlType::Q4_1, &data, 2, 32).is_ok());
        for (n_rows, n_cols) in [(1, 32), (2, 33), (0, 32), (2, 0), (1, 96)] {
            let err = WeightMatrix::new(GgmlType::Q4_1, &data, n_rows, n_cols).unwrap_err();
            assert!(matches!(err, Error::InvalidArgument(_)), "{err}");
        }
        let err = WeightMatrix::new(GgmlType::F32, &[], usize::MAX, usize::MAX).unwrap_err();
        assert!(err.to_string().contains("overflows"), "{err}");
    }

    #[test]
    fn row_bytes_follow_blocks() {
        let data = [0_u8; 2 * 144];
        let matrix = WeightMatrix::new(GgmlType::Q4K, &data, 1, 512).unwrap();
        assert_eq!(matrix.row_bytes(), 288);
    }

    #[test]
    fn row_and_column_slices_hold_the_values_of_those_rows_and_columns() {
        // 3 rows of 96 Q8_0 values: 3 blocks of 34 bytes a row, any bytes but finite scales.
        let mut data: Vec<u8> = (0..3 * 3 * 34).map(|i| (i * 37 % 251) as u8).collect();
        for block in data.chunks_exact_mut(34) {
            block[..2].copy_from_slice(&half::f16::from_f32(0.25).to_le_bytes());
        }
        let matrix = WeightMatrix::new(GgmlType::Q8_0, &data, 3, 96).unwrap();
        let values = |m: &WeightMatrix<'_>| {
            crate::tensor::dequantize_to_vec(m.dtype, m.data, m.n_rows * m.n_cols).unwrap()
        };
        let all = values(&matrix);

        let rows = matrix.rows(1..3).unwrap();
        assert_eq!((rows.n_rows, rows.n_cols), (2, 96));
        assert_eq!(values(&rows), all[96..]);

        let bytes = matrix.column_bytes(32..96).unwrap();
        let columns = WeightMatrix::new(GgmlType::Q8_0, &bytes, 3, 64).unwrap();
        let expected: Vec<f32> = all
            .chunks(96)
            .flat_map(|row| &row[32..96])
            .copied()
            .collect();
        assert_eq!(values(&columns), expected);

        for cols in [16..48, 0..128, 0..40] {
            let err = matrix.column_bytes(cols.clone()).unwrap_err();
            assert!(err.to_string().contains("whole blocks"), "{cols:?}: {err}");
        }
        assert!(matrix.rows(2..4).is_err());
    }
}
