//! Tensor data types and the scalar reference dequantizers: the oracle for every faster path.

mod dequant;
mod dtype;
mod weight_matrix;

pub use dequant::{dequantize_row, dequantize_to_vec};
pub use dtype::{GgmlType, TypeIdLookup};
pub use weight_matrix::{WeightMatrix, matrix_bytes};
