//! The targets' side of the C ABI: loading models from bytes, reading `rf_last_error`,
//! and making every panic a crash the fuzzer sees.
//!
//! The library catches panics at its boundary and returns `RF_ERR_PANIC` (its hook keeps
//! them quiet), which would hide them from libFuzzer. [`abort_on_panic`] installs, after
//! the library's hook, one that prints the panic and its backtrace and aborts, so a panic
//! anywhere becomes a crash with an input to replay.

use std::ffi::CStr;
use std::ptr;
use std::sync::Once;

use rocmforge::ffi::*;

/// Makes every panic, inside the library's boundary or not, abort with a backtrace.
pub fn abort_on_panic() {
    static INSTALL: Once = Once::new();
    INSTALL.call_once(|| {
        // One call through the boundary installs the library's quiet hook first, so the
        // one installed here replaces it instead of being wrapped by it.
        let mut count = 0usize;
        // SAFETY: `count` is writable.
        let _ = unsafe { rf_device_count(&mut count) };
        std::panic::set_hook(Box::new(|info| {
            let backtrace = std::backtrace::Backtrace::force_capture();
            eprintln!("panic: {info}\n{backtrace}");
            std::process::abort();
        }));
    });
}

/// `rf_last_error` of this thread, as text.
pub fn last_error() -> String {
    // SAFETY: `rf_last_error` never returns NULL and its string lives until the next
    // failing call on this thread.
    unsafe { CStr::from_ptr(rf_last_error()) }
        .to_string_lossy()
        .into_owned()
}

/// Fails (a crash for the fuzzer) on `RF_ERR_PANIC`: the library caught a bug of its own.
/// [`abort_on_panic`] aborts before this is reached; this holds even without it.
pub fn assert_no_panic(status: rf_status, call: &str) {
    assert!(
        status != rf_status::RF_ERR_PANIC,
        "{call} caught a panic: {}",
        last_error()
    );
}

/// CPU, one thread, no callbacks: what every target loads with.
pub fn model_params(vocab_only: bool) -> rf_model_params {
    rf_model_params {
        device: RF_DEVICE_CPU,
        n_threads: 1,
        vocab_only,
        ..rf_model_default_params()
    }
}

/// A model loaded from `bytes`, which it borrows: the caller keeps them alive and
/// unchanged until [`free_model`]. The error is the status and `rf_last_error`.
pub fn load_model(bytes: &[u8], vocab_only: bool) -> Result<*mut rf_model, (rf_status, String)> {
    let params = model_params(vocab_only);
    let mut model = ptr::null_mut();
    // SAFETY: `bytes` is readable for its length and outlives the model by the caller's
    // word; `params` and `model` are valid.
    let status = unsafe {
        rf_model_load_from_memory(bytes.as_ptr().cast(), bytes.len(), &params, &mut model)
    };
    assert_no_panic(status, "rf_model_load_from_memory");
    match status {
        rf_status::RF_OK => Ok(model),
        other => Err((other, last_error())),
    }
}

/// Bytes that live as long as the process: a model the target loads once and keeps.
pub fn leak(bytes: Vec<u8>) -> &'static [u8] {
    Box::leak(bytes.into_boxed_slice())
}

/// Frees a model from [`load_model`].
///
/// # Safety
/// `model` must come from [`load_model`] and not have been freed.
pub unsafe fn free_model(model: *mut rf_model) {
    // SAFETY: this function's contract.
    unsafe { rf_model_free(model) }
}
