//! The few calls whose shape differs between the vendors: error strings (CUDA returns them
//! through an out-parameter, HIP as the return value) and making a device current (CUDA
//! binds a context to the thread, HIP a device ordinal), copies between devices (CUDA
//! names each side's context, HIP its ordinal), and CUDA's extensible launch.

use std::ffi::{c_char, c_int, c_uint, c_void};

use libloading::Library;

use super::{DeviceHandle, DevicePtr, RawContext, RawFunction, RawStream, Status};

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
    pub memcpy_peer_async: unsafe extern "C" fn(
        dst: DevicePtr,
        dst_context: RawContext,
        src: DevicePtr,
        src_context: RawContext,
        bytes: usize,
        stream: RawStream,
    ) -> Status,
    /// Lets the current context reach `peer`'s memory directly.
    pub ctx_enable_peer_access:
        Option<unsafe extern "C" fn(peer: RawContext, flags: c_uint) -> Status>,
    /// `cuFuncSetAttribute`: sets one of a kernel's attributes.
    pub func_set_attribute: Option<
        unsafe extern "C" fn(function: RawFunction, attribute: c_int, value: c_int) -> Status,
    >,
    /// `cuLaunchKernelEx` (CUDA 11.8 and newer): a launch with attributes.
    pub launch_kernel_ex: Option<
        unsafe extern "C" fn(
            config: *const LaunchConfigEx,
            function: RawFunction,
            params: *mut *mut c_void,
            extra: *mut *mut c_void,
        ) -> Status,
    >,
}

/// `CUlaunchAttribute`: an attribute id and a 64-byte value union (cuda.h 13.0).
#[repr(C, align(8))]
pub struct LaunchAttribute {
    pub id: c_uint,
    pub pad: [u8; 4],
    pub value: [u8; 64],
}

/// `CU_LAUNCH_ATTRIBUTE_PROGRAMMATIC_STREAM_SERIALIZATION`: with an `int` value of 1, the
/// kernel may begin while the previous kernel on its stream is still running; it waits for
/// that kernel's results itself (`griddepcontrol.wait`).
pub const LAUNCH_ATTRIBUTE_PROGRAMMATIC_STREAM_SERIALIZATION: c_uint = 6;

/// `CU_FUNC_ATTRIBUTE_PREFERRED_SHARED_MEMORY_CARVEOUT`: the share of an SM's L1 and
/// shared-memory storage a kernel prefers as shared memory, in percent (a hint).
pub const FUNC_ATTRIBUTE_PREFERRED_SHARED_MEMORY_CARVEOUT: c_int = 9;

impl LaunchAttribute {
    /// An attribute whose value is one `int`.
    pub fn int(id: c_uint, value: c_int) -> LaunchAttribute {
        let mut bytes = [0u8; 64];
        bytes[..4].copy_from_slice(&value.to_ne_bytes());
        LaunchAttribute {
            id,
            pad: [0; 4],
            value: bytes,
        }
    }
}

/// `CUlaunchConfig` (cuda.h 13.0).
#[repr(C)]
pub struct LaunchConfigEx {
    pub grid: [c_uint; 3],
    pub block: [c_uint; 3],
    pub shared_mem_bytes: c_uint,
    pub stream: RawStream,
    pub attrs: *mut LaunchAttribute,
    pub num_attrs: c_uint,
}

const _: () = assert!(size_of::<LaunchAttribute>() == 72 && size_of::<LaunchConfigEx>() == 56);

pub struct HipApi {
    pub get_error_name: unsafe extern "C" fn(error: Status) -> *const c_char,
    pub get_error_string: unsafe extern "C" fn(error: Status) -> *const c_char,
    pub set_device: unsafe extern "C" fn(ordinal: c_int) -> Status,
    pub memcpy_peer_async: unsafe extern "C" fn(
        dst: DevicePtr,
        dst_device: DeviceHandle,
        src: DevicePtr,
        src_device: DeviceHandle,
        bytes: usize,
        stream: RawStream,
    ) -> Status,
    /// Lets the current device reach `peer`'s memory directly.
    pub device_enable_peer_access:
        Option<unsafe extern "C" fn(peer: DeviceHandle, flags: c_uint) -> Status>,
}

/// Resolves one symbol as a `T`, or names it as missing.
///
/// # Safety
/// `T` must be the symbol's function-pointer type and the library must stay loaded.
pub(super) unsafe fn symbol<T: Copy>(
    library: &Library,
    name: &'static str,
) -> Result<T, &'static str> {
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
                memcpy_peer_async: symbol(library, "cuMemcpyPeerAsync")?,
                ctx_enable_peer_access: symbol(library, "cuCtxEnablePeerAccess").ok(),
                func_set_attribute: symbol(library, "cuFuncSetAttribute").ok(),
                launch_kernel_ex: symbol(library, "cuLaunchKernelEx").ok(),
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
                memcpy_peer_async: symbol(library, "hipMemcpyPeerAsync")?,
                device_enable_peer_access: symbol(library, "hipDeviceEnablePeerAccess").ok(),
            })
        }
    }
}
