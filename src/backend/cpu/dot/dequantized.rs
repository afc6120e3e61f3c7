//! The fallback for weight types with a dequantizer but no kernel (F64 and the integer
//! types, which no model uses for matrices): dequantize a piece of a row at a time, then
//! take f32 dot products.

use crate::Result;
use crate::tensor::{GgmlType, dequantize_row};

/// Values dequantized at a time: a multiple of every block size, small enough for the stack.
const PIECE: usize = 256;

/// `out[r * tokens.len() + t] = row r · token t` for the rows of `rows`, `row_bytes` each.
pub(crate) fn dequantized_rows(
    dtype: GgmlType,
    rows: &[u8],
    row_bytes: usize,
    tokens: &[&[f32]],
    out: &mut [f32],
) -> Result<()> {
    let block_size = dtype.block_size() as usize;
    let block_bytes = dtype.block_bytes() as usize;
    let piece_bytes = PIECE / block_size * block_bytes;
    let mut values = [0.0_f32; PIECE];
    for (row, out) in rows
        .chunks_exact(row_bytes)
        .zip(out.chunks_exact_mut(tokens.len()))
    {
        out.fill(0.0);
        for (p, bytes) in row.chunks(piece_bytes).enumerate() {
            let values = &mut values[..bytes.len() / block_bytes * block_size];
            dequantize_row(dtype, bytes, values)?;
            for (x, out) in tokens.iter().zip(out.iter_mut()) {
                let x = &x[p * PIECE..][..values.len()];
                *out += values.iter().zip(x).map(|(w, x)| w * x).sum::<f32>();
            }
        }
    }
    Ok(())
}
