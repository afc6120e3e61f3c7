//! Greedy decoding on the device: the argmax of each logits row (`kernels/argmax.hip`).

use super::super::safe::{
    Device, DeviceBuffer, Dim3, Function, KernelArgs, LaunchConfig, MappedHost, Module, Stream,
};
use super::{GpuOps, MAX_GRID_X, check_buffer, product, to_u32};
use crate::error::{Error, Result};

/// Threads per block, one block per chunk of a row.
const THREADS: u32 = 256;

/// Values of a row a block takes: four vectors of four a thread, one round of loads.
const VALUES_PER_CHUNK: usize = 16 * THREADS as usize;

/// The chunks a row of `n_vocab` logits is cut into: a block each, at most a value per
/// thread of the last block's pick among them.
fn chunks_of(n_vocab: usize) -> usize {
    n_vocab
        .div_ceil(VALUES_PER_CHUNK)
        .clamp(1, THREADS as usize)
}

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

/// What [`GpuOps::argmax`] keeps between its blocks: each chunk's best (a value and an
/// index) and a counter per row, zero between launches. Sized once per context for its
/// most output rows and its vocabulary.
pub struct ArgmaxScratch {
    /// `[max_rows, chunks, 2]`
    partial: DeviceBuffer<u32>,
    /// `[max_rows]`
    arrivals: DeviceBuffer<u32>,
}

impl ArgmaxScratch {
    pub fn new(device: &Device, max_rows: usize, n_vocab: usize) -> Result<ArgmaxScratch> {
        Ok(ArgmaxScratch {
            partial: device.alloc(product(
                "argmax scratch",
                &[max_rows, chunks_of(n_vocab), 2],
            )?)?,
            arrivals: device.alloc_zeroed(max_rows)?,
        })
    }

    /// Device bytes held.
    pub fn bytes(&self) -> u64 {
        (self.partial.size_bytes() + self.arrivals.size_bytes()) as u64
    }

    /// What [`ArgmaxScratch::new`] allocates for the same arguments: 4 bytes a value.
    pub fn planned_bytes(max_rows: usize, n_vocab: usize) -> u128 {
        4 * max_rows as u128 * (2 * chunks_of(n_vocab) as u128 + 1)
    }
}

impl GpuOps {
    /// `out[r]` = the index of the largest of `logits[r]` (`[n_rows, n_vocab]`), as the
    /// CPU sampler's greedy choice: NaN counts as -inf, ties go to the lowest index, and a
    /// row with no value above -inf gives 0. `out` is host memory the kernel writes
    /// directly, so the host has each step's choice once the stream reaches this point,
    /// with no copy queued after it. `scratch` must be sized for at least `n_rows` rows of
    /// `n_vocab` logits ([`ArgmaxScratch::new`]) and used by one stream at a time: its
    /// counters are zero between launches only if launches do not overlap.
    pub fn argmax(
        &self,
        stream: &Stream,
        logits: &DeviceBuffer<f32>,
        n_rows: usize,
        n_vocab: usize,
        scratch: &mut ArgmaxScratch,
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
        let chunks = chunks_of(n_vocab);
        let values = product("argmax scratch", &[n_rows, chunks, 2])?;
        check_buffer("argmax chunks' bests", &scratch.partial, values, stream)?;
        check_buffer("argmax arrivals", &scratch.arrivals, n_rows, stream)?;
        if n_rows == 0 {
            return Ok(());
        }
        let mut args = KernelArgs::new();
        args.push(logits)
            .push(n_vocab as u32)
            .push(&mut scratch.partial)
            .push(&mut scratch.arrivals)
            .push(&mut *out);
        let grid = Dim3 {
            x: to_u32("argmax rows", n_rows, MAX_GRID_X)?,
            y: chunks as u32,
            z: 1,
        };
        let config = LaunchConfig::grid(grid, THREADS);
        // SAFETY: the arguments match rf_argmax_f32(logits, n_vocab, partial, arrivals,
        // out); logits holds n_rows * n_vocab floats, partial n_rows * chunks pairs of
        // 4-byte values, arrivals n_rows counters left zero by every launch before, and
        // out n_rows ints of host memory mapped into this device (all checked); THREADS is
        // a multiple of every warp size, within the kernel's 32 warps of scratch and at
        // least the chunks (at most THREADS) the last block of a row reads a thread each.
        unsafe { self.argmax.argmax.launch(stream, &config, &args) }
    }
}
