//! Models: configuration from GGUF metadata, weights by name, and one forward pass per
//! architecture family.

mod config;
pub(crate) mod llama;
mod ops;
mod weights;

use std::path::Path;

use self_cell::self_cell;

pub use config::{Architecture, ModelConfig, RopeStyle};
use weights::LlamaWeights;

use crate::error::Result;
use crate::gguf::{GgufFile, OwnedGguf};

self_cell!(
    struct LoadedWeights {
        owner: OwnedGguf,
        #[covariant]
        dependent: LlamaWeights,
    }
);

/// A loaded model: its file, configuration and weight views. Immutable after loading,
/// so any number of contexts and threads may share it.
pub struct Model {
    weights: LoadedWeights,
    config: ModelConfig,
}

impl Model {
    /// Maps the GGUF file at `path` and checks its weights against its configuration.
    pub fn open(path: &Path) -> Result<Model> {
        Model::from_gguf(OwnedGguf::open(path)?)
    }

    pub fn from_gguf(gguf: OwnedGguf) -> Result<Model> {
        let config = ModelConfig::from_gguf(gguf.file())?;
        let weights = LoadedWeights::try_new(gguf, |g| LlamaWeights::from_gguf(g.file(), &config))?;
        Ok(Model { weights, config })
    }

    pub fn config(&self) -> &ModelConfig {
        &self.config
    }

    pub fn gguf(&self) -> &GgufFile<'_> {
        self.weights.borrow_owner().file()
    }

    pub(crate) fn weights(&self) -> &LlamaWeights<'_> {
        self.weights.borrow_dependent()
    }
}
