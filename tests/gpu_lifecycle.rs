//! Models and contexts on a GPU give back every device byte: after each of 100
//! load/decode/free cycles the device's allocation tracker is at zero, and the device's
//! free memory after the last cycle is where it was after the first, up to the pages the
//! driver keeps for itself (`gpu_common::DRIVER_FREE_MEMORY_SLACK`).

mod common;
mod gpu_common;

use std::sync::Arc;

use common::tiny_model::backends::first_gpu;
use gpu_common::{DRIVER_FREE_MEMORY_SLACK, assert_all_freed, gpu};
use rocmforge::context::{Batch, Context, ContextParams};
use rocmforge::gguf::OwnedGguf;
use rocmforge::model::Model;

#[test]
#[ignore = "needs a GPU: run with --include-ignored on a GPU machine"]
fn load_decode_free_cycles_leave_no_device_memory_behind() {
    let probe = gpu();
    let placement = first_gpu();
    let bytes = common::tiny_model::variants::variants()[3].gguf();
    let mut free_after_warm_up = 0;
    for cycle in 0..100 {
        let gguf = OwnedGguf::from_buffer(bytes.clone()).unwrap();
        let model = Arc::new(Model::from_gguf_on(gguf, placement.clone()).unwrap());
        let device = model.device().expect("the model is on the GPU").clone();
        assert!(device.memory_stats().live_bytes >= model.device_bytes());
        let params = ContextParams {
            n_ctx: 64,
            n_threads: 1,
            ..ContextParams::default()
        };
        let mut context = Context::new(Arc::clone(&model), &params).unwrap();
        context
            .decode(&Batch {
                tokens: &[1, 2, 3, 4, 5],
                ..Batch::default()
            })
            .unwrap();
        assert!(context.logits(-1).unwrap().iter().all(|l| l.is_finite()));
        drop(context);
        drop(model);
        assert_all_freed(&device);
        if cycle == 0 {
            eprintln!("cycle 0: {:?}", device.memory_stats());
            free_after_warm_up = probe.memory_info().unwrap().free_bytes;
        }
    }
    let free_at_end = probe.memory_info().unwrap().free_bytes;
    eprintln!(
        "free device memory: {free_after_warm_up} bytes after cycle 0, {free_at_end} after 100"
    );
    assert!(
        free_after_warm_up.abs_diff(free_at_end) <= DRIVER_FREE_MEMORY_SLACK,
        "free memory moved by {} bytes",
        free_after_warm_up.abs_diff(free_at_end)
    );
}
