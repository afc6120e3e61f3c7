//! Models: configuration from GGUF metadata, weights by name, and one forward pass per
//! architecture family, each written once for every backend.

mod config;
mod llama;
mod placement;
mod weights;

use std::path::Path;
use std::sync::atomic::AtomicBool;

use self_cell::self_cell;

pub use config::{Architecture, ModelConfig};
pub use placement::Placement;
use weights::HostWeights;

pub use crate::backend::RopeStyle;
use crate::backend::cpu::CpuBackend;
use crate::error::{Error, Result};
use crate::gguf::{GgufFile, OwnedGguf};

self_cell!(
    struct LoadedWeights {
        owner: OwnedGguf,
        #[covariant]
        dependent: HostWeights,
    }
);

/// A loaded model: its file, configuration and weight views. Immutable after loading,
/// so any number of contexts and threads may share it.
pub struct Model {
    weights: LoadedWeights,
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

    /// A model whose weights live on `placement`'s device.
    pub fn from_gguf_on(gguf: OwnedGguf, placement: Placement) -> Result<Model> {
        if placement.device.kind != crate::backend::DeviceKind::Cpu {
            return Err(Error::Unsupported(format!(
                "{}: this build runs the forward pass on the CPU only",
                placement.device.name
            )));
        }
        let config = ModelConfig::from_gguf(gguf.file())?;
        let weights = LoadedWeights::try_new(gguf, |g| HostWeights::from_gguf(g.file(), &config))?;
        Ok(Model {
            weights,
            config,
            placement,
        })
    }

    /// The device that holds the weights and runs the forward pass.
    pub fn placement(&self) -> &Placement {
        &self.placement
    }

    /// Bytes of weights held in device memory (0 on the CPU, which reads the file's
    /// mapping in place).
    pub fn device_bytes(&self) -> u64 {
        0
    }

    pub fn config(&self) -> &ModelConfig {
        &self.config
    }

    pub fn gguf(&self) -> &GgufFile<'_> {
        self.weights.borrow_owner().file()
    }

    /// Runs the step `backend` holds through this model's family of forward pass.
    pub fn forward(&self, backend: &mut CpuBackend, cancel: &AtomicBool) -> Result<()> {
        match self.config.architecture {
            Architecture::Llama => llama::forward(
                &self.config,
                self.weights.borrow_dependent(),
                backend,
                cancel,
            ),
        }
    }
}
