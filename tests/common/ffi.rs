//! The C ABI from Rust tests: loading a test model, the thread's last error message, and
//! a decode that hands back the last token's logits.

use std::ffi::CStr;
use std::ptr;

use rocmforge::ffi::{
    rf_batch, rf_context, rf_decode, rf_get_logits, rf_last_error, rf_model,
    rf_model_default_params, rf_model_load, rf_model_params, rf_status,
};

/// Test model `file` (see `model_path`) through `rf_model_load` with default parameters.
pub fn load_model(file: &str) -> *mut rf_model {
    load_model_on(file, rf_model_default_params().device)
}

/// [`load_model`] on `device` (an `RF_DEVICE_*` value or a device index).
pub fn load_model_on(file: &str, device: i32) -> *mut rf_model {
    let path = super::model_path(file);
    let path = path.to_str().expect("a UTF-8 path");
    let mut model = ptr::null_mut();
    let params = rf_model_params {
        device,
        ..rf_model_default_params()
    };
    // SAFETY: valid path bytes, params and out-pointer.
    let status = unsafe { rf_model_load(path.as_ptr().cast(), path.len(), &params, &mut model) };
    assert_eq!(status, rf_status::RF_OK, "loading {file}: {}", last_error());
    model
}

/// `rf_last_error`'s message for this thread.
pub fn last_error() -> String {
    // SAFETY: `rf_last_error` returns a NUL-terminated string valid until the next call.
    unsafe { CStr::from_ptr(rf_last_error()) }
        .to_string_lossy()
        .into_owned()
}

/// Decodes `tokens` on sequence 0 through `rf_decode`: the last token's logits, or the
/// status the decode failed with.
pub fn decode_last_logits(ctx: *mut rf_context, tokens: &[i32]) -> Result<Vec<f32>, rf_status> {
    let batch = rf_batch {
        n_tokens: tokens.len(),
        tokens: tokens.as_ptr(),
        positions: ptr::null(),
        seq_ids: ptr::null(),
        want_logits: ptr::null(),
    };
    let (mut logits, mut n_vocab) = (ptr::null(), 0usize);
    // SAFETY: a live context, a batch whose token array holds `n_tokens` elements and
    // NULL elsewhere, and out-pointers to locals.
    unsafe {
        let status = rf_decode(ctx, &batch);
        if status != rf_status::RF_OK {
            return Err(status);
        }
        let status = rf_get_logits(ctx, -1, &mut logits, &mut n_vocab);
        assert_eq!(status, rf_status::RF_OK, "rf_get_logits: {}", last_error());
        // SAFETY: `rf_get_logits` gave `n_vocab` floats valid until the next decode.
        Ok(std::slice::from_raw_parts(logits, n_vocab).to_vec())
    }
}
