//! Models: configuration from GGUF metadata, weights by name, and one forward pass per
//! architecture family, each written once for every backend.

mod config;
mod llama;
mod placement;
mod tensor_split;
mod weights;

use std::ops::Range;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use self_cell::self_cell;

pub use config::{Architecture, FfnActivation, ModelConfig, SlidingWindow};
pub use placement::{MAX_SHARES, PlacedDevice, Placement, SplitMode, split_layers};
pub use tensor_split::{TensorShare, TensorSplitShape, split_tensors};
use weights::{DeviceShare, HostWeights};

pub use crate::backend::RopeStyle;
use crate::backend::cpu::CpuBackend;
use crate::backend::gpu::ops::GpuOps;
use crate::backend::gpu::{Device, GpuBackend, GpuParts, Stream};
use crate::backend::{BackendState, ContextSizes, DeviceKind};
use crate::error::{Error, Result};
use crate::gguf::{GgufFile, OwnedGguf};

self_cell!(
    struct LoadedWeights {
        owner: OwnedGguf,
        #[covariant]
        dependent: HostWeights,
    }
);

/// Where the weights live: read in place from the file's mapping by the CPU, or
/// uploaded to one GPU or split over several (the mapping stays for the metadata and the
/// CPU-side views).
enum Weights {
    Host,
    /// In layer order (device order for a tensor split); never empty.
    Device(Vec<DeviceModel>),
}

/// A model's weights on a GPU (all of them, a layer split's share or a tensor split's),
/// the device they are on, and the kernels that use them.
struct DeviceModel {
    device: Device,
    ops: Arc<GpuOps>,
    layers: Range<usize>,
    /// A tensor split device's part of every layer.
    tensor: Option<TensorShare>,
    weights: DeviceShare,
}

impl DeviceModel {
    /// Opens `placed`'s GPU, its buffers held under `limit` bytes, and uploads there the
    /// weights of `layers`, or a tensor split's `part` of every layer (with the output
    /// head where `head`).
    fn load(
        placed: &PlacedDevice,
        limit: Option<u64>,
        host: &HostWeights<'_>,
        config: &ModelConfig,
        part: DevicePart,
    ) -> Result<Self> {
        let device = placed.device.open_with_limit(limit)?;
        let stream = Stream::new(&device)?;
        let ops = Arc::new(GpuOps::load(&device)?);
        let (layers, tensor, weights) = match part {
            DevicePart::Layers(layers) => {
                let weights = host.upload(&stream, &ops, layers.clone())?;
                (layers, None, weights)
            }
            DevicePart::Tensors { share, head } => {
                let weights =
                    host.upload_tensor_share(&stream, &ops, &share, config.head_dim, head)?;
                (0..config.n_layer, Some(share), weights)
            }
        };
        Ok(DeviceModel {
            device,
            ops,
            layers,
            tensor,
            weights,
        })
    }
}

/// What one GPU of a placement holds.
enum DevicePart {
    Layers(Range<usize>),
    Tensors { share: TensorShare, head: bool },
}

/// One device's share of a model: the layers it runs and the weights it holds.
pub struct Share<'a> {
    /// The device's index in the device list (0: the CPU).
    pub index: usize,
    pub layers: Range<usize>,
    /// The GPU's handle, whose allocation counters cover this share's weights and every
    /// context's state for its layers; `None` on the CPU.
    pub device: Option<&'a Device>,
    /// Bytes of weights in the device's memory (0 on the CPU, which reads the file's
    /// mapping in place).
    pub weights_bytes: u64,
}

/// A loaded model: its file, configuration and weights. Immutable after loading, so any
/// number of contexts and threads may share it.
pub struct Model {
    host: LoadedWeights,
    weights: Weights,
    config: ModelConfig,
    placement: Placement,
}

impl Model {
    /// Maps the GGUF file at `path` and checks its weights against its configuration; the
    /// model runs on the CPU.
    pub fn open(path: &Path) -> Result<Model> {
        Model::from_gguf(OwnedGguf::open(path)?)
    }

    /// A model on the CPU.
    pub fn from_gguf(gguf: OwnedGguf) -> Result<Model> {
        Model::from_gguf_on(gguf, Placement::cpu())
    }

    /// A model whose weights live on `placement`'s devices: the CPU reads them from the
    /// file; each GPU gets its share of the layers uploaded once, shared by every
    /// context. A failure on any GPU frees what the others were given.
    pub fn from_gguf_on(gguf: OwnedGguf, placement: Placement) -> Result<Model> {
        let config = ModelConfig::from_gguf(gguf.file())?;
        let host = LoadedWeights::try_new(gguf, |g| HostWeights::from_gguf(g.file(), &config))?;
        let weights = match placement.first().device.kind {
            DeviceKind::Cpu => Weights::Host,
            DeviceKind::Hip | DeviceKind::Cuda => {
                let gguf_file = host.borrow_owner().file();
                let host = host.borrow_dependent();
                let parts: Vec<DevicePart> = match placement.mode() {
                    SplitMode::Layers => (placement.layer_shares(config.n_layer)?)
                        .into_iter()
                        .map(DevicePart::Layers)
                        .collect(),
                    SplitMode::Tensors => {
                        let shape = TensorSplitShape::of(&config, gguf_file);
                        let shares = placement.tensor_shares(&shape)?;
                        let last = shares.len() - 1; // never empty
                        (shares.into_iter().enumerate())
                            .map(|(i, share)| DevicePart::Tensors {
                                share,
                                head: i == last,
                            })
                            .collect()
                    }
                };
                let limit = placement.memory_limit();
                let parts = (placement.devices().iter().zip(parts))
                    .map(|(placed, part)| DeviceModel::load(placed, limit, host, &config, part))
                    .collect::<Result<Vec<_>>>()?;
                connect(&parts, placement.mode())?;
                Weights::Device(parts)
            }
        };
        Ok(Model {
            host,
            weights,
            config,
            placement,
        })
    }

