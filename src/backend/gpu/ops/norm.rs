//! RMS norm of each row (`kernels/norm.hip`).

use super::super::safe::{DeviceBuffer, Function, KernelArgs, LaunchConfig, Module, Stream};
use super::{GpuOps, MAX_GRID_X, check_buffer, product, to_u32};
use crate::error::Result;

/// Threads per block, one block per row.
const THREADS: u32 = 256;

pub(super) struct NormKernel {
    rms_norm: Function,
}

impl NormKernel {
    pub(super) fn load(module: &Module) -> Result<NormKernel> {
        Ok(NormKernel {
            rms_norm: module.function("rf_rms_norm_f32")?,
        })
    }
}

impl GpuOps {
    /// `out[r] = x[r] / sqrt(mean(x[r]²) + eps) * weight` for the first `n_rows` rows of
    /// `weight.len()` values, as `src/backend/cpu/ops.rs` `rms_norm` (sum of squares in f64).
    pub fn rms_norm(
        &self,
        stream: &Stream,
        x: &DeviceBuffer<f32>,
        weight: &DeviceBuffer<f32>,
        eps: f32,
        n_rows: usize,
        out: &mut DeviceBuffer<f32>,
    ) -> Result<()> {
        let width = weight.len();
        let n_values = product("rms_norm", &[n_rows, width])?;
        check_buffer("rms_norm input", x, n_values, stream)?;
        check_buffer("rms_norm weight", weight, width, stream)?;
        check_buffer("rms_norm output", out, n_values, stream)?;
        if n_values == 0 {
            return Ok(());
        }
        let mut args = KernelArgs::new();
        args.push(x)
            .push(weight)
            .push(&mut *out)
            .push(to_u32("rms_norm rows", n_rows, MAX_GRID_X)?)
            .push(to_u32("rms_norm width", width, u32::MAX)?)
            .push(eps);
        let config = LaunchConfig::linear(n_rows as u32, THREADS);
        // SAFETY: the arguments match rf_rms_norm_f32(x, w, y, n_rows, width, eps); x and
        // out hold n_rows * width floats and weight width (checked); the kernel's shared
        // scratch has room for 1024 threads, more than THREADS.
        unsafe { self.norm.rms_norm.launch(stream, &config, &args) }
    }
}
