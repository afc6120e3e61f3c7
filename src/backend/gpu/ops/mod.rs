//! The operations of a forward pass on a GPU: safe launchers for the kernels of
//! `kernels/{embedding,matvec,matvec_q8,norm,rope,attention,attention_mma,elementwise,argmax,
//! dequant_f16,split_rows,peer_sum,staging}.hip`.
//!
//! [`GpuOps::load`] loads every kernel once per device; each launcher takes typed device
//! buffers and the shapes they hold, checks every length, shape and limit before it
//! launches (a mistake is an [`Error::InvalidArgument`], never an out-of-bounds access on
//! the device), and queues the kernel on the given stream without waiting. Buffers may be
//! larger than a call needs, so scratch allocated once for the largest batch serves every
//! smaller one; each launcher uses the leading elements.
//!
//! Each kernel has a scalar CPU reference it is tested against (`tests/gpu_ops.rs`):
//! `src/tensor` dequantizers, `src/backend/cpu/ops.rs` and `src/backend/cpu/attention.rs`.

mod argmax;
mod attention;
mod attention_mma;
mod dequant_f16;
mod elementwise;
mod embedding;
mod fused_product;
mod gemm;
mod matvec;
mod matvec_q8;
mod matvec_q8_mixed;
mod norm;
mod peer_sum;
mod prepared_norm;
mod rope;
mod split_rows;
mod staged;
mod weights;

pub use argmax::ArgmaxScratch;
pub use attention::{AttentionWorkspace, DecodeRope, PagedKv, StepTokens};
pub use elementwise::Gate;
pub use fused_product::{FusedKind, LeadingMatrix, ProductInput, ProductOutput, SecondMatrix};
pub use gemm::PrefillScratch;
pub use matvec::StreamNorm;
pub use matvec_q8::{
    AddNormInput, MAX_Q8_TOKENS, NormScale, Q8_GROUP, Q8Buffers, UnscaledNorm,
    integer_product_types,
};
pub use matvec_q8_mixed::{MixedProduct, mixed_product_formats};
pub use peer_sum::{MAX_PEER_SUM_RANKS, PeerExchange};
pub use rope::{RopeKvWrite, RopeParams};

pub use weights::{BlockLayout, DeviceMatrix, supported_weight_types};

use super::safe::{Device, DeviceBuffer, DeviceCopy, Function, Module, Stream};
use crate::backend::KvType;
use crate::error::{Error, Result};

/// A kernel's instances for each KV cache type (`kernels/kv_cache.h`), named with the
/// type's suffix: `{name}_f16`, `{name}_f32`, `{name}_q8_0`.
pub(super) struct PerKvType {
    f16: Function,
    f32: Function,
    q8_0: Function,
}

impl PerKvType {
    pub(super) fn load(module: &Module, name: &str) -> Result<PerKvType> {
        let function = |suffix: &str| module.function(&format!("{name}_{suffix}"));
        Ok(PerKvType {
            f16: function("f16")?,
            f32: function("f32")?,
            q8_0: function("q8_0")?,
        })
    }

    pub(super) fn get(&self, kv_type: KvType) -> &Function {
        match kv_type {
            KvType::F16 => &self.f16,
            KvType::F32 => &self.f32,
            KvType::Q8_0 => &self.q8_0,
        }
    }
}

/// Slots of a layer's `kv_type` K and V caches of `[n_slots, kv_dim]` values each, checked
/// to hold the same number of whole rows.
fn cache_slots(
    what: &str,
    k_cache: &DeviceBuffer<u8>,
    v_cache: &DeviceBuffer<u8>,
    kv_type: KvType,
    kv_dim: usize,
    stream: &Stream,
) -> Result<usize> {
    check_buffer(what, k_cache, 0, stream)?;
    check_buffer(what, v_cache, 0, stream)?;
    let row_bytes = kv_type.bytes(kv_dim);
    let n_slots = k_cache.len() / row_bytes;
    if v_cache.len() != k_cache.len() || n_slots * row_bytes != k_cache.len() {
        return Err(Error::InvalidArgument(format!(
            "{what}: the K cache holds {} bytes and the V cache {}, not both whole {}-byte rows",
            k_cache.len(),
            v_cache.len(),
            row_bytes
        )));
    }
    // The kernels keep slots as u32.
    to_u32("cache slots", n_slots, u32::MAX)?;
    Ok(n_slots)
}

/// Every kernel a forward pass launches, loaded on one device.
pub struct GpuOps {
    embedding: embedding::EmbeddingKernels,
    matvec: matvec::MatvecKernels,
    matvec_q8: matvec_q8::MatvecQ8Kernels,
    mixed: matvec_q8_mixed::MixedKernels,
    norm: norm::NormKernel,
    prepared_norm: prepared_norm::PreparedNormKernels,
    rope: rope::RopeKernel,
    attention: attention::AttentionKernels,
    elementwise: elementwise::ElementwiseKernels,
    argmax: argmax::ArgmaxKernel,
    dequant_f16: dequant_f16::DequantF16Kernels,
    split_rows: split_rows::SplitRowsKernels,
    peer_sum: peer_sum::PeerSumKernels,
    staged: staged::StagedKernel,
    /// The device's SMs (compute units on AMD), for sizing launches by waves.
    compute_units: u32,
}

