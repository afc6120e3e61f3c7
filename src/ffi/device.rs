//! Devices: the CPU is device 0; GPUs follow when a GPU runtime is present.

use std::ffi::{CString, c_char};
use std::sync::OnceLock;

use super::args::{out, write_versioned};
use super::boundary::{Failure, call};
use super::status::rf_status;

pub const RF_DEVICE_KIND_CPU: u32 = 0;
pub const RF_DEVICE_KIND_HIP: u32 = 1;
pub const RF_DEVICE_KIND_CUDA: u32 = 2;

#[repr(C)]
#[derive(Clone, Copy)]
pub struct rf_device_description {
    /// Set by the caller to `sizeof(rf_device_description)` before the call.
    pub struct_size: u32,
    /// `RF_DEVICE_KIND_*`.
    pub kind: u32,
    /// NUL-terminated; valid for the life of the process.
    pub name: *const c_char,
    /// `gfx90a`, `sm_90`, or the CPU's instruction set (`x86_64+avx2`).
    pub arch: *const c_char,
    pub total_bytes: u64,
    pub free_bytes: u64,
    pub usable: bool,
    /// Why the device cannot be used; empty when it can.
    pub unusable_reason: *const c_char,
}

struct DeviceEntry {
    kind: u32,
    name: CString,
    arch: CString,
    total_bytes: u64,
    free_bytes: u64,
    usable: bool,
    unusable_reason: CString,
}

/// The devices, probed once per process: their names must outlive every caller.
fn devices() -> &'static [DeviceEntry] {
    static DEVICES: OnceLock<Vec<DeviceEntry>> = OnceLock::new();
    DEVICES.get_or_init(|| {
        let cpu_arch =
            if cfg!(target_arch = "x86_64") && std::arch::is_x86_feature_detected!("avx2") {
                format!("{}+avx2", std::env::consts::ARCH)
            } else {
                std::env::consts::ARCH.to_owned()
            };
        vec![DeviceEntry {
            kind: RF_DEVICE_KIND_CPU,
            name: CString::new("CPU").unwrap_or_default(),
            arch: CString::new(cpu_arch).unwrap_or_default(),
            total_bytes: 0,
            free_bytes: 0,
            usable: true,
            unusable_reason: CString::default(),
        }]
    })
}

/// How many devices there are, the CPU (device 0) included.
///
/// # Safety
/// `count` must be writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn rf_device_count(count: *mut usize) -> rf_status {
    call(|| {
        // SAFETY: the caller's contract.
        *unsafe { out(count, "out")? } = devices().len();
        Ok(())
    })
}

/// Describes device `index`. Set `out->struct_size` first.
///
/// # Safety
/// `info` must be writable for its `struct_size`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn rf_device_info(
    index: usize,
    info: *mut rf_device_description,
) -> rf_status {
    call(|| {
        // SAFETY: the caller's contract.
        let info = unsafe { out(info, "out")? };
        let d = devices().get(index).ok_or_else(|| {
            Failure::new(
                rf_status::RF_ERR_INVALID_ARGUMENT,
                format!(
                    "device {index} does not exist ({} devices)",
                    devices().len()
                ),
            )
        })?;
        let value = rf_device_description {
            struct_size: info.struct_size,
            kind: d.kind,
            name: d.name.as_ptr(),
            arch: d.arch.as_ptr(),
            total_bytes: d.total_bytes,
            free_bytes: d.free_bytes,
            usable: d.usable,
            unusable_reason: d.unusable_reason.as_ptr(),
        };
        // SAFETY: `info` is writable for its `struct_size`.
        unsafe { write_versioned(info, value) }
    })
}