    pub fn config(&self) -> &ModelConfig {
        &self.config
    }

    pub fn gguf(&self) -> &GgufFile<'_> {
        self.host.borrow_owner().file()
    }

    /// The devices that hold the weights and run the forward pass.
    pub fn placement(&self) -> &Placement {
        &self.placement
    }

    /// The GPU that holds the weights (of the first layers, under a layer split);
    /// `None` on the CPU. A clone keeps the device's allocation counters readable after
    /// the model is gone.
    pub fn device(&self) -> Option<&Device> {
        match &self.weights {
            Weights::Host => None,
            Weights::Device(parts) => parts.first().map(|p| &p.device),
        }
    }

    /// Each device's share of the model, in layer order: one for a model on one device,
    /// one a GPU of a layer split. Under a split that names one GPU twice, each share has
    /// its own `Device` handle (and allocation counters).
    pub fn shares(&self) -> Vec<Share<'_>> {
        let placed = self.placement.devices();
        match &self.weights {
            Weights::Host => vec![Share {
                index: placed[0].index,
                layers: 0..self.config.n_layer,
                device: None,
                weights_bytes: 0,
            }],
            Weights::Device(parts) => parts
                .iter()
                .zip(placed)
                .map(|(p, placed)| Share {
                    index: placed.index,
                    layers: p.layers.clone(),
                    device: Some(&p.device),
                    weights_bytes: p.weights.device_bytes(),
                })
                .collect(),
        }
    }

    /// Bytes of weights held in device memory, on every GPU together (0 on the CPU,
    /// which reads the file's mapping in place).
    pub fn device_bytes(&self) -> u64 {
        match &self.weights {
            Weights::Host => 0,
            Weights::Device(parts) => parts.iter().map(|p| p.weights.device_bytes()).sum(),
        }
    }

    /// A context's state on this model's device, of `sizes`, with `n_threads` CPU threads
    /// when the model runs on the CPU.
    pub fn new_backend(&self, sizes: &ContextSizes, n_threads: usize) -> Result<BackendState> {
        let shape = self.config.shape();
        Ok(match &self.weights {
            Weights::Host => BackendState::Cpu(Box::new(CpuBackend::new(shape, sizes, n_threads)?)),
            Weights::Device(parts) => {
                let last = parts.len() - 1; // never empty
                let shares = (parts.iter().enumerate())
                    .map(|(i, p)| {
                        let ops = Arc::clone(&p.ops);
                        match &p.tensor {
                            None => GpuBackend::new(&p.device, ops, shape, sizes, p.layers.clone()),
                            Some(part) => {
                                let shape = part.shape_of(shape);
                                GpuBackend::new_tensor_share(
                                    &p.device,
                                    ops,
                                    shape,
                                    sizes,
                                    i == last,
                                )
                            }
                        }
                    })
                    .collect::<Result<Vec<_>>>()?;
                let parts = match self.placement.mode() {
                    SplitMode::Layers => GpuParts::new(shares)?,
                    SplitMode::Tensors => GpuParts::tensor_split(shares)?,
                };
                BackendState::Gpu(Box::new(parts))
            }
        })
    }

    /// Runs the step `backend` holds through the forward pass (one for every family: the
    /// config and weights switch a family's variations on).
    pub fn forward(&self, backend: &mut BackendState, cancel: &AtomicBool) -> Result<()> {
        match (&self.weights, backend) {
            (Weights::Host, BackendState::Cpu(b)) => {
                let whole = self.host.borrow_dependent().whole();
                llama::forward(&self.config, whole, &mut **b, cancel)
            }
            (Weights::Device(parts), BackendState::Gpu(b)) => {
                // A tensor split's devices wait for each other inside a step, so all of
                // them run it or none: a cancel is honoured before it starts.
                let never = AtomicBool::new(false);
                let cancel = match self.placement.mode() {
                    SplitMode::Layers => cancel,
                    SplitMode::Tensors if cancel.load(Ordering::Relaxed) => {
                        return Err(Error::Cancelled);
                    }
                    SplitMode::Tensors => &never,
                };
                let ops: Vec<_> = parts.iter().map(|p| Arc::clone(&p.ops)).collect();
                b.run_step(&ops, cancel, |i, step| {
                    let stage = parts[i].weights.stage(); // i < ops.len() == parts.len()
                    llama::forward(&self.config, stage, step, cancel)
                })
            }
            _ => Err(Error::InvalidArgument(
                "a context's state is on another device than its model".into(),
            )),
        }
    }
}

/// Gives the GPUs of a split the direct access to each other's memory they use: a layer
/// split's share reads the residual stream from the one before it (without direct access,
/// which the hardware may lack, the copy goes through the host); a tensor split's kernels
/// read and write every other GPU's memory, which it cannot do without.
fn connect(parts: &[DeviceModel], mode: SplitMode) -> Result<()> {
    match mode {
        SplitMode::Layers => {
            for pair in parts.windows(2) {
                pair[1].device.enable_peer_access(&pair[0].device)?;
            }
        }
        SplitMode::Tensors => {
            for (i, a) in parts.iter().enumerate() {
                for (j, b) in parts.iter().enumerate() {
                    if i != j && !a.device.enable_peer_access(&b.device)? {
                        return Err(Error::Unsupported(format!(
                            "a tensor split over GPUs that cannot reach each other's memory \
                             directly ({:?} and {:?})",
                            a.device, b.device
                        )));
                    }
                }
            }
        }
    }
    Ok(())
}
