//! How much memory a model and a context of it will take, before loading either.

use std::ffi::c_char;
use std::path::Path;

use super::args::{text, versioned, versioned_out, versioned_struct, write_versioned};
use super::boundary::{Failure, call};
use super::context::{context_params, rf_context_default_params, rf_context_params};
use super::model::{choose_devices, model_threads, rf_model_default_params, rf_model_params};
use super::status::rf_status;
use crate::gguf::OwnedGguf;
use crate::memory_estimate::{MemoryEstimate, ShareEstimate, estimate_shares, total};

#[repr(C)]
#[derive(Clone, Copy)]
pub struct rf_memory_estimate {
    /// Set by the caller to `sizeof(rf_memory_estimate)` before the call.
    pub struct_size: u32,
    /// The device `rf_model_load` would put the weights on with the same parameters
    /// (0 = CPU).
    pub device: i32,
    /// The weights: in that device's memory for a GPU; on the CPU read through the file's
    /// mapping, or held in host memory when `use_mmap` is false.
    pub weights_bytes: u64,
    /// The KV cache (included in `host_bytes` on the CPU, in `device_bytes` on a GPU).
    pub kv_bytes: u64,
    /// What `rf_context_memory` reports as `host_bytes` after a first decode with one row
    /// of logits.
    pub host_bytes: u64,
    /// What `rf_context_memory` reports as `device_bytes`.
    pub device_bytes: u64,
}

versioned_struct!(rf_memory_estimate {
    struct_size,
    device,
    weights_bytes,
    kv_bytes,
    host_bytes,
    device_bytes
});

/// The memory the model at `path` (`path_len` bytes of UTF-8) and one context of it would
/// take, from the file's metadata and tensor table: the weights are not read. `model_params`
/// and `ctx_params` may be NULL for their defaults; the device and context sizes are
/// chosen as `rf_model_load` and `rf_context_new` would choose them. Under a layer split
/// the figures add up every device's (see `rf_model_estimate_share`); `device` is the
/// first's. Set `out->struct_size` first.
///
/// # Safety
/// `path` `path_len` readable bytes; `model_params` and `ctx_params` NULL or valid for
/// their `struct_size`; `out` writable for its `struct_size`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn rf_model_estimate(
    path: *const c_char,
    path_len: usize,
    model_params: *const rf_model_params,
    ctx_params: *const rf_context_params,
    out_estimate: *mut rf_memory_estimate,
) -> rf_status {
    call(|| {
        // SAFETY: forwarded from the caller.
        let (shares, report) =
            unsafe { estimate_with(path, path_len, model_params, ctx_params, out_estimate)? };
        let figures = total(&shares);
        // `estimate_with` returns at least one share.
        let device = shares.first().map_or(0, |s| s.device);
        // SAFETY: `report` is writable for its `struct_size` by the caller's contract.
        unsafe { write_estimate(report, device, figures) }
    })
}

/// What share `index` of the model at `path` would take on its device, with one context:
/// as `rf_model_estimate`, for the one device. Shares are in layer order, one for each of
/// `model_params->devices` under a layer split and one otherwise; an index past the last
/// is `RF_ERR_INVALID_ARGUMENT`. `device` is the share's device; `weights_bytes` its
/// layers' tensors (the embedding on the first share, the output head on the last);
/// `kv_bytes` and `device_bytes` the context's state for its layers.
///
/// # Safety
/// As `rf_model_estimate`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn rf_model_estimate_share(
    path: *const c_char,
    path_len: usize,
    model_params: *const rf_model_params,
    ctx_params: *const rf_context_params,
    index: usize,
    out_estimate: *mut rf_memory_estimate,
) -> rf_status {
    call(|| {
        // SAFETY: forwarded from the caller.
        let (shares, report) =
            unsafe { estimate_with(path, path_len, model_params, ctx_params, out_estimate)? };
        let Some(share) = shares.get(index) else {
            return Err(Failure::new(
                rf_status::RF_ERR_INVALID_ARGUMENT,
                format!("share {index} of a model of {} shares", shares.len()),
            ));
        };
        // SAFETY: `report` is writable for its `struct_size` by the caller's contract.
        unsafe { write_estimate(report, share.device, share.memory) }
    })
}

/// The arguments of the estimate calls checked and the estimate of every share, with the
/// caller's out-struct.
///
/// # Safety
/// As `rf_model_estimate`.
unsafe fn estimate_with(
    path: *const c_char,
    path_len: usize,
    model_params: *const rf_model_params,
    ctx_params: *const rf_context_params,
    out_estimate: *mut rf_memory_estimate,
) -> Result<(Vec<ShareEstimate>, *mut rf_memory_estimate), Failure> {
    // SAFETY: the caller's contract.
    let (path, model_params, ctx_params, report) = unsafe {
        (
            text(path, path_len, "path")?,
            versioned(model_params, rf_model_default_params(), "model_params")?,
            versioned(ctx_params, rf_context_default_params(), "context_params")?,
            versioned_out(out_estimate, "out_estimate")?,
        )
    };
    if model_params.vocab_only {
        return Err(Failure::new(
            rf_status::RF_ERR_INVALID_ARGUMENT,
            "a vocab_only model has no contexts to estimate",
        ));
    }
    // Parameters the load would refuse get no estimate.
    model_threads(&model_params)?;
    let gguf = OwnedGguf::open(Path::new(path))?;
    // SAFETY: the caller's contract for `model_params`.
    let placement = unsafe { choose_devices(&model_params)? };
    let params = context_params(&ctx_params, 1)?;
    let shares = estimate_shares(gguf.file(), &placement, &params)?;
    Ok((shares, report))
}

/// Writes `figures` for `device` into the caller's `report`.
///
/// # Safety
/// `report` writable for its `struct_size`.
unsafe fn write_estimate(
    report: *mut rf_memory_estimate,
    device: usize,
    figures: MemoryEstimate,
) -> Result<(), Failure> {
    let value = rf_memory_estimate {
        struct_size: 0,
        device: i32::try_from(device)
            .map_err(|_| Failure::new(rf_status::RF_ERR_DEVICE, "device index out of range"))?,
        weights_bytes: figures.weights_bytes,
        kv_bytes: figures.kv_bytes,
        host_bytes: figures.host_bytes,
        device_bytes: figures.device_bytes,
    };
    // SAFETY: forwarded from the caller.
    unsafe { write_versioned(report, value, "out_estimate") }
}
