//! Element-wise steps: the gated activations (SwiGLU, GeGLU), the residual add, scaling
//! and biases (`kernels/elementwise.hip`).

use super::super::safe::{DeviceBuffer, Function, KernelArgs, LaunchConfig, Module, Stream};
use super::{GpuOps, check_buffer, to_u32};
use crate::error::{Error, Result};

pub(super) const THREADS: u32 = 256;
/// Grid-stride kernels: enough blocks to fill any current GPU, the loop covers the rest.
pub(super) const MAX_BLOCKS: u32 = 4096;

pub(super) struct ElementwiseKernels {
    swiglu: Function,
    geglu: Function,
    add_assign: Function,
    scale: Function,
    add_bias: Function,
}

impl ElementwiseKernels {
    pub(super) fn load(module: &Module) -> Result<ElementwiseKernels> {
        Ok(ElementwiseKernels {
            swiglu: module.function("rf_swiglu_f32")?,
            geglu: module.function("rf_geglu_f32")?,
            add_assign: module.function("rf_add_assign_f32")?,
            scale: module.function("rf_scale_f32")?,
            add_bias: module.function("rf_add_bias_f32")?,
        })
    }
}

/// The gated activations: `gate = activation(gate) * up`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Gate {
    /// SiLU, as `src/backend/cpu/ops.rs` `swiglu`.
    Silu,
    /// GELU's tanh approximation, as `src/backend/cpu/ops.rs` `geglu`.
    Gelu,
}

impl GpuOps {
    /// `gate[i] = activation(gate[i]) * up[i]` for the first `n` values.
    pub fn gated(
        &self,
        stream: &Stream,
        activation: Gate,
        gate: &mut DeviceBuffer<f32>,
        up: &DeviceBuffer<f32>,
        n: usize,
    ) -> Result<()> {
        check_buffer("gated activation gate", gate, n, stream)?;
        check_buffer("gated activation up", up, n, stream)?;
        if n == 0 {
            return Ok(());
        }
        let mut args = KernelArgs::new();
        args.push(&mut *gate).push(up).push(n as u64);
        let config = LaunchConfig::for_elements(n as u64, THREADS, MAX_BLOCKS);
        let kernel = match activation {
            Gate::Silu => &self.elementwise.swiglu,
            Gate::Gelu => &self.elementwise.geglu,
        };
        // SAFETY: the arguments match rf_swiglu_f32 and rf_geglu_f32(gate, up, n); both
        // hold n floats (checked) and the grid-stride loop stays below n.
        unsafe { kernel.launch(stream, &config, &args) }
    }

    /// `x[i] *= factor` for the first `n` values.
    pub fn scale(
        &self,
        stream: &Stream,
        x: &mut DeviceBuffer<f32>,
        factor: f32,
        n: usize,
    ) -> Result<()> {
        check_buffer("scale", x, n, stream)?;
        if n == 0 {
            return Ok(());
        }
        let mut args = KernelArgs::new();
        args.push(&mut *x).push(factor).push(n as u64);
        let config = LaunchConfig::for_elements(n as u64, THREADS, MAX_BLOCKS);
        // SAFETY: the arguments match rf_scale_f32(x, factor, n); x holds n floats
        // (checked) and the grid-stride loop stays below n.
        unsafe { self.elementwise.scale.launch(stream, &config, &args) }
    }

    /// Adds `bias` (`[width]`) to each of the first `n_rows` rows of `x`.
    pub fn add_bias(
        &self,
        stream: &Stream,
        x: &mut DeviceBuffer<f32>,
        bias: &DeviceBuffer<f32>,
        n_rows: usize,
    ) -> Result<()> {
        let width = bias.len();
        let n = n_rows.checked_mul(width).ok_or_else(|| {
            Error::InvalidArgument(format!("add_bias: {n_rows} rows of {width} overflow"))
        })?;
        check_buffer("add_bias", x, n, stream)?;
        check_buffer("add_bias bias", bias, width, stream)?;
        if n == 0 {
            return Ok(());
        }
        let mut args = KernelArgs::new();
        args.push(&mut *x).push(bias).push(n as u64).push(to_u32(
            "add_bias width",
            width,
            u32::MAX,
        )?);
        let config = LaunchConfig::for_elements(n as u64, THREADS, MAX_BLOCKS);
        // SAFETY: the arguments match rf_add_bias_f32(x, bias, n, width); x holds n floats,
        // bias width > 0 of them (checked, n > 0), and the loop reads bias[i % width].
        unsafe { self.elementwise.add_bias.launch(stream, &config, &args) }
    }

    /// `y[i] += x[i]` for the first `n` values.
    pub fn add_assign(
        &self,
        stream: &Stream,
        y: &mut DeviceBuffer<f32>,
        x: &DeviceBuffer<f32>,
        n: usize,
    ) -> Result<()> {
        check_buffer("add_assign output", y, n, stream)?;
        check_buffer("add_assign input", x, n, stream)?;
        if n == 0 {
            return Ok(());
        }
        let mut args = KernelArgs::new();
        args.push(&mut *y).push(x).push(n as u64);
        let config = LaunchConfig::for_elements(n as u64, THREADS, MAX_BLOCKS);
        // SAFETY: the arguments match rf_add_assign_f32(y, x, n); both hold n floats
        // (checked) and the grid-stride loop stays below n.
        unsafe { self.elementwise.add_assign.launch(stream, &config, &args) }
    }
}
