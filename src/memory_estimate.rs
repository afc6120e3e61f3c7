//! What a model and one context of it will take, from the file's metadata alone: the
//! weights, the KV cache and the context's working memory, on the device the model would
//! load onto. The context's figures come from the backends' own accounts of what their
//! constructors allocate (`CpuBackend::planned_memory`, `GpuBackend::planned_memory`), so
//! they match what [`Context::memory`](crate::context::Context::memory) reports after the
//! first decode.

use crate::backend::DeviceKind;
use crate::backend::cpu::CpuBackend;
use crate::backend::gpu::GpuBackend;
use crate::context::ContextParams;
use crate::error::Result;
use crate::gguf::GgufFile;
use crate::model::{ModelConfig, Placement};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MemoryEstimate {
    /// The tensors' bytes: in the device's memory on a GPU, read through the file's
    /// mapping on the CPU.
    pub weights_bytes: u64,
    /// The KV cache, part of `host_bytes` on the CPU and of `device_bytes` on a GPU.
    pub kv_bytes: u64,
    /// The context's host memory after a decode that asked for one row of logits (and no
    /// embeddings).
    pub host_bytes: u64,
    /// The context's device memory (0 on the CPU).
    pub device_bytes: u64,
}

/// The estimate for a model in `gguf` placed on `placement` (its devices together), with a
/// context of `params`.
/// Reads the metadata and the tensor table, never the weights.
pub fn estimate(
    gguf: &GgufFile<'_>,
    placement: &Placement,
    params: &ContextParams,
) -> Result<MemoryEstimate> {
    let config = ModelConfig::from_gguf(gguf)?;
    let params = params.resolved(config.n_ctx_train)?;
    let shape = config.shape();
    // What creating the context would refuse, the estimate refuses too.
    params.kv_type.check_head_dim(shape.head_dim)?;
    let sizes = params.backend_sizes(&config);
    let context = if placement.first().device.kind == DeviceKind::Cpu {
        CpuBackend::planned_memory(&shape, &sizes, 1)
    } else {
        // Each GPU of a layer split holds its share's state.
        placement
            .layer_shares(shape.n_layer)?
            .into_iter()
            .map(|layers| GpuBackend::planned_memory(&shape, &sizes, 1, layers))
            .sum()
    };
    Ok(MemoryEstimate {
        weights_bytes: gguf.tensors().iter().map(|t| t.n_bytes()).sum(),
        kv_bytes: context.kv_bytes,
        host_bytes: context.host_bytes,
        device_bytes: context.device_bytes,
    })
}
