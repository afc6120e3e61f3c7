//! Scalar reference dequantizers: GGML blocks to f32, bit-exact against ggml's
//! `dequantize_row_*` and gguf-py's `quants.py`.
//!
//! These are the oracle every faster path is tested against, so they favour plain code over
//! speed. Bit-exactness needs each value computed with the same f32 operations in the same
//! order as ggml (`d * q`, `d * q - m`, products like `d * sc` formed first); Rust never
//! fuses a multiply and an add on its own, so writing the expressions out is enough.
//!
//! Each kernel takes whole blocks (`blocks.len()` a multiple of the block's bytes and
//! `out.len()` the matching multiple of its values) and reads fields from little-endian bytes
//! by offset, so a tensor can be dequantized straight from a memory map at any alignment.

mod float;
mod iq4;
mod k_quants;
mod legacy;
mod mxfp4;

use super::GgmlType;
use crate::{Error, Result, host_memory};

/// A per-type kernel. Callers have checked that the lengths describe whole blocks.
type Kernel = fn(&[u8], &mut [f32]);

/// Dequantizes `out.len()` values of `dtype` from `data`.
///
/// Errors with [`Error::Unsupported`] for types without a dequantizer and with
/// [`Error::InvalidArgument`] when `out.len()` is not a whole number of blocks or `data` is not
/// exactly the bytes those blocks take.
pub fn dequantize_row(dtype: GgmlType, data: &[u8], out: &mut [f32]) -> Result<()> {
    let kernel = kernel(dtype)?;
    check_lengths(dtype, data.len(), out.len())?;
    kernel(data, out);
    Ok(())
}

/// Like [`dequantize_row`], into a new vector of `n_values` values.
pub fn dequantize_to_vec(dtype: GgmlType, data: &[u8], n_values: usize) -> Result<Vec<f32>> {
    let kernel = kernel(dtype)?;
    // Checked before allocating, so a bogus count errors instead of aborting the process.
    check_lengths(dtype, data.len(), n_values)?;
    let mut out = host_memory::filled_vec(n_values, 0.0, "a dequantized tensor")?;
    kernel(data, &mut out);
    Ok(out)
}

fn kernel(dtype: GgmlType) -> Result<Kernel> {
    use GgmlType::*;
    // Exhaustive on purpose: a new type must be given a kernel or listed as unsupported.
    let kernel: Kernel = match dtype {
        F32 => float::dequantize_row_f32,
        F16 => float::dequantize_row_f16,
        Bf16 => float::dequantize_row_bf16,
        F64 => float::dequantize_row_f64,
        I8 => float::dequantize_row_i8,
        I16 => float::dequantize_row_i16,
        I32 => float::dequantize_row_i32,
        Q4_0 => legacy::dequantize_row_q4_0,
        Q4_1 => legacy::dequantize_row_q4_1,
        Q5_0 => legacy::dequantize_row_q5_0,
        Q5_1 => legacy::dequantize_row_q5_1,
        Q8_0 => legacy::dequantize_row_q8_0,
        Q8_1 => legacy::dequantize_row_q8_1,
        Q2K => k_quants::dequantize_row_q2_k,
        Q3K => k_quants::dequantize_row_q3_k,
        Q4K => k_quants::dequantize_row_q4_k,
        Q5K => k_quants::dequantize_row_q5_k,
        Q6K => k_quants::dequantize_row_q6_k,
        Q8K => k_quants::dequantize_row_q8_k,
        Iq4Nl => iq4::dequantize_row_iq4_nl,
        Iq4Xs => iq4::dequantize_row_iq4_xs,
        Mxfp4 => mxfp4::dequantize_row_mxfp4,
        Iq2Xxs | Iq2Xs | Iq2S | Iq3Xxs | Iq3S | Iq1S | Iq1M | Tq1_0 | Tq2_0 | I64 => {
            return Err(Error::Unsupported(format!("dequantizing {dtype} tensors")));
        }
    };
    Ok(kernel)
}

fn check_lengths(dtype: GgmlType, data_len: usize, n_values: usize) -> Result<()> {
    let n = n_values as u64;
    let block_size = dtype.block_size();
    if !n.is_multiple_of(block_size) {
        return Err(Error::InvalidArgument(format!(
            "{dtype}: {n_values} values is not a whole number of {block_size}-value blocks"
        )));
    }
    match dtype.bytes_for(n) {
        Some(bytes) if bytes == data_len as u64 => Ok(()),
        Some(bytes) => Err(Error::InvalidArgument(format!(
            "{dtype}: {n_values} values take {bytes} bytes, got {data_len}"
        ))),
        None => Err(Error::InvalidArgument(format!(
            "{dtype}: the size of {n_values} values overflows"
        ))),
    }
}

/// The f16 at `offset`, widened to f32 (exact: every f16 is an f32).
fn f16_at(bytes: &[u8], offset: usize) -> f32 {
    half::f16::from_le_bytes([bytes[offset], bytes[offset + 1]]).to_f32()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zero_values_from_zero_bytes_is_fine() {
        assert!(dequantize_row(GgmlType::Q4K, &[], &mut []).is_ok());
        assert_eq!(
            dequantize_to_vec(GgmlType::F32, &[], 0).unwrap(),
            Vec::<f32>::new()
        );
    }

    #[test]
    fn huge_value_count_errors_before_allocating() {
        let err = dequantize_to_vec(GgmlType::F32, &[0; 4], usize::MAX).unwrap_err();
        assert!(matches!(err, Error::InvalidArgument(_)), "{err}");
    }

    #[test]
    fn unsupported_type_is_named() {
        let err = dequantize_row(GgmlType::Iq2Xxs, &[0; 66], &mut [0.0; 256]).unwrap_err();
        assert!(
            matches!(&err, Error::Unsupported(m) if m.contains("IQ2_XXS")),
            "{err}"
        );
    }
}
