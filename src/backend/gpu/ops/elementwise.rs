//! Element-wise steps: the SwiGLU activation and the residual add
//! (`kernels/elementwise.hip`).

use super::super::safe::{DeviceBuffer, Function, KernelArgs, LaunchConfig, Module, Stream};
use super::{GpuOps, check_buffer};
use crate::error::Result;

const THREADS: u32 = 256;
/// Grid-stride kernels: enough blocks to fill any current GPU, the loop covers the rest.
const MAX_BLOCKS: u32 = 4096;

pub(super) struct ElementwiseKernels {
    swiglu: Function,
    add_assign: Function,
}

impl ElementwiseKernels {
    pub(super) fn load(module: &Module) -> Result<ElementwiseKernels> {
        Ok(ElementwiseKernels {
            swiglu: module.function("rf_swiglu_f32")?,
            add_assign: module.function("rf_add_assign_f32")?,
        })
    }
}

impl GpuOps {
    /// `gate[i] = silu(gate[i]) * up[i]` for the first `n` values, as `src/backend/cpu/ops.rs`
    /// `swiglu`.
    pub fn swiglu(
        &self,
        stream: &Stream,
        gate: &mut DeviceBuffer<f32>,
        up: &DeviceBuffer<f32>,
        n: usize,
    ) -> Result<()> {
        check_buffer("swiglu gate", gate, n, stream)?;
        check_buffer("swiglu up", up, n, stream)?;
        if n == 0 {
            return Ok(());
        }
        let mut args = KernelArgs::new();
        args.push(&mut *gate).push(up).push(n as u64);
        let config = LaunchConfig::for_elements(n as u64, THREADS, MAX_BLOCKS);
        // SAFETY: the arguments match rf_swiglu_f32(gate, up, n); both hold n floats
        // (checked) and the grid-stride loop stays below n.
        unsafe { self.elementwise.swiglu.launch(stream, &config, &args) }
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
