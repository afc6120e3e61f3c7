//! Devices: the CPU is device 0; the GPUs that a HIP or CUDA runtime reports follow, with
//! why one cannot be used when it cannot.

use std::ffi::{CString, c_char};
use std::sync::OnceLock;

use super::args::{c_string, out, versioned_out, versioned_struct, write_versioned};
use super::boundary::{Failure, call};
use super::status::rf_status;
use crate::backend::{DeviceKind, DeviceReport, enumerate};

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
    /// Free memory as of this call (a GPU's read through its context, which the call
    /// opens where no model holds it).
    pub free_bytes: u64,
    /// Multiprocessors (NVIDIA) or compute units (AMD); cores for the CPU.
    pub compute_units: u32,
    /// Lanes of a warp or wavefront (32 or 64); 1 for the CPU.
    pub warp_size: u32,
    pub usable: bool,
    /// Why the device cannot be used; empty when it can.
    pub unusable_reason: *const c_char,
}

versioned_struct!(rf_device_description {
    struct_size,
    kind,
    name,
    arch,
    total_bytes,
    free_bytes,
    compute_units,
    warp_size,
    usable,
    unusable_reason
});

/// A device report with the C strings `rf_device_info` hands out.
struct DeviceEntry {
    report: DeviceReport,
    name: CString,
    arch: CString,
    unusable_reason: CString,
}

/// The devices, probed once per process: their strings must outlive every caller. Only
/// their free memory is read again, when asked for.
fn devices() -> &'static [DeviceEntry] {
    static DEVICES: OnceLock<Vec<DeviceEntry>> = OnceLock::new();
    DEVICES.get_or_init(|| {
        enumerate()
            .into_iter()
            .map(|report| DeviceEntry {
                name: c_string(&report.name),
                arch: c_string(&report.arch),
                unusable_reason: c_string(report.why_unusable.as_deref().unwrap_or_default()),
                report,
            })
            .collect()
    })
}

/// The device reports alone, for choosing one, with the free memory of the devices at
/// `refresh` read again now (for a split in proportion to it); the others' as first read.
pub(crate) fn device_reports(refresh: &[usize]) -> Vec<DeviceReport> {
    let report = |(index, d): (usize, &DeviceEntry)| match refresh.contains(&index) {
        true => d.report.with_current_free_bytes(),
        false => d.report.clone(),
    };
    devices().iter().enumerate().map(report).collect()
}

/// How many devices there are, the CPU (device 0) included.
///
/// # Safety
/// `count` must be writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn rf_device_count(count: *mut usize) -> rf_status {
    call(|| {
        // SAFETY: the caller's contract.
        *unsafe { out(count, "count")? } = devices().len();
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
        let info = unsafe { versioned_out(info, "info")? };
        let d = devices().get(index).ok_or_else(|| {
            Failure::new(
                rf_status::RF_ERR_INVALID_ARGUMENT,
                format!(
                    "device {index} does not exist ({} devices)",
                    devices().len()
                ),
            )
        })?;
        let r = d.report.with_current_free_bytes();
        let value = rf_device_description {
            struct_size: 0,
            kind: match r.kind {
                DeviceKind::Cpu => RF_DEVICE_KIND_CPU,
                DeviceKind::Hip => RF_DEVICE_KIND_HIP,
                DeviceKind::Cuda => RF_DEVICE_KIND_CUDA,
            },
            name: d.name.as_ptr(),
            arch: d.arch.as_ptr(),
            total_bytes: r.total_bytes,
            free_bytes: r.free_bytes,
            compute_units: r.compute_units,
            warp_size: r.warp_size,
            usable: r.usable,
            unusable_reason: d.unusable_reason.as_ptr(),
        };
        // SAFETY: `info` is writable for its `struct_size`.
        unsafe { write_versioned(info, value, "info") }
    })
}
