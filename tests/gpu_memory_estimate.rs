//! The memory estimate for a GPU context against what the context reports after a decode:
//! the device bytes (KV cache, activations, the prefill GEMM's scratch, logits) within 5%
//! at three context and batch sizes, on the tiny Q4_0 model.

mod common;
mod gpu_common;

use std::sync::Arc;

use common::tiny_model::backends::first_gpu;
use gpu_common::gpu;
use rocmforge::context::{Batch, Context, ContextParams};
use rocmforge::gguf::OwnedGguf;
use rocmforge::memory_estimate::estimate;
use rocmforge::model::Model;

#[test]
#[ignore = "needs a GPU: run with --include-ignored on a GPU machine"]
fn the_estimate_matches_a_gpu_context_at_three_sizes() {
    let _device = gpu();
    let bytes = common::tiny_model::variants::variants()[3].gguf();
    let open = || OwnedGguf::from_buffer(bytes.clone()).unwrap();
    for (n_ctx, n_batch) in [(256, 8), (2048, 512), (8192, 512)] {
        let params = ContextParams {
            n_ctx,
            n_batch,
            n_threads: 1,
            ..ContextParams::default()
        };
        let predicted = estimate(open().file(), &first_gpu(), &params).unwrap();
        let model = Arc::new(Model::from_gguf_on(open(), first_gpu()).unwrap());
        let mut ctx = Context::new(model, &params).unwrap();
        ctx.decode(&Batch {
            tokens: &[3, 141, 59, 26],
            ..Batch::default()
        })
        .unwrap();
        ctx.logits(-1).unwrap();
        let report = ctx.memory();
        for (what, estimated, measured) in [
            ("device", predicted.device_bytes, report.device_bytes),
            ("host", predicted.host_bytes, report.host_bytes),
        ] {
            let error = (estimated as f64 - measured as f64).abs() / measured as f64;
            println!(
                "n_ctx {n_ctx}, n_batch {n_batch}: {what} estimated {estimated}, measured {measured} ({:.2}%)",
                100.0 * error
            );
            assert!(
                error <= 0.05,
                "n_ctx {n_ctx}: {what} {:.1}% apart",
                100.0 * error
            );
        }
    }
}
