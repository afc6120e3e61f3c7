//! Models: configuration from GGUF metadata, weights by name, and one forward pass per
//! architecture family, each written once for every backend.

mod config;
mod llama;
mod placement;
mod weights;

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use self_cell::self_cell;

pub use config::{Architecture, FfnActivation, ModelConfig, SlidingWindow};
pub use placement::Placement;
use weights::{DeviceWeights, HostWeights};

pub use crate::backend::RopeStyle;
use crate::backend::cpu::CpuBackend;
use crate::backend::gpu::ops::GpuOps;
use crate::backend::gpu::{Device, GpuBackend, Stream};
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
/// uploaded to a GPU (the mapping stays for the metadata and the CPU-side views).
enum Weights {
    Host,
    Device(DeviceModel),
}

/// A model's weights on a GPU, the device they are on, and the kernels that use them.
struct DeviceModel {
    device: Device,
    ops: Arc<GpuOps>,
    weights: DeviceWeights,
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

    /// A model whose weights live on `placement`'s device: the CPU reads them from the
    /// file; a GPU gets them uploaded once, shared by every context.
    pub fn from_gguf_on(gguf: OwnedGguf, placement: Placement) -> Result<Model> {
        let config = ModelConfig::from_gguf(gguf.file())?;
        let host = LoadedWeights::try_new(gguf, |g| HostWeights::from_gguf(g.file(), &config))?;
        let weights = match placement.device.kind {
            DeviceKind::Cpu => Weights::Host,
            DeviceKind::Hip | DeviceKind::Cuda => {
                let device = placement.device.open()?;
                let stream = Stream::new(&device)?;
                let ops = Arc::new(GpuOps::load(&device)?);
                let weights = host.borrow_dependent().upload(&stream, &ops)?;
                Weights::Device(DeviceModel {
                    ops,
                    device,
                    weights,
                })
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

    /// The device that holds the weights and runs the forward pass.
    pub fn placement(&self) -> &Placement {
        &self.placement
    }

    /// The GPU that holds the weights; `None` on the CPU. A clone keeps the device's
    /// allocation counters readable after the model is gone.
    pub fn device(&self) -> Option<&Device> {
        match &self.weights {
            Weights::Host => None,
            Weights::Device(d) => Some(&d.device),
        }
    }

    /// Bytes of weights held in device memory (0 on the CPU, which reads the file's
    /// mapping in place).
    pub fn device_bytes(&self) -> u64 {
        match &self.weights {
            Weights::Host => 0,
            Weights::Device(d) => d.weights.device_bytes(),
        }
    }

    /// A context's state on this model's device, of `sizes`, with `n_threads` CPU threads
    /// when the model runs on the CPU.
    pub fn new_backend(&self, sizes: &ContextSizes, n_threads: usize) -> Result<BackendState> {
        let shape = self.config.shape();
        Ok(match &self.weights {
            Weights::Host => BackendState::Cpu(Box::new(CpuBackend::new(shape, sizes, n_threads)?)),
            Weights::Device(d) => BackendState::Gpu(Box::new(GpuBackend::new(
                &d.device,
                Arc::clone(&d.ops),
                shape,
                sizes,
            )?)),
        })
    }

    /// Runs the step `backend` holds through the forward pass (one for every family: the
    /// config and weights switch a family's variations on).
    pub fn forward(&self, backend: &mut BackendState, cancel: &AtomicBool) -> Result<()> {
        match (&self.weights, backend) {
            (Weights::Host, BackendState::Cpu(b)) => {
                llama::forward(&self.config, self.host.borrow_dependent(), &mut **b, cancel)
            }
            (Weights::Device(d), BackendState::Gpu(b)) => b.run_step(&d.ops, cancel, |step| {
                llama::forward(&self.config, &d.weights, step, cancel)
            }),
            _ => Err(Error::InvalidArgument(
                "a context's state is on another device than its model".into(),
            )),
        }
    }
}
