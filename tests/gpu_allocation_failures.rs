//! With the test-only `fault-injection` feature, the k-th fallible acquisition fails, host
//! or device (`host_memory::fault_injection`). For every k over loading a tiny model on a
//! GPU, making a context and decoding a prompt, the step that meets the failure returns an
//! out-of-memory error (host or device), and once everything made is dropped the device's
//! allocation tracker is back at zero (when the model was made) and the device's free memory
//! is where it was before the sweep; the next run gives the logits of the first. A failure
//! that an optional resource's fallback absorbs must give logits within 1e-2 (relative L2)
//! of those.
//!
//! One test: the failure counter is process-wide.
#![cfg(feature = "fault-injection")]

mod common;
mod gpu_common;

use std::sync::Arc;

use common::relative_l2;
use common::tiny_model::backends::first_gpu;
use common::tiny_model::variants::variants;
use gpu_common::{assert_all_freed, gpu};
use rocmforge::Error;
use rocmforge::context::{Batch, Context, ContextParams};
use rocmforge::gguf::OwnedGguf;
use rocmforge::host_memory::fault_injection;
use rocmforge::model::{Model, Placement};

/// Which step of a run failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Step {
    Load,
    Context,
    Decode,
}

const PROMPT: [i32; 12] = [1, 5, 9, 2, 7, 30, 11, 4, 8, 3, 6, 10];

#[test]
#[ignore = "needs a GPU: run with --include-ignored on a GPU machine"]
fn every_failed_device_or_host_acquisition_is_out_of_memory_and_frees_everything() {
    let probe = gpu();
    let placement = first_gpu();
    let all = variants();
    for variant in [&all[4], &all[14]] {
        let bytes = variant.gguf();
        fault_injection::fail_at(0);
        let expected = run(&bytes, &placement)
            .unwrap_or_else(|(step, e)| panic!("{}: {step:?} failed: {e}", variant.name));
        let n = fault_injection::count();
        let free_before = probe.memory_info().unwrap().free_bytes;
        let mut failed_at = Vec::with_capacity(n);
        let mut fell_back = Vec::new();
        for k in 1..=n {
            fault_injection::fail_at(k);
            let (step, error) = match run(&bytes, &placement) {
                // An optional resource whose absence has another path (the prefill's BLAS
                // products fall back to the GPU's own kernels, which round differently):
                // the logits must stay within the GPU-vs-CPU bound of the first run's.
                Ok(logits) => {
                    let distance = relative_l2(&logits, &expected);
                    assert!(
                        distance <= 1e-2,
                        "{}: acquisition {k} absorbed, logits {distance:.2e} away",
                        variant.name
                    );
                    fell_back.push(k);
                    continue;
                }
                Err(failure) => failure,
            };
            assert!(
                matches!(error, Error::OutOfMemory(_) | Error::DeviceOutOfMemory(_)),
                "{}: acquisition {k}, at {step:?}: {error}",
                variant.name
            );
            assert_eq!(
                probe.memory_info().unwrap().free_bytes,
                free_before,
                "{}: acquisition {k} failed at {step:?} and left device memory behind",
                variant.name
            );
            failed_at.push(step);
            fault_injection::fail_at(0);
            let again = run(&bytes, &placement).unwrap_or_else(|(step, e)| {
                panic!(
                    "{}: after acquisition {k}: {step:?} failed: {e}",
                    variant.name
                )
            });
            assert_eq!(again, expected, "{}: after acquisition {k}", variant.name);
        }
        let at = |step| failed_at.iter().filter(|s| **s == step).count();
        let steps = [Step::Load, Step::Context, Step::Decode].map(at);
        eprintln!(
            "{}: {n} fallible acquisitions failed in turn on the GPU: {} in the load, {} in \
             context creation, {} in the decode; {} taken by a fallback ({fell_back:?})",
            variant.name,
            steps[0],
            steps[1],
            steps[2],
            fell_back.len()
        );
        assert!(
            steps.iter().all(|&s| s > 0),
            "{}: a step was missed",
            variant.name
        );
    }
}

/// Loads the model on the GPU, makes a context and decodes [`PROMPT`]; the last token's
/// logits, or the step that failed and its error. Whatever was made is dropped before it
/// returns, and when the model was made its device's tracker must then be at zero.
fn run(bytes: &[u8], placement: &Placement) -> Result<Vec<f32>, (Step, Error)> {
    let gguf = OwnedGguf::from_buffer(bytes.to_vec()).map_err(|e| (Step::Load, e))?;
    let model = Model::from_gguf_on(gguf, placement.clone()).map_err(|e| (Step::Load, e))?;
    let model = Arc::new(model);
    let device = model.device().expect("the model is on the GPU").clone();
    let result = decode(&model);
    drop(model);
    assert_all_freed(&device);
    result
}

fn decode(model: &Arc<Model>) -> Result<Vec<f32>, (Step, Error)> {
    let params = ContextParams {
        n_ctx: 64,
        n_threads: 1,
        ..ContextParams::default()
    };
    let mut context = Context::new(Arc::clone(model), &params).map_err(|e| (Step::Context, e))?;
    context
        .decode(&Batch {
            tokens: &PROMPT,
            ..Batch::default()
        })
        .map_err(|e| (Step::Decode, e))?;
    context
        .logits(-1)
        .map(<[f32]>::to_vec)
        .map_err(|e| (Step::Decode, e))
}
