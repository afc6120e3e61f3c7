//! What a model and one context of it will take, from the file's metadata alone: the
//! weights, the KV cache and the context's working memory, on the device the model would
//! load onto. The context's figures come from the backends' own accounts of what their
//! constructors allocate (`CpuBackend::planned_memory`, `GpuBackend::planned_memory`), so
//! they match what [`Context::memory`](crate::context::Context::memory) reports after the
//! first decode.

use std::ops::Range;

use crate::backend::DeviceKind;
use crate::backend::cpu::CpuBackend;
use crate::backend::gpu::GpuBackend;
use crate::backend::gpu::ops::BlockLayout;
use crate::backend::saturating_bytes;
use crate::context::ContextParams;
use crate::error::Result;
use crate::gguf::{GgufFile, TensorInfo};
use crate::model::{ModelConfig, Placement, SplitMode, TensorShare, TensorSplitShape};

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MemoryEstimate {
    /// The weights: on a GPU the tensors it uploads (a head tied to the embedding is a
    /// second copy there); on the CPU every tensor, read through the file's mapping.
    pub weights_bytes: u64,
    /// The KV cache, part of `host_bytes` on the CPU and of `device_bytes` on a GPU.
    pub kv_bytes: u64,
    /// The context's host memory after a decode that asked for one row of logits (and no
    /// embeddings).
    pub host_bytes: u64,
    /// The context's device memory (0 on the CPU).
    pub device_bytes: u64,
}

/// One device's part of an estimate: what it would hold of the model and of one context.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ShareEstimate {
    /// The device's index in the device list (0: the CPU).
    pub device: usize,
    /// The layers it runs.
    pub layers: Range<usize>,
    pub memory: MemoryEstimate,
}

/// The estimate for a model in `gguf` placed on `placement` (its devices together), with a
/// context of `params`.
pub fn estimate(
    gguf: &GgufFile<'_>,
    placement: &Placement,
    params: &ContextParams,
) -> Result<MemoryEstimate> {
    Ok(total(&estimate_shares(gguf, placement, params)?))
}

/// The shares' figures added up.
pub fn total(shares: &[ShareEstimate]) -> MemoryEstimate {
    shares
        .iter()
        .fold(MemoryEstimate::default(), |sum, s| MemoryEstimate {
            weights_bytes: sum.weights_bytes + s.memory.weights_bytes,
            kv_bytes: sum.kv_bytes + s.memory.kv_bytes,
            host_bytes: sum.host_bytes + s.memory.host_bytes,
            device_bytes: sum.device_bytes + s.memory.device_bytes,
        })
}

/// The estimate of each device of `placement`, in layer order: one for a model on one
/// device, one a GPU of a layer split (each holding its layers' weights and state, the
/// first the embedding, the last the output head).
pub fn estimate_shares(
    gguf: &GgufFile<'_>,
    placement: &Placement,
    params: &ContextParams,
) -> Result<Vec<ShareEstimate>> {
    let config = ModelConfig::from_gguf(gguf)?;
    let params = params.resolved(config.n_ctx_train)?;
    let shape = config.shape();
    // What creating the context would refuse, the estimate refuses too.
    params.kv_type.check_head_dim(shape.head_dim)?;
    let sizes = params.backend_sizes(&config);
    if placement.first().device.kind == DeviceKind::Cpu {
        let context = CpuBackend::planned_memory(&shape, &sizes, 1);
        return Ok(vec![ShareEstimate {
            device: placement.first().index,
            layers: 0..config.n_layer,
            memory: MemoryEstimate {
                weights_bytes: gguf.tensors().iter().map(|t| t.n_bytes()).sum(),
                kv_bytes: context.kv_bytes,
                host_bytes: context.host_bytes,
                device_bytes: context.device_bytes,
            },
        }]);
    }
    if placement.mode() == SplitMode::Tensors {
        let shares = placement.tensor_shares(&TensorSplitShape::of(&config, gguf))?;
        let (n, last) = (shares.len(), shares.len() - 1); // never empty
        return Ok((placement.devices().iter().zip(shares).enumerate())
            .map(|(i, (placed, share))| {
                let local = share.shape_of(shape);
                let context = GpuBackend::planned_tensor_share(&local, &sizes, 1, i == last, n);
                ShareEstimate {
                    device: placed.index,
                    layers: 0..config.n_layer,
                    memory: MemoryEstimate {
                        weights_bytes: tensor_share_bytes(gguf, &config, &share, i == last),
                        kv_bytes: context.kv_bytes,
                        host_bytes: context.host_bytes,
                        device_bytes: context.device_bytes,
                    },
                }
            })
            .collect());
    }
    let shares = placement.layer_shares(shape.n_layer)?;
    Ok(placement
        .devices()
        .iter()
        .zip(shares)
        .map(|(placed, layers)| {
            let context = GpuBackend::planned_memory(&shape, &sizes, 1, layers.clone());
            ShareEstimate {
                device: placed.index,
                memory: MemoryEstimate {
                    weights_bytes: uploaded_bytes(gguf, &config, &layers),
                    kv_bytes: context.kv_bytes,
                    host_bytes: context.host_bytes,
                    device_bytes: context.device_bytes,
                },
                layers,
            }
        })
        .collect())
}