impl GpuOps {
    /// Loads the embedded kernels on `device`; fails with the reason when this build has
    /// none for it.
    pub fn load(device: &Device) -> Result<GpuOps> {
        let warp_size = device.facts().warp_size;
        if !matches!(warp_size, 32 | 64) {
            return Err(Error::Unsupported(format!(
                "a warp of {warp_size} lanes (the kernels are launched for 32 or 64)"
            )));
        }
        let module = |name: &str| Module::load_embedded(device, name);
        let norm_module = module("norm")?;
        let matvec_q8_module = module("matvec_q8")?;
        Ok(GpuOps {
            embedding: embedding::EmbeddingKernels::load(&module("embedding")?)?,
            matvec: matvec::MatvecKernels::load(&module("matvec")?, warp_size)?,
            matvec_q8: matvec_q8::MatvecQ8Kernels::load(&matvec_q8_module, warp_size)?,
            mixed: matvec_q8_mixed::MixedKernels::load(&matvec_q8_module, warp_size)?,
            norm: norm::NormKernel::load(&norm_module)?,
            prepared_norm: prepared_norm::PreparedNormKernels::load(&norm_module)?,
            rope: rope::RopeKernel::load(&module("rope")?)?,
            attention: attention::AttentionKernels::load(device, &module("attention")?, warp_size)?,
            elementwise: elementwise::ElementwiseKernels::load(&module("elementwise")?)?,
            argmax: argmax::ArgmaxKernel::load(&module("argmax")?)?,
            dequant_f16: dequant_f16::DequantF16Kernels::load(&module("dequant_f16")?)?,
            split_rows: split_rows::SplitRowsKernels::load(&module("split_rows")?)?,
            peer_sum: peer_sum::PeerSumKernels::load(&module("peer_sum")?)?,
            staged: staged::StagedKernel::load(&module("staging")?)?,
            compute_units: device.facts().compute_units,
        })
    }

    /// Rows of a one-warp-a-row product that one wave of its blocks covers: every SM
    /// holding `blocks_per_sm` blocks (the kernel's launch bounds) of `rows_per_block`.
    fn rows_in_one_wave(&self, blocks_per_sm: u32, rows_per_block: u32) -> u64 {
        u64::from(self.compute_units) * u64::from(blocks_per_sm) * u64::from(rows_per_block)
    }
}

/// The attention heads of a layer: `n_head` query heads of `head_dim` values, grouped over
/// `n_kv_heads` key/value heads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HeadShape {
    pub n_head: usize,
    pub n_kv_heads: usize,
    pub head_dim: usize,
}

impl HeadShape {
    fn check(&self) -> Result<()> {
        let HeadShape {
            n_head,
            n_kv_heads,
            head_dim,
        } = *self;
        if n_head == 0 || n_kv_heads == 0 || head_dim == 0 || !n_head.is_multiple_of(n_kv_heads) {
            return Err(Error::InvalidArgument(format!(
                "heads {self:?}: all must be at least 1 and n_kv_heads must divide n_head"
            )));
        }
        to_u32(
            "query values per token",
            product("heads", &[n_head, head_dim])?,
            u32::MAX,
        )?;
        Ok(())
    }

    fn q_dim(&self) -> usize {
        self.n_head * self.head_dim
    }

    fn kv_dim(&self) -> usize {
        self.n_kv_heads * self.head_dim
    }
}

/// Fails unless `buffer` holds at least `needed` elements and lives on the stream's device.
fn check_buffer<T: DeviceCopy>(
    what: &str,
    buffer: &DeviceBuffer<T>,
    needed: usize,
    stream: &Stream,
) -> Result<()> {
    if !buffer.device().same_device(stream.device()) {
        return Err(Error::InvalidArgument(format!(
            "{what}: the buffer is on another device than the stream"
        )));
    }
    if buffer.len() < needed {
        return Err(Error::InvalidArgument(format!(
            "{what}: the buffer holds {} elements, the call needs {needed}",
            buffer.len()
        )));
    }
    Ok(())
}

/// `a * b`, or an error naming `what` when it overflows.
fn product(what: &str, factors: &[usize]) -> Result<usize> {
    factors
        .iter()
        .try_fold(1usize, |acc, &f| acc.checked_mul(f))
        .ok_or_else(|| Error::InvalidArgument(format!("{what}: {factors:?} overflows")))
}

/// `value` as a kernel's 32-bit parameter, at most `max`.
fn to_u32(what: &str, value: usize, max: u32) -> Result<u32> {
    u32::try_from(value)
        .ok()
        .filter(|&v| v <= max)
        .ok_or_else(|| Error::InvalidArgument(format!("{what} = {value} exceeds {max}")))
}

/// The largest grid x dimension every target allows.
const MAX_GRID_X: u32 = i32::MAX as u32;
/// The largest grid y and z dimension.
const MAX_GRID_YZ: u32 = 65_535;
