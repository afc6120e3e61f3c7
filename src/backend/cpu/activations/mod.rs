//! Activations quantized to 8 bits, once per matmul, so the kernels can take integer dot
//! products with the quantized weights.
//!
//! The formats and their rounding are ggml's (`quantize_row_q8_0`, `_q8_1` and `_q8_K` as
//! its x86 build runs them): llama.cpp computes its logits this way, so matching its
//! activations bit for bit (but for Q8_1's block sum, see [`Q8Row`]) keeps our results
//! within float rounding of its own. Blocks are
//! held as arrays of fields rather than ggml's packed structs, which keeps every load of
//! 32 quants aligned to nothing in particular but free of byte-offset arithmetic.

mod q8;
mod q8_k;

pub(crate) use q8::{GROUP, Q8Activations, Q8Row, quantize_q8_0};
pub(crate) use q8_k::{Q8KActivations, Q8KRow};

/// The `N`-value arrays `values` splits into, front to back; a shorter remainder is left
/// out.
fn arrays<T, const N: usize>(values: &[T]) -> impl Iterator<Item = &[T; N]> {
    let mut rest = values;
    std::iter::from_fn(move || {
        let (array, after) = rest.split_first_chunk::<N>()?;
        rest = after;
        Some(array)
    })
}