/// The bytes of the tensors a GPU of a tensor split uploads
/// (`HostWeights::upload_tensor_share`): its part of each layer's matrices (rows, or the
/// columns of the attention output and down matrices) and biases, the whole norms, the
/// embedding, and the output norm and head on the last device (`head`).
fn tensor_share_bytes(
    gguf: &GgufFile<'_>,
    config: &ModelConfig,
    share: &TensorShare,
    head: bool,
) -> u64 {
    let (q, kv) = (share.q_heads.len(), share.kv_heads.len());
    // The share's part of a tensor: `of` of its `whole` rows, or of its columns.
    let part = |name: &str| -> Part {
        let tensor = name.split('.').nth(2).unwrap_or("");
        let (of, whole, columns) = match tensor {
            "attn_q" => (q, config.n_head, false),
            "attn_k" | "attn_v" => (kv, config.n_head_kv, false),
            "attn_qkv" => (q + 2 * kv, config.n_head + 2 * config.n_head_kv, false),
            "attn_output" => (q, config.n_head, true),
            "ffn_gate" | "ffn_up" => (share.ff.len(), config.n_ff, false),
            "ffn_down" => (share.ff.len(), config.n_ff, true),
            _ => (1, 1, false),
        };
        Part { of, whole, columns }
    };
    let layers: u128 = gguf
        .tensors()
        .iter()
        .filter(|t| t.name().starts_with("blk."))
        .map(|t| u128::from(device_bytes(t, part(t.name()))))
        .sum();
    let mut bytes = saturating_bytes(layers) + tensor_bytes(gguf, "token_embd.weight");
    if head {
        bytes += head_bytes(gguf, config);
    }
    bytes
}

/// The bytes of the tensors a GPU running `layers` uploads (`HostWeights::upload`): the
/// layers' `blk.N.` tensors, the embedding on the first share, the output norm and head
/// on the last, where a head tied to the embedding is a second copy.
fn uploaded_bytes(gguf: &GgufFile<'_>, config: &ModelConfig, layers: &Range<usize>) -> u64 {
    let layer_of = |name: &str| {
        let rest = name.strip_prefix("blk.")?;
        rest.split('.').next()?.parse::<usize>().ok()
    };
    let mut bytes: u64 = gguf
        .tensors()
        .iter()
        .filter(|t| layer_of(t.name()).is_some_and(|layer| layers.contains(&layer)))
        .map(|t| device_bytes(t, Part::WHOLE))
        .sum();
    if layers.start == 0 {
        bytes += tensor_bytes(gguf, "token_embd.weight");
    }
    if layers.end == config.n_layer {
        bytes += head_bytes(gguf, config);
    }
    bytes
}

