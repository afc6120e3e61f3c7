//! A host callback may call back into the library (an `on_text` that asks
//! `rf_token_is_eog` or `rf_status_name`, a log callback that tokenizes). Such a nested
//! call returns before the outer one does; the outer call must still keep its own
//! panics quiet: a panic caught at its boundary is reported through `RF_ERR_PANIC` and
//! `rf_last_error`, never printed by the process's panic hook.
//!
//! With the test-only `panic-test` feature, `WorkerPool::panic_in_next_worker_task` makes
//! the next task on a CPU worker panic; the decode raises it again on the caller. The hook
//! this test installs before the library's first call records every panic that reaches
//! it. One test in this file: the hook is process-wide.
#![cfg(feature = "panic-test")]

mod common;

use std::ffi::c_void;
use std::ptr;
use std::sync::Mutex;

use common::SMOLLM2;
use common::ffi::{last_error, load_model};
use rocmforge::backend::cpu::WorkerPool;
use rocmforge::ffi::*;

/// The messages of the panics that reached the host's hook.
static HOOK_SAW: Mutex<Vec<String>> = Mutex::new(Vec::new());

/// Calls into the library (a nested entry point), then arms a worker panic for the
/// decode of the token just delivered.
unsafe extern "C" fn nested_call_then_panic(
    _text: *const std::ffi::c_char,
    _len: usize,
    _user_data: *mut c_void,
) -> bool {
    let _ = rf_status_name(rf_status::RF_OK as i32);
    WorkerPool::panic_in_next_worker_task();
    true
}

#[test]
fn a_panic_after_a_nested_call_from_a_callback_is_still_quiet() {
    std::panic::set_hook(Box::new(|info| {
        // Printed too, so that a failing assertion of this test still shows.
        eprintln!("{info}");
        let mut saw = HOOK_SAW.lock().unwrap_or_else(|e| e.into_inner());
        saw.push(info.to_string());
    }));
    let model = load_model(SMOLLM2);
    // Four threads: three workers to take the decode's tasks.
    let params = rf_context_params {
        n_ctx: 256,
        n_threads: 4,
        ..rf_context_default_params()
    };
    let (mut ctx, mut sampler) = (ptr::null_mut(), ptr::null_mut());
    let greedy = rf_sampler_params {
        temperature: 0.0,
        ..rf_sampler_default_params()
    };
    let prompt = "The three primary colors are";
    let generate = rf_generate_params {
        max_tokens: 8,
        ..rf_generate_default_params()
    };
    // SAFETY: a live model, valid parameters and out-pointers, `prompt` readable for its
    // length, a callback of the right type; each handle freed once, the context first.
    unsafe {
        assert_eq!(rf_context_new(model, &params, &mut ctx), rf_status::RF_OK);
        assert_eq!(rf_sampler_new(&greedy, &mut sampler), rf_status::RF_OK);
        let status = rf_generate(
            ctx,
            sampler,
            prompt.as_ptr().cast(),
            prompt.len(),
            &generate,
            Some(nested_call_then_panic),
            ptr::null_mut(),
        );
        assert_eq!(status, rf_status::RF_ERR_PANIC, "{}", last_error());
        rf_sampler_free(sampler);
        rf_context_free(ctx);
        rf_model_free(model);
    }
    // Copied out: the hook takes the lock again if the assertion fails.
    let saw = HOOK_SAW.lock().unwrap_or_else(|e| e.into_inner()).clone();
    assert!(saw.is_empty(), "the host's panic hook saw {saw:?}");
}
