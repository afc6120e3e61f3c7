//! The model owns its device: `rf_model_info` reports the device that holds the weights
//! and the bytes on it, an explicit device that does not exist is a clear error, and
//! `RF_DEVICE_AUTO` logs its choice.

mod common;

use std::ffi::{c_char, c_void};
use std::ptr;
use std::sync::OnceLock;

use common::ffi::last_error;
use rocmforge::ffi::{
    RF_DEVICE_AUTO, RF_DEVICE_CPU, rf_device_count, rf_model, rf_model_default_params,
    rf_model_description, rf_model_free, rf_model_info, rf_model_load_from_memory, rf_status,
};

/// A tiny llama built in memory (tests/common/tiny_model), alive for the whole test
/// binary as `rf_model_load_from_memory` requires.
fn model_bytes() -> &'static [u8] {
    static BYTES: OnceLock<Vec<u8>> = OnceLock::new();
    BYTES.get_or_init(|| common::tiny_model::variants::variants()[0].gguf())
}

unsafe extern "C" fn collect_log(_level: u32, msg: *const c_char, len: usize, user: *mut c_void) {
    // SAFETY: `user` is the Vec<String> `load` passes, alive for the call; `msg` holds
    // `len` bytes by the library's contract.
    unsafe {
        let bytes = std::slice::from_raw_parts(msg.cast::<u8>(), len);
        (*user.cast::<Vec<String>>()).push(String::from_utf8_lossy(bytes).into_owned());
    }
}

/// Loads the model on `device`; the status, the model (on success) and the log.
fn load(device: i32) -> (rf_status, *mut rf_model, Vec<String>) {
    let bytes = model_bytes();
    let mut log: Vec<String> = Vec::new();
    let mut params = rf_model_default_params();
    params.device = device;
    params.log_callback = Some(collect_log);
    params.log_user_data = (&raw mut log).cast();
    let mut model = ptr::null_mut();
    // SAFETY: the bytes live for the whole process; valid params and out-pointer; `log`
    // outlives the call.
    let status = unsafe {
        rf_model_load_from_memory(bytes.as_ptr().cast(), bytes.len(), &params, &mut model)
    };
    (status, model, log)
}
fn info(model: *mut rf_model) -> rf_model_description {
    // SAFETY: all-zero bytes are a valid rf_model_description (NULL pointers, zeros).
    let mut info: rf_model_description = unsafe { std::mem::zeroed() };
    info.struct_size = size_of::<rf_model_description>() as u32;
    // SAFETY: a live model and a writable description.
    assert_eq!(unsafe { rf_model_info(model, &mut info) }, rf_status::RF_OK);
    info
}

fn device_count() -> usize {
    let mut n = 0;
    // SAFETY: a writable out-pointer.
    assert_eq!(unsafe { rf_device_count(&mut n) }, rf_status::RF_OK);
    n
}

#[test]
fn the_cpu_holds_the_weights_when_asked_for() {
    let (status, model, log) = load(RF_DEVICE_CPU);
    assert_eq!(status, rf_status::RF_OK, "{}", last_error());
    let info = info(model);
    assert_eq!((info.device, info.device_bytes), (0, 0));
    assert!(
        log.iter().any(|l| l.starts_with("weights on device 0:")),
        "{log:?}"
    );
    // SAFETY: the model came from rf_model_load_from_memory.
    unsafe { rf_model_free(model) };
}

#[test]
fn auto_logs_its_choice_and_reports_the_device() {
    let (status, model, log) = load(RF_DEVICE_AUTO);
    assert_eq!(status, rf_status::RF_OK, "{}", last_error());
    let info = info(model);
    let chosen = format!("weights on device {}:", info.device);
    assert!(log.iter().any(|l| l.starts_with(&chosen)), "{log:?}");
    // SAFETY: the model came from rf_model_load_from_memory.
    unsafe { rf_model_free(model) };
}

#[test]
fn the_first_gpu_holds_the_weights_or_is_a_clear_error_without_one() {
    let first_gpu = 1;
    let (status, model, _) = load(first_gpu);
    let message = last_error();
    if device_count() == 1 {
        assert!(model.is_null());
        assert_eq!(status, rf_status::RF_ERR_INVALID_ARGUMENT, "{message}");
        assert!(message.contains("device 1 does not exist"), "{message}");
    } else {
        assert_eq!(status, rf_status::RF_OK, "{message}");
        let info = info(model);
        assert_eq!(info.device, 1);
        assert!(info.device_bytes > 0);
        // SAFETY: the model came from rf_model_load_from_memory.
        unsafe { rf_model_free(model) };
    }
}

#[test]
fn a_negative_device_other_than_auto_is_refused() {
    let (status, model, _) = load(-2);
    assert!(model.is_null());
    assert_eq!(status, rf_status::RF_ERR_INVALID_ARGUMENT);
}
