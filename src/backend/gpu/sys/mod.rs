//! The raw layer: the vendor library opened with `dlopen` and its entry points as plain
//! function pointers, with the C types and constants they take. Nothing here checks a
//! status; `result` does that, one call at a time.
//!
//! HIP's module API mirrors CUDA's driver API call for call, with the same argument
//! layout, so one table ([`Api`]) serves both and only the symbol names differ. The few
//! calls that differ in shape live in [`VendorApi`].

mod api;
pub mod blas;
pub mod collectives;
pub mod constants;
mod library;
mod vendor_api;

use std::ffi::{c_int, c_void};

pub use api::{Api, ApiNames};
pub use library::{OpenedLibrary, candidates, open_first};
pub use vendor_api::{
    CudaApi, FUNC_ATTRIBUTE_PREFERRED_SHARED_MEMORY_CARVEOUT, HipApi,
    LAUNCH_ATTRIBUTE_PROGRAMMATIC_STREAM_SERIALIZATION, LaunchAttribute, LaunchConfigEx, VendorApi,
};

/// The vendor runtime behind a device.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Vendor {
    /// AMD: `libamdhip64.so`, HIP's module API.
    Hip,
    /// NVIDIA: `libcuda.so.1`, the CUDA driver API.
    Cuda,
}

impl Vendor {
    /// HIP first: on a machine with both runtimes, device lists keep a stable order.
    pub const ALL: [Vendor; 2] = [Vendor::Hip, Vendor::Cuda];

    pub fn name(self) -> &'static str {
        match self {
            Vendor::Hip => "HIP",
            Vendor::Cuda => "CUDA",
        }
    }
}

impl std::fmt::Display for Vendor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// `CUresult` / `hipError_t`: C enums, so C `int`s; 0 is success for both.
pub type Status = c_int;
pub const SUCCESS: Status = 0;

/// `CUdevice` / `hipDevice_t`: an `int` naming a device.
pub type DeviceHandle = c_int;

/// `CUdeviceptr` is a 64-bit integer, HIP's `hipDeviceptr_t` a `void *`. Both are 8 bytes
/// passed the same way on the 64-bit targets this crate builds the GPU backend for (see
/// the assertion below), so one integer type serves both.
pub type DevicePtr = u64;
const _: () = assert!(size_of::<DevicePtr>() == size_of::<*mut c_void>());

/// Opaque handles: every one is a pointer to a vendor-private struct.
pub type RawContext = *mut c_void;
pub type RawStream = *mut c_void;
pub type RawEvent = *mut c_void;
pub type RawModule = *mut c_void;
pub type RawFunction = *mut c_void;
pub type RawGraph = *mut c_void;
pub type RawGraphExec = *mut c_void;
