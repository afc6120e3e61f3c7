//! Greedy decoding on the device: the argmax of each logits row (`kernels/argmax.hip`).

use super::super::safe::{
    DeviceBuffer, Function, KernelArgs, LaunchConfig, MappedHost, Module, Stream,
};
use super::{GpuOps, MAX_GRID_X, check_buffer, product, to_u32};
use crate::error::{Error, Result};

/// Threads per block, one block per row.
const THREADS: u32 = 1024;

pub(super) struct ArgmaxKernel {
    argmax: Function,
}

impl ArgmaxKernel {
    pub(super) fn load(module: &Module) -> Result<ArgmaxKernel> {
        Ok(ArgmaxKernel {
            argmax: module.function("rf_argmax_f32")?,
        })
    }
}

impl GpuOps {
    /// `out[r]` = the index of the largest of `logits[r]` (`[n_rows, n_vocab]`), as the
    /// CPU sampler's greedy choice: NaN counts as -inf, ties go to the lowest index, and a
    /// row with no value above -inf gives 0. `out` is host memory the kernel writes
    /// directly, so the host has each step's choice once the stream reaches this point,
    /// with no copy queued after it.
    pub fn argmax(
        &self,
        stream: &Stream,
        logits: &DeviceBuffer<f32>,
        n_rows: usize,
        n_vocab: usize,
        out: &mut MappedHost<i32>,
    ) -> Result<()> {
        if n_vocab == 0 || n_vocab > i32::MAX as usize {
            return Err(Error::InvalidArgument(format!(
                "argmax over {n_vocab} logits: need 1 to {}",
                i32::MAX
            )));
        }
        check_buffer(
            "argmax logits",
            logits,
            product("argmax", &[n_rows, n_vocab])?,
            stream,
        )?;
        if !out.device().same_device(stream.device()) {
            return Err(Error::InvalidArgument(
                "argmax output: mapped into another device than the stream's".into(),
            ));
        }
        if out.len() < n_rows {
            return Err(Error::InvalidArgument(format!(
                "argmax output: holds {} ints, the call needs {n_rows}",
                out.len()
            )));
        }
        if n_rows == 0 {
            return Ok(());
        }
        let mut args = KernelArgs::new();
        args.push(logits)
            .push(to_u32("argmax rows", n_rows, MAX_GRID_X)?)
            .push(n_vocab as u32)
            .push(&mut *out);
        let config = LaunchConfig::linear(n_rows as u32, THREADS);
        // SAFETY: the arguments match rf_argmax_f32(logits, n_rows, n_vocab, out); logits
        // holds n_rows * n_vocab floats and out n_rows ints of host memory mapped into this
        // device (checked); THREADS = 1024 is a multiple of every warp size and within the
        // kernel's 32 warps of scratch.
        unsafe { self.argmax.argmax.launch(stream, &config, &args) }
    }
}
