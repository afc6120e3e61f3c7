//! RMS norm of each row (`kernels/norm.hip`), optionally also as Q8 activations.

use super::super::safe::{DeviceBuffer, Function, KernelArgs, LaunchConfig, Module, Stream};
use super::matvec_q8::{Q8_GROUP, Q8Buffers};
use super::{GpuOps, MAX_GRID_X, check_buffer, product, to_u32};
use crate::error::{Error, Result};

/// Threads per block, one block per row: in decode one block does the whole norm, so as
/// many threads as a block holds, each with a few values in flight. A multiple of 64 (the
/// kernel's reduction wants whole warps, the Q8 variant groups of 32).
const THREADS: u32 = 1024;

/// The values of a row each thread of the kernel's instances holds in registers
/// (`rf_rms_norm_*_v<VALUES>`); the last instance loops over what it does not hold.
const VALUES_PER_THREAD: [u32; 4] = [1, 2, 4, 8];

/// The instances of one variant, for each entry of [`VALUES_PER_THREAD`].
struct ByWidth([Function; VALUES_PER_THREAD.len()]);

impl ByWidth {
    fn load(module: &Module, name: &str) -> Result<ByWidth> {
        let [a, b, c, d] = VALUES_PER_THREAD.map(|v| module.function(&format!("{name}_v{v}")));
        Ok(ByWidth([a?, b?, c?, d?]))
    }

    /// The instance with the fewest registers that holds a row of `width` values.
    fn for_width(&self, width: usize) -> &Function {
        let held = |v: u32| (v * THREADS) as usize >= width;
        let at = VALUES_PER_THREAD.iter().position(|&v| held(v));
        &self.0[at.unwrap_or(VALUES_PER_THREAD.len() - 1)]
    }
}

pub(super) struct NormKernel {
    rms_norm: ByWidth,
    rms_norm_q8: ByWidth,
}

impl NormKernel {
    pub(super) fn load(module: &Module) -> Result<NormKernel> {
        Ok(NormKernel {
            rms_norm: ByWidth::load(module, "rf_rms_norm_f32")?,
            rms_norm_q8: ByWidth::load(module, "rf_rms_norm_q8_f32")?,
        })
    }
}

impl GpuOps {
    /// `out[r] = x[r] / sqrt(mean(x[r]²) + eps) * weight` for the first `n_rows` rows of
    /// `weight.len()` values, as `src/backend/cpu/ops.rs` `rms_norm` (sum of squares in f64).
    /// With `quantized`, the rows also go there as Q8 activations (the width must then be
    /// whole groups of 32).
    #[allow(clippy::too_many_arguments)]
    pub fn rms_norm(
        &self,
        stream: &Stream,
        x: &DeviceBuffer<f32>,
        weight: &DeviceBuffer<f32>,
        eps: f32,
        n_rows: usize,
        out: &mut DeviceBuffer<f32>,
        mut quantized: Option<&mut Q8Buffers>,
    ) -> Result<()> {
        let width = weight.len();
        let n_values = product("rms_norm", &[n_rows, width])?;
        check_buffer("rms_norm input", x, n_values, stream)?;
        check_buffer("rms_norm weight", weight, width, stream)?;
        check_buffer("rms_norm output", out, n_values, stream)?;
        if let Some(q8) = &quantized {
            if !width.is_multiple_of(Q8_GROUP) {
                return Err(Error::InvalidArgument(format!(
                    "rms_norm: rows of {width} values are not whole groups of {Q8_GROUP} to \
                     quantize"
                )));
            }
            q8.check("rms_norm quantized output", n_values, stream)?;
        }
        if n_values == 0 {
            return Ok(());
        }
        let mut args = KernelArgs::new();
        args.push(x).push(weight).push(&mut *out);
        if let Some(q8) = quantized.as_deref_mut() {
            args.push(&mut q8.quants)
                .push(&mut q8.scales)
                .push(&mut q8.sums);
        }
        args.push(to_u32("rms_norm rows", n_rows, MAX_GRID_X)?)
            .push(to_u32("rms_norm width", width, u32::MAX)?)
            .push(eps);
        let config = LaunchConfig::linear(n_rows as u32, THREADS);
        let kernel = if quantized.is_some() {
            self.norm.rms_norm_q8.for_width(width)
        } else {
            self.norm.rms_norm.for_width(width)
        };
        // SAFETY: the arguments match rf_rms_norm_f32_v*(x, w, y, n_rows, width, eps), or with
        // a quantized output rf_rms_norm_q8_f32_v*(x, w, y, q, qd, qs, n_rows, width, eps); x
        // and out hold n_rows * width floats, weight width, the quantized output n_rows *
        // width values in whole groups of 32 (all checked); THREADS is a multiple of the
        // warp size and of 32, and at most 1024 (32 warps: the kernel's scratch).
        unsafe { kernel.launch(stream, &config, &args) }
    }

    /// [`GpuOps::rms_norm`] of the first `n_rows` rows of `x` in place, without the
    /// quantized output (a per-head norm of Q or K, whose rows are heads).
    pub fn rms_norm_in_place(
        &self,
        stream: &Stream,
        x: &mut DeviceBuffer<f32>,
        weight: &DeviceBuffer<f32>,
        eps: f32,
        n_rows: usize,
    ) -> Result<()> {
        let width = weight.len();
        let n_values = product("rms_norm", &[n_rows, width])?;
        check_buffer("rms_norm rows", x, n_values, stream)?;
        check_buffer("rms_norm weight", weight, width, stream)?;
        if n_values == 0 {
            return Ok(());
        }
        let mut args = KernelArgs::new();
        args.push(&*x)
            .push(weight)
            .push(&mut *x)
            .push(to_u32("rms_norm rows", n_rows, MAX_GRID_X)?)
            .push(to_u32("rms_norm width", width, u32::MAX)?)
            .push(eps);
        let config = LaunchConfig::linear(n_rows as u32, THREADS);
        // SAFETY: the arguments match rf_rms_norm_f32_v*(x, w, y, n_rows, width, eps) with
        // y = x, which the kernel allows (each element is read before its own write, only
        // by its writer); x holds n_rows * width floats and weight width (checked);
        // THREADS is a multiple of the warp size and at most 1024.
        unsafe {
            self.norm
                .rms_norm
                .for_width(width)
                .launch(stream, &config, &args)
        }
    }
}
