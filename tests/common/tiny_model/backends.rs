//! The backends the tiny models run on, what each is held to, and the macro that runs a
//! check on every one of them.

use std::sync::Arc;

use rocmforge::backend::{DeviceChoice, DeviceKind};
use rocmforge::context::{Context, ContextParams};
use rocmforge::gguf::OwnedGguf;
use rocmforge::model::{Model, Placement};

use super::engine::{Engine, LibraryEngine};
use super::reference::Reference;
use super::tolerance::Tolerance;
use super::variants::Variant;

/// Where a model's forward pass runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    Cpu,
    /// The first usable GPU; a test on it fails when there is none.
    Gpu,
}

impl Backend {
    /// The library running `gguf` on this backend.
    pub fn engine(self, gguf: Vec<u8>) -> LibraryEngine {
        let file = OwnedGguf::from_buffer(gguf).expect("the tiny model parses");
        let model = match self {
            Backend::Cpu => Model::from_gguf(file),
            Backend::Gpu => Model::from_gguf_on(file, first_gpu()),
        };
        LibraryEngine::new(Arc::new(model.expect("the tiny model loads")))
    }

    /// What this backend's logits are compared with, and how closely: the float64
    /// reference for both. The GPU computes its products without the CPU's 8-bit
    /// activations, so the reference (closer to it than the CPU is) bounds it tighter.
    pub fn oracle(self, variant: &Variant, gguf: &[u8]) -> (Box<dyn Engine>, Tolerance) {
        let tolerance = match self {
            Backend::Cpu => Tolerance::cpu_against_reference(&variant.spec.types),
            Backend::Gpu => Tolerance::gpu_against_reference(&variant.spec.types),
        };
        (Box::new(Reference::new(&variant.spec, gguf)), tolerance)
    }
}

/// A context of `params` for tiny model `variant` placed on `placement`.
pub fn tiny_context(variant: usize, placement: Placement, params: &ContextParams) -> Context {
    let bytes = super::variants::variants()[variant].gguf();
    let gguf = OwnedGguf::from_buffer(bytes).unwrap();
    let model = Arc::new(Model::from_gguf_on(gguf, placement).unwrap());
    Context::new(model, params).unwrap()
}

/// The first usable GPU of the device list; panics (failing the test) without one.
pub fn first_gpu() -> Placement {
    let devices = rocmforge::backend::enumerate();
    let index = devices
        .iter()
        .position(|d| d.kind != DeviceKind::Cpu && d.usable)
        .expect("this test needs a usable GPU and none was found");
    Placement::choose(&devices, DeviceChoice::Index(index)).expect("the GPU is usable")
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

            #[test]
            #[ignore = "needs a GPU: run with --include-ignored on a GPU machine"]
            fn gpu() {
                super::$check($crate::common::tiny_model::backends::Backend::Gpu);
            }
        }
    )+};
}
