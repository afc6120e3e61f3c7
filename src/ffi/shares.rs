//! A model's share of each device it runs on: one share for a model on one device, one a
//! GPU under a layer split (`rf_model_params.devices`), in layer order. What a share
//! holds is read from its device handle's counters, so it covers the contexts' state on
//! that GPU too.

use super::args::{reference, versioned_out, versioned_struct, write_versioned};
use super::boundary::{Failure, call};
use super::model::rf_model;
use super::status::rf_status;

#[repr(C)]
#[derive(Clone, Copy)]
pub struct rf_model_share {
    /// Set by the caller to `sizeof(rf_model_share)` before the call.
    pub struct_size: u32,
    /// The device's index for `rf_device_info` (0 = CPU).
    pub device: i32,
    /// The layers this share runs: `first_layer` to `first_layer + n_layers - 1`.
    pub first_layer: u32,
    pub n_layers: u32,
    /// The share's weights in the device's memory (0 on the CPU, which reads the file's
    /// mapping in place).
    pub weights_bytes: u64,
    /// What the model and its contexts hold on the device for this share now: its
    /// weights, and each context's KV cache for these layers and working buffers (0 on
    /// the CPU; `rf_context_memory` reports a context's host memory).
    pub device_bytes: u64,
    /// The most `device_bytes` has been since the model was loaded.
    pub peak_device_bytes: u64,
}

versioned_struct!(rf_model_share {
    struct_size,
    device,
    first_layer,
    n_layers,
    weights_bytes,
    device_bytes,
    peak_device_bytes
});

/// Describes share `index` (below `rf_model_description.n_shares`) of a model. Set
/// `info->struct_size = sizeof(rf_model_share)` first. An index past the last share is
/// `RF_ERR_INVALID_ARGUMENT`, as is a model loaded with `vocab_only`.
///
/// # Safety
/// `model` must be a live model; `info` must point to a writable `rf_model_share`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn rf_model_share_info(
    model: *const rf_model,
    index: usize,
    info: *mut rf_model_share,
) -> rf_status {
    call(|| {
        // SAFETY: the caller's contract.
        let (model, info) = unsafe { (reference(model, "model")?, versioned_out(info, "info")?) };
        let shares = model.shared.model()?.shares();
        let Some(share) = shares.get(index) else {
            return Err(Failure::new(
                rf_status::RF_ERR_INVALID_ARGUMENT,
                format!("share {index} of a model of {} shares", shares.len()),
            ));
        };
        let u32_of = |n: usize| u32::try_from(n).unwrap_or(u32::MAX);
        let held = share.device.map(|d| d.memory_stats()).unwrap_or_default();
        let report = rf_model_share {
            struct_size: 0,
            device: i32::try_from(share.index).unwrap_or(i32::MAX),
            first_layer: u32_of(share.layers.start),
            n_layers: u32_of(share.layers.len()),
            weights_bytes: share.weights_bytes,
            device_bytes: held.live_bytes,
            peak_device_bytes: held.peak_bytes,
        };
        // SAFETY: `info` is writable for `struct_size` bytes by the caller's contract.
        unsafe { write_versioned(info, report, "info") }
    })
}
