//! The backends the tiny models run on, what each is held to, and the macro that runs a
//! check on every one of them.

use std::sync::Arc;

use rocmforge::gguf::OwnedGguf;
use rocmforge::model::Model;

use super::engine::{Engine, LibraryEngine};
use super::reference::Reference;
use super::tolerance::Tolerance;
use super::variants::Variant;

/// Where a model's forward pass runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    Cpu,
}

impl Backend {
    /// The library running `gguf` on this backend.
    pub fn engine(self, gguf: Vec<u8>) -> LibraryEngine {
        let file = OwnedGguf::from_buffer(gguf).expect("the tiny model parses");
        let model = match self {
            Backend::Cpu => Model::from_gguf(file),
        };
        LibraryEngine::new(Arc::new(model.expect("the tiny model loads")))
    }

    /// What this backend's logits are compared with, and how closely. The CPU is held to
    /// the float64 reference; every other backend will be held to the CPU backend's
    /// logits (`Backend::Cpu.engine(gguf)`) with a tolerance of its own: the CPU is the
    /// oracle of every device (issue 10).
    pub fn oracle(self, variant: &Variant, gguf: &[u8]) -> (Box<dyn Engine>, Tolerance) {
        match self {
            Backend::Cpu => (
                Box::new(Reference::new(&variant.spec, gguf)),
                Tolerance::cpu_against_reference(&variant.spec.types),
            ),
        }
    }
}

/// `on_every_backend!(check, …)` defines, for each function `check(Backend)`, a module
/// `check` holding one test per backend (`check::cpu`), so a failure names the backend
/// and each can be run alone. A backend is one line: a GPU's test carries
/// `#[ignore = "needs a GPU: …"]` as every GPU test does (see tests/gpu_common), so a
/// machine without one counts it as ignored, never as passed.
#[macro_export]
macro_rules! on_every_backend {
    ($($check:ident),+ $(,)?) => {$(
        mod $check {
            #[test]
            fn cpu() {
                super::$check($crate::common::tiny_model::backends::Backend::Cpu);
            }
        }
    )+};
}
