//! Prefill attention on NVIDIA tensor cores (`kernels/attention_mma.hip`): a block of 64
//! query rows per K/V head reads each key once, where the one-token kernel reads it once
//! per query. NVIDIA sm_80 and newer only (the kernel is written with `mma.sync`; AMD and
//! older GPUs keep the one-token kernel), over F16 caches, for heads of 64 or 128 values.

use super::super::safe::{
    Device, DeviceBuffer, Dim3, Function, KernelArgs, LaunchConfig, Module, Stream,
};
use super::super::sys::Vendor;
use super::attention::{PagedKv, StepTokens, push_inputs, push_shape};
use super::{HeadShape, MAX_GRID_X, MAX_GRID_YZ, to_u32};
use crate::backend::KvType;
use crate::error::Result;

/// The kernel's MMA_ROWS (query rows a block) and block size (4 warps of 32).
const ROWS_PER_BLOCK: usize = 64;
const THREADS: u32 = 128;
/// Head sizes with an instance, `rf_attention_mma_d{N}_f16`.
const HEAD_DIMS: [usize; 2] = [64, 128];

pub(super) struct MmaAttentionKernels {
    /// By head size, as HEAD_DIMS.
    f16: Vec<Function>,
}

impl MmaAttentionKernels {
    /// The kernels on NVIDIA GPUs of compute capability 8.0 or newer (`mma.sync`
    /// m16n8k16); `None` elsewhere, where the module holds none.
    pub(super) fn load(device: &Device) -> Result<Option<MmaAttentionKernels>> {
        let facts = device.facts();
        if facts.vendor != Vendor::Cuda || facts.compute_capability < (8, 0) {
            return Ok(None);
        }
        let module = Module::load_embedded(device, "attention_mma")?;
        let f16 = HEAD_DIMS
            .iter()
            .map(|d| module.function(&format!("rf_attention_mma_d{d}_f16")))
            .collect::<Result<_>>()?;
        Ok(Some(MmaAttentionKernels { f16 }))
    }

    /// The instance for these heads and cache type, if there is one.
    pub(super) fn for_heads(&self, heads: &HeadShape, kv_type: KvType) -> Option<&Function> {
        if kv_type != KvType::F16 {
            return None;
        }
        let at = HEAD_DIMS.iter().position(|&d| d == heads.head_dim)?;
        self.f16.get(at)
    }
}

/// Launches `kernel` (from [`MmaAttentionKernels::for_heads`]) over buffers the caller
/// has checked: `q` and `out` hold `tokens.n_tokens * q_dim` floats, the tables `kv.n_seq`
/// sequences of `kv.max_blocks` blocks, the caches `n_slots` rows; `window` is the
/// kernel's encoding (0: none).
#[allow(clippy::too_many_arguments)]
pub(super) fn launch(
    kernel: &Function,
    stream: &Stream,
    heads: &HeadShape,
    scale: f32,
    kv: &mut PagedKv<'_>,
    tokens: &StepTokens<'_>,
    n_slots: usize,
    window: u32,
    q: &DeviceBuffer<f32>,
    out: &mut DeviceBuffer<f32>,
) -> Result<()> {
    let group = heads.n_head / heads.n_kv_heads;
    let rows = tokens.n_tokens.saturating_mul(group);
    let grid = Dim3 {
        x: to_u32(
            "attention row blocks",
            rows.div_ceil(ROWS_PER_BLOCK),
            MAX_GRID_X,
        )?,
        y: to_u32("attention K/V heads", heads.n_kv_heads, MAX_GRID_YZ)?,
        z: 1,
    };
    let config = LaunchConfig::grid(grid, THREADS);
    let mut args = KernelArgs::new();
    push_inputs(&mut args, q, kv, tokens, out);
    push_shape(&mut args, heads, scale, kv, tokens.n_tokens, n_slots)?;
    args.push(window);
    // SAFETY: the arguments match rf_attention_mma_d*_f16's 19 parameters in order; the
    // caller checked every buffer's length (q and out n_tokens * q_dim floats, seq_index
    // and pos n_tokens, the tables n_seq * max_blocks blocks and their slots, the F16
    // caches n_slots rows of kv_dim) and `for_heads` chose the instance of this head_dim;
    // the grid covers n_tokens * group rows with THREADS-thread blocks, the kernel's only
    // block size, and its shared memory is static. Slots >= n_slots and sequences >= n_seq
    // are treated as empty by the kernel.
    unsafe { kernel.launch(stream, &config, &args) }
}
