//! Decode's Q, K and V products in one launch where V's weight type is not Q's and K's
//! (`rf_mmvq1_mixed_*`, `kernels/matvec_q8.hip`). llama.cpp's Q4_K_M gives V more bits in
//! about a third of the layers (Q6_K beside Q4_K, or Q8_0 beside Q5_0 where rows are not
//! whole 256-value blocks): the paired launch takes one type, so those layers took three
//! launches for what the others do in one.

use super::super::safe::{DeviceBuffer, Function, KernelArgs, LaunchConfig, Module, Stream};
use super::matvec_q8::{NormScale, Q8_GROUP, Q8Buffers, THREADS};
use super::weights::{BlockLayout, DeviceMatrix, WeightFormat};
use super::{GpuOps, MAX_GRID_X, check_buffer, to_u32};
use crate::error::{Error, Result};
use crate::tensor::GgmlType;

/// The pairs of formats with a kernel, (Q's and K's, V's), and its name's suffix.
const MIXED_FORMATS: [(WeightFormat, WeightFormat, &str); 3] = [
    (
        (GgmlType::Q5_0, BlockLayout::Gguf),
        (GgmlType::Q8_0, BlockLayout::Gguf),
        "q5_0_q8_0",
    ),
    (
        (GgmlType::Q4K, BlockLayout::Gguf),
        (GgmlType::Q6K, BlockLayout::Gguf),
        "q4_k_q6_k",
    ),
    (
        (GgmlType::Q4K, BlockLayout::SplitRows),
        (GgmlType::Q6K, BlockLayout::SplitRows),
        "q4_k_split_q6_k_split",
    ),
];

/// The formats one mixed launch takes: (Q's and K's, V's).
pub fn mixed_product_formats() -> impl Iterator<Item = (WeightFormat, WeightFormat)> {
    MIXED_FORMATS.iter().map(|&(a, c, _)| (a, c))
}

pub(super) struct MixedKernels {
    by_formats: Vec<(WeightFormat, WeightFormat, Function)>,
    rows_per_block: u32,
}

impl MixedKernels {
    /// `warp_size` is 32 or 64 (checked by the caller).
    pub(super) fn load(module: &Module, warp_size: u32) -> Result<MixedKernels> {
        let by_formats = MIXED_FORMATS
            .iter()
            .map(|&(a, c, suffix)| {
                Ok((a, c, module.function(&format!("rf_mmvq1_mixed_{suffix}"))?))
            })
            .collect::<Result<_>>()?;
        Ok(MixedKernels {
            by_formats,
            rows_per_block: THREADS / warp_size,
        })
    }

    fn kernel(&self, a: WeightFormat, c: WeightFormat) -> Option<&Function> {
        (self.by_formats.iter())
            .find(|(fa, fc, _)| (*fa, *fc) == (a, c))
            .map(|(_, _, function)| function)
    }
}

/// One product of a mixed launch: a matrix and the output its rows go to.
pub struct MixedProduct<'m, 'b> {
    pub w: &'m DeviceMatrix<'m>,
    pub y: &'b mut DeviceBuffer<f32>,
}

impl GpuOps {
    /// Whether [`GpuOps::matvec_q8_mixed`] takes `a` and `b` (of one format) and `c` (of
    /// another), all of one width.
    pub fn has_q8_mixed(
        &self,
        a: &DeviceMatrix<'_>,
        b: &DeviceMatrix<'_>,
        c: &DeviceMatrix<'_>,
    ) -> bool {
        self.mixed_kernel(a, b, c).is_some()
    }

    /// The kernel of [`GpuOps::has_q8_mixed`]'s launch, where there is one.
    fn mixed_kernel(
        &self,
        a: &DeviceMatrix<'_>,
        b: &DeviceMatrix<'_>,
        c: &DeviceMatrix<'_>,
    ) -> Option<&Function> {
        let takes = a.format() == b.format()
            && (b.n_cols, c.n_cols) == (a.n_cols, a.n_cols)
            && self.has_q8_matvec(a, 1)
            && self.has_q8_matvec(c, 1);
        if !takes {
            return None;
        }
        self.mixed.kernel(a.format(), c.format())
    }

    /// One token's `y = w · x` for each of `products` (`[a, b, c]`, as
    /// [`GpuOps::has_q8_mixed`] takes them) in one launch: the bits of
    /// [`GpuOps::matvec_q8`] for each (with `norm`, of the products that finish it).
    pub fn matvec_q8_mixed(
        &self,
        stream: &Stream,
        products: [MixedProduct<'_, '_>; 3],
        x: &Q8Buffers,
        norm: Option<NormScale<'_>>,
    ) -> Result<()> {
        const WHAT: &str = "matvec_q8_mixed";
        for p in &products {
            p.w.check()?;
            check_buffer(WHAT, p.w.data, 0, stream)?;
            check_buffer(WHAT, p.y, p.w.n_rows, stream)?;
        }
        let [a, b, c] = products;
        let function = self.mixed_kernel(a.w, b.w, c.w).ok_or_else(|| {
            let [a, b, c] =
                [&a, &b, &c].map(|p| format!("{} {}x{}", p.w.dtype, p.w.n_rows, p.w.n_cols));
            Error::Unsupported(format!("one launch of {a}, {b} and {c} products"))
        })?;
        let n_cols = a.w.n_cols;
        x.check(WHAT, n_cols, stream)?;
        if let Some(norm) = norm {
            check_buffer(WHAT, norm.square_sums, n_cols / Q8_GROUP, stream)?;
        }
        let [n_a, n_b, n_c] = [&a, &b, &c].map(|p| to_u32(WHAT, p.w.n_rows, u32::MAX));
        let (n_a, n_b, n_c) = (n_a?, n_b?, n_c?);
        let blocks = n_a
            .checked_add(n_b)
            .and_then(|rows| rows.checked_add(n_c))
            .map(|rows| rows.div_ceil(self.mixed.rows_per_block))
            .filter(|&blocks| blocks <= MAX_GRID_X)
            .ok_or_else(|| {
                Error::InvalidArgument(format!("{WHAT} of {n_a} + {n_b} + {n_c} rows: too many"))
            })?;
        let mut args = KernelArgs::new();
        args.push(a.w.data)
            .push(a.y)
            .push(n_a)
            .push(b.w.data)
            .push(b.y)
            .push(n_b)
            .push(a.w.row_bytes() as u64)
            .push(c.w.data)
            .push(c.y)
            .push(n_c)
            .push(c.w.row_bytes() as u64)
            .push(&x.quants)
            .push(&x.scales)
            .push(&x.sums)
            .push(to_u32(WHAT, n_cols, u32::MAX)?);
        match norm {
            Some(norm) => args.push(norm.square_sums).push(norm.eps),
            None => args.push(0u64).push(0.0f32),
        };
        // SAFETY: the arguments match rf_mmvq1_mixed_*(w_a, y_a, n_a, w_b, y_b, n_b,
        // row_bytes_a, w_c, y_c, n_c, row_bytes_c, xq, xd, xs, n_cols, square_sums, eps), the
        // instance for a's (and b's) format and c's; each matrix holds its n_rows rows of
        // its format's row bytes and each output n_rows floats, x n_cols quants and their
        // groups, and a non-null square_sums n_cols / 32 sums (all checked); n_cols is whole
        // groups (has_q8_matvec); THREADS is a multiple of the warp size and rows past
        // n_a + n_b + n_c are skipped by whole warps.
        unsafe { function.launch(stream, &LaunchConfig::linear(blocks, THREADS), &args) }
    }
}