/// The bytes of the output norm and head a GPU uploads, where a head tied to the
/// embedding is a second copy of it.
fn head_bytes(gguf: &GgufFile<'_>, config: &ModelConfig) -> u64 {
    let head = match config.tied_output {
        true => "token_embd.weight",
        false => "output.weight",
    };
    tensor_bytes(gguf, "output_norm.weight") + tensor_bytes(gguf, head)
}

/// The bytes a GPU holds of the tensor `name`, 0 where the file has none.
fn tensor_bytes(gguf: &GgufFile<'_>, name: &str) -> u64 {
    gguf.tensor_info(name)
        .map_or(0, |t| device_bytes(t, Part::WHOLE))
}

/// The part of a tensor a GPU holds: `of` of its `whole` rows, or of its columns.
#[derive(Clone, Copy)]
struct Part {
    of: usize,
    whole: usize,
    columns: bool,
}

impl Part {
    const WHOLE: Part = Part {
        of: 1,
        whole: 1,
        columns: false,
    };
}

/// The bytes a GPU holds of `part` of `t`: a matrix's rows at the stride of the layout
/// they are uploaded in (`GpuMatrix::upload`: split Q6_K rows padded to 16 bytes), a
/// vector's values as f32, whatever the file's type (a norm's weights or a bias, widened
/// at load).
fn device_bytes(t: &TensorInfo<'_>, part: Part) -> u64 {
    let whole = part.whole.max(1) as u64;
    let share = |n: u64| (u128::from(n) * part.of as u128 / u128::from(whole)) as u64;
    let (dtype, shape) = (t.dtype(), t.shape());
    let (&n_cols, rows) = match shape.split_first() {
        Some((n_cols, rows)) if !rows.is_empty() => (n_cols, rows),
        _ => return share(t.n_elements()).saturating_mul(4),
    };
    let n_rows: u64 = rows.iter().product();
    let (n_rows, n_cols) = match part.columns {
        true => (n_rows, share(n_cols)),
        false => (share(n_rows), n_cols),
    };
    let n_cols = n_cols as usize;
    BlockLayout::for_upload(dtype, n_cols)
        .row_stride(dtype, n_cols)
        .map_or(u64::MAX, |stride| stride.saturating_mul(n_rows))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gguf::GgufWriter;
    use crate::tensor::GgmlType;

    /// A file of an F16 norm of 1,536 values and a Q6_K matrix of 4 rows of 1,536 values
    /// (six 210-byte blocks a row: 1,260 bytes).
    fn norm_and_q6_k_matrix() -> Vec<u8> {
        let mut writer = GgufWriter::new();
        (writer.add_tensor("norm.weight", GgmlType::F16, &[1536], vec![0; 2 * 1536]))
            .expect("an f16 vector");
        (writer.add_tensor("w.weight", GgmlType::Q6K, &[1536, 4], vec![0; 4 * 1260]))
            .expect("a Q6_K matrix");
        writer.to_bytes()
    }

    #[test]
    fn a_gpu_holds_vectors_as_f32_and_split_q6_k_rows_padded_to_16_bytes() {
        let bytes = norm_and_q6_k_matrix();
        let gguf = GgufFile::parse(&bytes).expect("the file parses");
        let norm = gguf.tensor_info("norm.weight").expect("the norm");
        let matrix = gguf.tensor_info("w.weight").expect("the matrix");
        assert_eq!(device_bytes(norm, Part::WHOLE), 4 * 1536);
        assert_eq!(device_bytes(matrix, Part::WHOLE), 4 * 1264);
        // A tensor split's half: of the rows at the whole row's stride, of the columns at
        // their own (768 values: 630 bytes, padded to 640).
        let half = |columns| Part {
            of: 1,
            whole: 2,
            columns,
        };
        assert_eq!(device_bytes(matrix, half(false)), 2 * 1264);
        assert_eq!(device_bytes(matrix, half(true)), 4 * 640);
        assert_eq!(device_bytes(norm, half(false)), 4 * 768);
    }
}
