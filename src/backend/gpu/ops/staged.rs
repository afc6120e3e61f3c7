//! The gather of a step's staged inputs into their device buffers
//! (`kernels/staging.hip`; the area and its descriptions: `safe::UploadSet`).

use super::super::safe::{
    Function, KernelArgs, LaunchConfig, MAX_UPLOADS, Module, StagedUploads, Stream,
};
use super::{GpuOps, MAX_GRID_YZ};
use crate::error::{Error, Result};

const THREADS: u32 = 256;
/// Blocks a piece at most: the inputs are kilobytes, and the loop covers any more.
const MAX_BLOCKS: u32 = 64;

pub(super) struct StagedKernel {
    gather: Function,
}

impl StagedKernel {
    pub(super) fn load(module: &Module) -> Result<StagedKernel> {
        Ok(StagedKernel {
            gather: module.function("rf_gather_staged")?,
        })
    }
}

// A set's uploads are one row of the grid each: the most a set holds fits its height.
const _: () = assert!(MAX_UPLOADS as u32 <= MAX_GRID_YZ);

impl GpuOps {
    /// Writes every upload of the set `staged` describes into its buffer, on `stream`,
    /// the set's.
    pub fn gather_staged(&self, stream: &Stream, staged: &StagedUploads) -> Result<()> {
        if !staged.is_for(stream) {
            return Err(Error::InvalidArgument(
                "a set of uploads is gathered on the stream it was staged for".into(),
            ));
        }
        debug_assert!(staged.count() as usize <= MAX_UPLOADS);
        let blocks = u64::from(staged.max_bytes())
            .div_ceil(16 * u64::from(THREADS))
            .clamp(1, u64::from(MAX_BLOCKS)) as u32;
        let mut config = LaunchConfig::linear(blocks, THREADS);
        config.grid.y = staged.count();
        let mut args = KernelArgs::new();
        args.push(staged.area());
        // SAFETY: the argument matches rf_gather_staged(area); the area is page-locked host
        // memory mapped into this device, opening with `count` descriptions (one per row
        // of the grid) of pieces staged in it, each 16-byte aligned in the area and in a
        // live buffer of this device that holds all of its bytes (`StagedUploads` exists
        // only while its set ends, which checked all of that); the loop covers pieces
        // larger than the grid; THREADS >= 16 covers a piece's last bytes.
        unsafe { self.staged.gather.launch(stream, &config, &args) }
    }
}
