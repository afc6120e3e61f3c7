//! The few calls whose shape differs between the vendors: error strings (CUDA returns them
//! through an out-parameter, HIP as the return value) and making a device current (CUDA
//! binds a context to the thread, HIP a device ordinal).

use std::ffi::{c_char, c_int};

use libloading::Library;

use super::{DeviceHandle, RawContext, Status};

pub enum VendorApi {
    Cuda(CudaApi),
    Hip(HipApi),
}

pub struct CudaApi {
    pub get_error_name: unsafe extern "C" fn(error: Status, name: *mut *const c_char) -> Status,
    pub get_error_string:
        unsafe extern "C" fn(error: Status, description: *mut *const c_char) -> Status,
    pub primary_ctx_retain:
        unsafe extern "C" fn(context: *mut RawContext, device: DeviceHandle) -> Status,
    pub primary_ctx_release: unsafe extern "C" fn(device: DeviceHandle) -> Status,
    pub ctx_set_current: unsafe extern "C" fn(context: RawContext) -> Status,
}

pub struct HipApi {
    pub get_error_name: unsafe extern "C" fn(error: Status) -> *const c_char,
    pub get_error_string: unsafe extern "C" fn(error: Status) -> *const c_char,
    pub set_device: unsafe extern "C" fn(ordinal: c_int) -> Status,
}

/// Resolves one symbol as a `T`, or names it as missing.
///
/// # Safety
/// `T` must be the symbol's function-pointer type and the library must stay loaded.
unsafe fn symbol<T: Copy>(library: &Library, name: &'static str) -> Result<T, &'static str> {
    // SAFETY: forwarded from the caller; the library is never unloaded (see `library.rs`).
    unsafe { library.get::<T>(name.as_bytes()) }
        .map(|s| *s)
        .map_err(|_| name)
}

impl CudaApi {
    /// # Safety
    /// `library` must be NVIDIA's `libcuda` and must stay loaded.
    pub unsafe fn load(library: &Library) -> Result<CudaApi, &'static str> {
        // SAFETY: each name is a CUDA driver entry point with the field's signature
        // (cuda.h 13.0); `cuDevicePrimaryCtxRelease_v2` is the spelling since CUDA 11.
        unsafe {
            Ok(CudaApi {
                get_error_name: symbol(library, "cuGetErrorName")?,
                get_error_string: symbol(library, "cuGetErrorString")?,
                primary_ctx_retain: symbol(library, "cuDevicePrimaryCtxRetain")?,
                primary_ctx_release: symbol(library, "cuDevicePrimaryCtxRelease_v2")?,
                ctx_set_current: symbol(library, "cuCtxSetCurrent")?,
            })
        }
    }
}

impl HipApi {
    /// # Safety
    /// `library` must be AMD's `libamdhip64` and must stay loaded.
    pub unsafe fn load(library: &Library) -> Result<HipApi, &'static str> {
        // SAFETY: each name is a HIP entry point with the field's signature
        // (hip_runtime_api.h, ROCm 5.2 through 6.x).
        unsafe {
            Ok(HipApi {
                get_error_name: symbol(library, "hipGetErrorName")?,
                get_error_string: symbol(library, "hipGetErrorString")?,
                set_device: symbol(library, "hipSetDevice")?,
            })
        }
    }
}
