//! What a decode product may do in its own launch besides `y = W x`
//! (`kernels/product_output.h`): a second matrix of the same shape over the same input, a
//! leading matrix whose rows go first, and an output mode (store, add into the residual,
//! SwiGLU). Shared by the integer products (`matvec_q8.rs`) and the one-token F16 product
//! (`matvec.rs`); [`FusedOperands::check`] holds both to the same rules.

use super::super::safe::{DeviceBuffer, KernelArgs, Stream};
use super::matvec::StreamNorm;
use super::matvec_q8::{NormScale, Q8Buffers};
use super::weights::DeviceMatrix;
use super::{GpuOps, MAX_GRID_X, check_buffer, product, to_u32};
use crate::error::{Error, Result};

/// What each output row receives.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProductOutput {
    /// `y = W x`, and `y_b = W_b x` for a second matrix.
    Store = 0,
    /// `y += W x`: the residual connection.
    Add = 1,
    /// `y = silu(W x) * (W_b x)`, as the CPU's `swiglu`.
    Swiglu = 2,
}

/// The product's second matrix: the same shape and type as the first, into `y_b` for
/// [`ProductOutput::Store`] (none for `Swiglu`, which writes one output).
pub struct SecondMatrix<'m, 'b> {
    pub w: &'m DeviceMatrix<'m>,
    pub y: Option<&'b mut DeviceBuffer<f32>>,
}

/// A matrix whose rows go first in a launch of another product over the same input: the
/// same type and width, its own row count and output.
pub struct LeadingMatrix<'m, 'b> {
    pub w: &'m DeviceMatrix<'m>,
    pub y: &'b mut DeviceBuffer<f32>,
}

/// The checked extras of one launch.
pub(super) struct FusedOperands<'m, 'b> {
    w_b: Option<&'m DeviceBuffer<u8>>,
    y_b: Option<&'b mut DeviceBuffer<f32>>,
    lead: Option<LeadingMatrix<'m, 'b>>,
    /// Rows of the leading matrix, then rows of `w`: the launch covers both.
    pub n_lead: u32,
    pub n_rows: u32,
}

impl<'m, 'b> FusedOperands<'m, 'b> {
    /// Checks `lead` and `second` against `w` (type, layout and shape), `output` against
    /// the second matrix (a SwiGLU needs one and writes one output; only a store writes
    /// the second's), and every output, `y` included, against `n_tokens` rows. `what`
    /// names the product in errors.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn check(
        what: &str,
        w: &DeviceMatrix<'_>,
        y: &DeviceBuffer<f32>,
        lead: Option<LeadingMatrix<'m, 'b>>,
        second: Option<SecondMatrix<'m, 'b>>,
        output: ProductOutput,
        n_tokens: usize,
        stream: &Stream,
    ) -> Result<FusedOperands<'m, 'b>> {
        let out_len = product(what, &[n_tokens, w.n_rows])?;
        check_buffer(what, y, out_len, stream)?;
        if let Some(lead) = &lead {
            lead.w.check()?;
            if (lead.w.format(), lead.w.n_cols) != (w.format(), w.n_cols) {
                return Err(Error::InvalidArgument(format!(
                    "{what}: a leading {} matrix ({:?}) of {} columns before a {} matrix \
                     ({:?}) of {}",
                    lead.w.dtype, lead.w.layout, lead.w.n_cols, w.dtype, w.layout, w.n_cols
                )));
            }
            check_buffer(what, lead.w.data, 0, stream)?;
            check_buffer(
                what,
                lead.y,
                product(what, &[n_tokens, lead.w.n_rows])?,
                stream,
            )?;
        }
        let (w_b, y_b) = match second {
            None if output == ProductOutput::Swiglu => {
                return Err(Error::InvalidArgument(format!(
                    "{what}: a SwiGLU product needs a second matrix"
                )));
            }
            None => (None, None),
            Some(SecondMatrix { w: w_b, y: y_b }) => {
                w_b.check()?;
                if (w_b.format(), w_b.n_rows, w_b.n_cols) != (w.format(), w.n_rows, w.n_cols) {
                    return Err(Error::InvalidArgument(format!(
                        "{what}: a paired product of a {} ({:?}) {}x{} and a {} ({:?}) {}x{} \
                         matrix",
                        w.dtype,
                        w.layout,
                        w.n_rows,
                        w.n_cols,
                        w_b.dtype,
                        w_b.layout,
                        w_b.n_rows,
                        w_b.n_cols
                    )));
                }
                check_buffer(what, w_b.data, 0, stream)?;
                match (output, y_b) {
                    (ProductOutput::Store, Some(y_b)) => {
                        check_buffer(what, y_b, out_len, stream)?;
                        (Some(w_b.data), Some(y_b))
                    }
                    (ProductOutput::Swiglu, None) => (Some(w_b.data), None),
                    _ => {
                        return Err(Error::InvalidArgument(format!(
                            "{what}: a paired product writing {output:?} takes a second \
                             output only when it stores"
                        )));
                    }
                }
            }
        };
        let n_rows = to_u32(what, w.n_rows, u32::MAX)?;
        let n_lead = to_u32(what, lead.as_ref().map_or(0, |l| l.w.n_rows), u32::MAX)?;
        if n_lead.checked_add(n_rows).is_none() {
            return Err(Error::InvalidArgument(format!(
                "{what} of {n_lead} + {n_rows} rows: too many"
            )));
        }
        Ok(FusedOperands {
            w_b,
            y_b,
            lead,
            n_lead,
            n_rows,
        })
    }

    /// Blocks of `rows_per_block` rows that cover the launch's rows (the leading
    /// matrix's, then `w`'s), within the grid's limit.
    pub(super) fn blocks(&self, what: &str, rows_per_block: u32) -> Result<u32> {
        let rows = self.n_lead + self.n_rows;
        let blocks = rows.div_ceil(rows_per_block);
        if blocks > MAX_GRID_X {
            return Err(Error::InvalidArgument(format!(
                "{what} of {rows} rows: too many"
            )));
        }
        Ok(blocks)
    }

    /// The rows of a launch that takes the leading matrix's rows, then `w`'s, then the
    /// second matrix's as rows of their own.
    pub(super) fn rows_with_second_rows(&self) -> u64 {
        u64::from(self.n_lead) + 2 * u64::from(self.n_rows)
    }

    /// Blocks of `rows_per_block` rows that cover [`Self::rows_with_second_rows`], within
    /// the grid's limit.
    pub(super) fn blocks_with_second_rows(&self, what: &str, rows_per_block: u32) -> Result<u32> {
        let rows = self.rows_with_second_rows();
        u32::try_from(rows.div_ceil(u64::from(rows_per_block)))
            .ok()
            .filter(|&blocks| blocks <= MAX_GRID_X)
            .ok_or_else(|| Error::InvalidArgument(format!("{what} of {rows} rows: too many")))
    }

    /// The second matrix's weights, or null.
    pub(super) fn push_second_weights(&self, args: &mut KernelArgs) {
        match self.w_b {
            Some(data) => args.push(data),
            None => args.push(0u64),
        };
    }

    /// The second matrix's output, or null.
    pub(super) fn push_second_output(&mut self, args: &mut KernelArgs) {
        match self.y_b.as_deref_mut() {
            Some(y_b) => args.push(y_b),
            None => args.push(0u64),
        };
    }

    /// `w_lead, y_lead, n_lead` (null and 0 without a leading matrix).
    pub(super) fn push_lead(&mut self, args: &mut KernelArgs) {
        match self.lead.as_mut() {
            Some(lead) => args.push(lead.w.data).push(&mut *lead.y),
            None => args.push(0u64).push(0u64),
        };
        args.push(self.n_lead);
    }
}

