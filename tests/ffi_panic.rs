//! With the test-only `panic-test` feature, `rf_model_load("rocmforge:panic")` panics
//! inside the entry point: the boundary turns it into `RF_ERR_PANIC` with a message, and
//! the process (this test) lives on and can load models.
#![cfg(feature = "panic-test")]

mod common;

use std::ffi::CStr;
use std::ptr;

use rocmforge::ffi::*;

#[test]
fn a_panic_inside_an_entry_point_returns_rf_err_panic() {
    let path = "rocmforge:panic";
    let mut model = ptr::null_mut();
    // SAFETY: valid path bytes and out-pointer; NULL params are the defaults.
    let status =
        unsafe { rf_model_load(path.as_ptr().cast(), path.len(), ptr::null(), &mut model) };
    assert_eq!(status, rf_status::RF_ERR_PANIC);
    assert!(model.is_null());
    // SAFETY: rf_last_error never returns NULL.
    let message = unsafe { CStr::from_ptr(rf_last_error()) }.to_string_lossy();
    assert!(message.contains("panic"), "{message}");

    let real = common::model_path(common::SMOLLM2);
    let real = real.to_str().unwrap();
    // SAFETY: as above.
    let status =
        unsafe { rf_model_load(real.as_ptr().cast(), real.len(), ptr::null(), &mut model) };
    assert_eq!(status, rf_status::RF_OK);
    // SAFETY: `model` came from rf_model_load and is freed once.
    unsafe { rf_model_free(model) };
}
