//! With the test-only `panic-test` feature, `WorkerPool::panic_in_next_worker_task` makes
//! a task on a CPU worker thread panic. In an `rf_decode`, that panic is caught on the
//! worker, never reaches the process's panic hook there, and comes back to the caller as
//! `RF_ERR_PANIC` with a message; the context is then unusable (as after any panic), and
//! a fresh context on the same model decodes as before.
//!
//! The hook this test installs records every panic that reaches it. It is installed before
//! the library's first call, so the library's hooks (the C boundary's, the pool's) chain
//! to it the way they chain to a host's. One test in this file: the hook is process-wide.
#![cfg(feature = "panic-test")]

mod common;

use std::ptr;
use std::sync::Mutex;

use common::SMOLLM2;
use common::ffi::{decode_last_logits, last_error, load_model};
use rocmforge::backend::cpu::WorkerPool;
use rocmforge::ffi::{
    rf_context, rf_context_default_params, rf_context_free, rf_context_new, rf_model,
    rf_model_free, rf_status,
};

/// The messages of the panics that reached the host's hook.
static HOOK_SAW: Mutex<Vec<String>> = Mutex::new(Vec::new());

/// Enough tokens that every matmul of the prompt has tasks for the worker threads.
const PROMPT: [i32; 24] = [
    1, 9690, 198, 2683, 359, 253, 5356, 5646, 11173, 3365, 3511, 308, 34519, 28, 7018, 411, 407,
    19712, 8182, 2, 198, 1, 4093, 198,
];

#[test]
fn a_panic_on_a_cpu_worker_returns_rf_err_panic_and_prints_nothing() {
    std::panic::set_hook(Box::new(|info| {
        // Printed too, so that a failing assertion of this test still shows.
        eprintln!("{info}");
        let mut saw = HOOK_SAW.lock().unwrap_or_else(|e| e.into_inner());
        saw.push(info.to_string());
    }));
    let model = load_smollm2();

    let ctx = new_context(model);
    let expected = decode_last_logits(ctx, &PROMPT).expect("a decode before any panic");
    // SAFETY: a live context, freed once.
    unsafe { rf_context_free(ctx) };

    let ctx = new_context(model);
    WorkerPool::panic_in_next_worker_task();
    let status = decode_last_logits(ctx, &PROMPT).expect_err("the decode whose worker task panics");
    assert_eq!(status, rf_status::RF_ERR_PANIC, "{}", last_error());
    let message = last_error();
    assert!(
        message.contains("forced in a CPU worker task") && message.contains("CPU worker thread"),
        "{message}"
    );
    assert_eq!(
        decode_last_logits(ctx, &PROMPT).expect_err("a decode on the context the panic left"),
        rf_status::RF_ERR_PANIC
    );
    // SAFETY: as above.
    unsafe { rf_context_free(ctx) };

    let ctx = new_context(model);
    let again =
        decode_last_logits(ctx, &PROMPT).expect("a decode on a fresh context after the panic");
    // SAFETY: live handles, freed once, the context first.
    unsafe {
        rf_context_free(ctx);
        rf_model_free(model);
    }
    assert_eq!(again, expected, "the fresh context's logits differ");

    // Copied out: the hook takes the lock again if the assertion fails.
    let saw = HOOK_SAW.lock().unwrap_or_else(|e| e.into_inner()).clone();
    assert!(saw.is_empty(), "the host's panic hook saw {saw:?}");
}

fn load_smollm2() -> *mut rf_model {
    load_model(SMOLLM2)
}

/// A context of four threads: three workers to take tasks.
fn new_context(model: *mut rf_model) -> *mut rf_context {
    let params = rocmforge::ffi::rf_context_params {
        n_ctx: 256,
        n_threads: 4,
        ..rf_context_default_params()
    };
    let mut ctx = ptr::null_mut();
    // SAFETY: a live model, parameters from the defaults and an out-pointer to a local.
    let status = unsafe { rf_context_new(model, &params, &mut ctx) };
    assert_eq!(status, rf_status::RF_OK, "a context: {}", last_error());
    ctx
}