/// Which kernel a fused product runs on, and so what its input is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FusedKind {
    /// The integer kernels over Q8 activations (up to MAX_Q8_TOKENS tokens).
    Integer,
    /// The one-token F16 kernel over the f32 activations.
    F16,
}

/// The input of a fused product: Q8 activations (with the norm the products finish, when
/// they hold an `UnscaledNorm`'s) or f32 ones (with the norm the products finish, when
/// they are a stream times its weights, `matvec1_f16_add_norm`'s output).
pub enum ProductInput<'a> {
    Q8(&'a Q8Buffers, Option<NormScale<'a>>),
    F32(&'a DeviceBuffer<f32>, Option<StreamNorm<'a>>),
}

impl GpuOps {
    /// The kernel that multiplies `w` with `n_tokens` tokens in a fused launch, if one does.
    pub fn fused_kind(&self, w: &DeviceMatrix<'_>, n_tokens: usize) -> Option<FusedKind> {
        if self.has_q8_matvec(w, n_tokens) {
            Some(FusedKind::Integer)
        } else if n_tokens == 1 && self.has_f16_one_token(w) {
            Some(FusedKind::F16)
        } else {
            None
        }
    }

    /// `y = w · x` for `n_tokens` tokens with what rides along (`lead`, `second`,
    /// `output`), on the kernel `input` is for: [`GpuOps::matvec_q8`]'s or
    /// [`GpuOps::matvec1_f16`]'s.
    #[allow(clippy::too_many_arguments)]
    pub fn fused_matvec(
        &self,
        stream: &Stream,
        input: ProductInput<'_>,
        lead: Option<LeadingMatrix<'_, '_>>,
        w: &DeviceMatrix<'_>,
        second: Option<SecondMatrix<'_, '_>>,
        n_tokens: usize,
        y: &mut DeviceBuffer<f32>,
        output: ProductOutput,
    ) -> Result<()> {
        match input {
            ProductInput::Q8(x, norm) => {
                self.mmvq(stream, lead, w, second, x, norm, n_tokens, y, output)
            }
            ProductInput::F32(x, norm) if n_tokens == 1 => {
                self.matvec1_f16(stream, lead, w, second, x, norm, y, output)
            }
            ProductInput::F32(..) => Err(Error::InvalidArgument(format!(
                "the fused F16 product takes one token, not {n_tokens}"
            ))),
        }
    }
}
