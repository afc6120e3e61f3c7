//! Models: configuration from GGUF metadata, weights by name, and one forward pass per
//! architecture family, each written once for every backend.

mod config;
mod llama;
mod placement;
mod weights;

use std::ops::Range;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use self_cell::self_cell;

pub use config::{Architecture, FfnActivation, ModelConfig, SlidingWindow};
pub use placement::{MAX_SHARES, PlacedDevice, Placement, split_layers};
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
/// uploaded to one GPU or split by layers over several (the mapping stays for the
/// metadata and the CPU-side views).
enum Weights {
    Host,
    /// In layer order; never empty.
    Device(Vec<DeviceModel>),
}

/// A model's weights on a GPU (all of them, or a layer split's share), the device they
/// are on, and the kernels that use them.
struct DeviceModel {
    device: Device,
    ops: Arc<GpuOps>,
    layers: Range<usize>,
    weights: DeviceShare,
}

impl DeviceModel {
    /// Opens `placed`'s GPU, its buffers held under `limit` bytes, and uploads the
    /// weights of `layers` there.
    fn load(
        placed: &PlacedDevice,
        limit: Option<u64>,
        host: &HostWeights<'_>,
        layers: Range<usize>,
    ) -> Result<Self> {
        let device = placed.device.open_with_limit(limit)?;
        let stream = Stream::new(&device)?;
        let ops = Arc::new(GpuOps::load(&device)?);
        let weights = host.upload(&stream, &ops, layers.clone())?;
        Ok(DeviceModel {
            device,
            ops,
            layers,
            weights,
        })
    }
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
                let shares = placement.layer_shares(config.n_layer)?;
                let parts = placement
                    .devices()
                    .iter()
                    .zip(shares)
                    .map(|(placed, layers)| {
                        let limit = placement.memory_limit();
                        DeviceModel::load(placed, limit, host.borrow_dependent(), layers)
                    })
                    .collect::<Result<Vec<_>>>()?;
                // Each share reads the residual stream from the one before it; without
                // direct access (the hardware has none) the copy goes through the host.
                for pair in parts.windows(2) {
                    pair[1].device.enable_peer_access(&pair[0].device)?;
                }
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
                let shares = parts
                    .iter()
                    .map(|p| {
                        GpuBackend::new(
                            &p.device,
                            Arc::clone(&p.ops),
                            shape,
                            sizes,
                            p.layers.clone(),
                        )
                    })
                    .collect::<Result<Vec<_>>>()?;
                BackendState::Gpu(Box::new(GpuParts::new(shares)?))
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
