//! The model owns its device: `rf_model_info` reports the device that holds the weights
//! and the bytes on it, an explicit device that does not exist is a clear error, and
//! `RF_DEVICE_AUTO` logs its choice. A split over several devices (`devices`) is checked
//! before anything loads: GPUs only, positive proportions, a known mode; the tensor split
//! is not there yet and says so. (tests/gpu_layer_split.rs runs layer splits.)

mod common;

use std::ffi::{c_char, c_void};
use std::ptr;
use std::sync::OnceLock;

use common::ffi::last_error;
use rocmforge::ffi::{
    RF_DEVICE_AUTO, RF_DEVICE_CPU, RF_SPLIT_LAYER, RF_SPLIT_TENSOR, rf_device_count,
    rf_device_description, rf_device_info, rf_model, rf_model_default_params, rf_model_description,
    rf_model_free, rf_model_info, rf_model_load_from_memory, rf_model_params, rf_model_share,
    rf_model_share_info, rf_status,
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
    let mut params = rf_model_default_params();
    params.device = device;
    load_with(params)
}

/// Loads the model split over `devices`; the status and the model (on success).
fn load_split(
    devices: &[i32],
    split_mode: u32,
    proportions: Option<&[f32]>,
) -> (rf_status, *mut rf_model) {
    let mut params = rf_model_default_params();
    params.devices = devices.as_ptr();
    params.n_devices = devices.len();
    params.split_mode = split_mode;
    params.split_proportions = proportions.map_or(ptr::null(), <[f32]>::as_ptr);
    let (status, model, _) = load_with(params);
    (status, model)
}

fn load_with(mut params: rf_model_params) -> (rf_status, *mut rf_model, Vec<String>) {
    let bytes = model_bytes();
    let mut log: Vec<String> = Vec::new();
    params.log_callback = Some(collect_log);
    params.log_user_data = (&raw mut log).cast();
    let mut model = ptr::null_mut();
    // SAFETY: the bytes live for the whole process; valid params (their device lists
    // outlive the call) and out-pointer; `log` outlives the call.
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

/// The CPU's free memory as `rf_device_info` reports it.
fn cpu_free_bytes() -> u64 {
    // SAFETY: all-zero bytes are a valid rf_device_description (NULL pointers, zeros).
    let mut info: rf_device_description = unsafe { std::mem::zeroed() };
    info.struct_size = size_of::<rf_device_description>() as u32;
    // SAFETY: a writable description of the size it says.
    assert_eq!(unsafe { rf_device_info(0, &mut info) }, rf_status::RF_OK);
    info.free_bytes
}

/// `MemAvailable` of /proc/meminfo, read by the test itself.
fn mem_available() -> u64 {
    let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap();
    let kib: u64 = meminfo
        .lines()
        .find_map(|line| line.strip_prefix("MemAvailable:"))
        .and_then(|rest| rest.split_whitespace().next()?.parse().ok())
        .unwrap();
    kib * 1024
}

/// Free memory is read at each call, not when the device list was first made: after the
/// test touches 1 GiB, the figure lies between two reads of its own around the call.
#[test]
fn a_device_s_free_memory_is_read_when_asked_for() {
    cpu_free_bytes();
    let held = vec![1u8; 1 << 30];
    let before = mem_available();
    let reported = cpu_free_bytes();
    let after = mem_available();
    let slack = 128 << 20;
    assert!(
        reported + slack >= before.min(after) && reported <= before.max(after) + slack,
        "reported {reported}, read {before} and {after}"
    );
    drop(std::hint::black_box(held));
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

#[test]
fn a_split_is_refused_on_the_cpu_with_bad_proportions_or_an_unknown_mode() {
    // Devices, split mode, proportions, and what the error says.
    type Case = (&'static [i32], u32, Option<&'static [f32]>, &'static str);
    let cases: [Case; 9] = [
        (&[0, 0], RF_SPLIT_LAYER, None, "GPUs only"),
        (&[1, 2, 1], RF_SPLIT_TENSOR, None, "names device 1 twice"),
        (
            &[RF_DEVICE_CPU],
            RF_SPLIT_TENSOR,
            None,
            "a tensor split runs on GPUs only",
        ),
        (
            &[0, 1, 2, 3, 4, 5, 6, 7, 8],
            RF_SPLIT_TENSOR,
            None,
            "over 9 devices: expected 1 to 8",
        ),
        (&[0], RF_SPLIT_LAYER, Some(&[0.0]), "split proportion 0"),
        (
            &[0],
            RF_SPLIT_LAYER,
            Some(&[f32::NAN]),
            "split proportion NaN",
        ),
        (&[0], 7, None, "split_mode 7"),
        (&[99], RF_SPLIT_LAYER, None, "device 99 does not exist"),
        (&[-1], RF_SPLIT_LAYER, None, "device -1 does not exist"),
    ];
    for (devices, mode, proportions, expected) in cases {
        let (status, model) = load_split(devices, mode, proportions);
        let message = last_error();
        assert!(model.is_null(), "{devices:?} loaded");
        assert_eq!(status, rf_status::RF_ERR_INVALID_ARGUMENT, "{message}");
        assert!(message.contains(expected), "{devices:?}: {message}");
    }
}

#[test]
fn a_device_count_past_any_split_is_refused_before_the_list_is_read() {
    let device = [RF_DEVICE_CPU];
    let mut params = rf_model_default_params();
    params.devices = device.as_ptr();
    // Were this read as a length, the list would run far past `device`.
    params.n_devices = 1 << 40;
    let (status, model, _) = load_with(params);
    let message = last_error();
    assert!(model.is_null());
    assert_eq!(status, rf_status::RF_ERR_INVALID_ARGUMENT, "{message}");
    assert!(message.contains("expected at most 256"), "{message}");
}

#[test]
fn a_split_over_one_device_is_that_device() {
    let (status, model) = load_split(&[RF_DEVICE_CPU], RF_SPLIT_LAYER, None);
    assert_eq!(status, rf_status::RF_OK, "{}", last_error());
    assert_eq!(info(model).device, RF_DEVICE_CPU);
    // SAFETY: the model came from rf_model_load_from_memory.
    unsafe { rf_model_free(model) };
}

#[test]
fn a_model_on_the_cpu_is_one_share_of_every_layer() {
    let (status, model, _) = load(RF_DEVICE_CPU);
    assert_eq!(status, rf_status::RF_OK, "{}", last_error());
    let description = info(model);
    assert_eq!(description.n_shares, 1);
    // SAFETY: all-zero bytes are a valid rf_model_share.
    let mut share: rf_model_share = unsafe { std::mem::zeroed() };
    share.struct_size = size_of::<rf_model_share>() as u32;
    // SAFETY: a live model and a writable share.
    assert_eq!(
        unsafe { rf_model_share_info(model, 0, &mut share) },
        rf_status::RF_OK
    );
    assert_eq!(
        (share.device, share.first_layer, share.n_layers),
        (RF_DEVICE_CPU, 0, description.n_layer)
    );
    assert_eq!((share.weights_bytes, share.device_bytes), (0, 0));
    // SAFETY: as above.
    let past = unsafe { rf_model_share_info(model, 1, &mut share) };
    assert_eq!(past, rf_status::RF_ERR_INVALID_ARGUMENT);
    assert!(
        last_error().contains("share 1 of a model of 1 shares"),
        "{}",
        last_error()
    );
    // SAFETY: the model came from rf_model_load_from_memory.
    unsafe { rf_model_free(model) };
}
