//! The table of entry points that CUDA's driver API and HIP's module API share: same
//! arguments, same meaning, different names. Each row lists the names to try in order
//! (a newer versioned name first); a required row missing from the library makes loading
//! fail with that symbol's name, an optional row becomes `None`.

use std::ffi::{c_char, c_int, c_uint, c_ulonglong, c_void};

use libloading::Library;

use super::{
    DeviceHandle, DevicePtr, RawEvent, RawFunction, RawGraph, RawGraphExec, RawModule, RawStream,
    Status, Vendor,
};

macro_rules! mirrored_api {
    (
        required {
            $( $(#[$rdoc:meta])* $rname:ident: fn($($rarg:ident: $rty:ty),* $(,)?)
                = cuda [$($rcuda:literal),+], hip [$($rhip:literal),+]; )*
        }
        optional {
            $( $(#[$odoc:meta])* $oname:ident: fn($($oarg:ident: $oty:ty),* $(,)?)
                = cuda [$($ocuda:literal),+], hip [$($ohip:literal),+]; )*
        }
    ) => {
        /// Entry points of the opened vendor library.
        pub struct Api {
            $( $(#[$rdoc])* pub $rname: unsafe extern "C" fn($($rarg: $rty),*) -> Status, )*
            $( $(#[$odoc])* pub $oname: Option<unsafe extern "C" fn($($oarg: $oty),*) -> Status>, )*
        }

        /// The symbol each entry of [`Api`] was resolved from, for error messages that name
        /// the exact vendor call.
        pub struct ApiNames {
            $( pub $rname: &'static str, )*
            $( pub $oname: &'static str, )*
        }

        impl Api {
            /// Resolves every row for `vendor`; the error is the first required symbol the
            /// library lacks.
            ///
            /// # Safety
            /// `library` must be `vendor`'s runtime, so that each symbol has the signature
            /// its row declares, and must stay loaded while the table is used.
            pub unsafe fn load(
                library: &Library,
                vendor: Vendor,
            ) -> Result<(Api, ApiNames), &'static str> {
                $(
                    let names: &[&'static str] = match vendor {
                        Vendor::Cuda => &[$($rcuda),+],
                        Vendor::Hip => &[$($rhip),+],
                    };
                    // SAFETY: the caller guarantees the library is the vendor's runtime, whose
                    // symbol of this name has this row's signature.
                    let $rname = unsafe {
                        resolve::<unsafe extern "C" fn($($rty),*) -> Status>(library, names)
                    }
                    .ok_or(names[0])?;
                )*
                $(
                    let names: &[&'static str] = match vendor {
                        Vendor::Cuda => &[$($ocuda),+],
                        Vendor::Hip => &[$($ohip),+],
                    };
                    // SAFETY: as for the required rows above. Absent, the row is reported
                    // under its first name.
                    let $oname = unsafe {
                        resolve::<unsafe extern "C" fn($($oty),*) -> Status>(library, names)
                    }
                    .ok_or(names[0]);
                )*
                let api = Api {
                    $( $rname: $rname.1, )*
                    $( $oname: $oname.ok().map(|(_, f)| f), )*
                };
                let api_names = ApiNames {
                    $( $rname: $rname.0, )*
                    $( $oname: match $oname { Ok((name, _)) | Err(name) => name }, )*
                };
                Ok((api, api_names))
            }
        }
    };
}

/// The first of `names` the library exports, with its address as a `T`.
///
/// # Safety
/// `T` must be the function-pointer type of every symbol in `names`, and the library must
/// stay loaded while the pointer is used.
unsafe fn resolve<T: Copy>(library: &Library, names: &[&'static str]) -> Option<(&'static str, T)> {
    names.iter().find_map(|name| {
        // SAFETY: the caller guarantees `T` matches the symbol; the copied pointer outlives
        // the `Symbol` borrow because the library is never unloaded (see `library.rs`).
        let symbol = unsafe { library.get::<T>(name.as_bytes()) }.ok()?;
        Some((*name, *symbol))
    })
}

mirrored_api! {
    required {
        init: fn(flags: c_uint) = cuda ["cuInit"], hip ["hipInit"];
        driver_get_version: fn(version: *mut c_int)
            = cuda ["cuDriverGetVersion"], hip ["hipDriverGetVersion"];
        device_get_count: fn(count: *mut c_int)
            = cuda ["cuDeviceGetCount"], hip ["hipGetDeviceCount"];
        device_get: fn(device: *mut DeviceHandle, ordinal: c_int)
            = cuda ["cuDeviceGet"], hip ["hipDeviceGet"];
        device_get_name: fn(name: *mut c_char, len: c_int, device: DeviceHandle)
            = cuda ["cuDeviceGetName"], hip ["hipDeviceGetName"];
        /// The attribute ids differ between vendors: see `constants`.
        device_get_attribute: fn(value: *mut c_int, attribute: c_int, device: DeviceHandle)
            = cuda ["cuDeviceGetAttribute"], hip ["hipDeviceGetAttribute"];
        device_total_mem: fn(bytes: *mut usize, device: DeviceHandle)
            = cuda ["cuDeviceTotalMem_v2"], hip ["hipDeviceTotalMem"];
        /// Of the current context (CUDA) or device (HIP).
        mem_get_info: fn(free: *mut usize, total: *mut usize)
            = cuda ["cuMemGetInfo_v2"], hip ["hipMemGetInfo"];
        mem_alloc: fn(ptr: *mut DevicePtr, bytes: usize)
            = cuda ["cuMemAlloc_v2"], hip ["hipMalloc"];
        mem_free: fn(ptr: DevicePtr) = cuda ["cuMemFree_v2"], hip ["hipFree"];
        memcpy_htod_async: fn(dst: DevicePtr, src: *const c_void, bytes: usize, stream: RawStream)
            = cuda ["cuMemcpyHtoDAsync_v2"], hip ["hipMemcpyHtoDAsync"];
        memcpy_dtoh_async: fn(dst: *mut c_void, src: DevicePtr, bytes: usize, stream: RawStream)
            = cuda ["cuMemcpyDtoHAsync_v2"], hip ["hipMemcpyDtoHAsync"];
        memcpy_dtod_async: fn(dst: DevicePtr, src: DevicePtr, bytes: usize, stream: RawStream)
            = cuda ["cuMemcpyDtoDAsync_v2"], hip ["hipMemcpyDtoDAsync"];
        memset_d8_async: fn(dst: DevicePtr, value: u8, count: usize, stream: RawStream)
            = cuda ["cuMemsetD8Async"], hip ["hipMemsetD8Async"];
        /// Page-locked host memory, which copies read without a staging pass of their own.
        mem_host_alloc: fn(ptr: *mut *mut c_void, bytes: usize, flags: c_uint)
            = cuda ["cuMemHostAlloc"], hip ["hipHostMalloc"];
        mem_free_host: fn(ptr: *mut c_void) = cuda ["cuMemFreeHost"], hip ["hipHostFree"];
        stream_create: fn(stream: *mut RawStream, flags: c_uint)
            = cuda ["cuStreamCreate"], hip ["hipStreamCreateWithFlags"];
        stream_destroy: fn(stream: RawStream)
            = cuda ["cuStreamDestroy_v2"], hip ["hipStreamDestroy"];
        stream_synchronize: fn(stream: RawStream)
            = cuda ["cuStreamSynchronize"], hip ["hipStreamSynchronize"];
        stream_wait_event: fn(stream: RawStream, event: RawEvent, flags: c_uint)
            = cuda ["cuStreamWaitEvent"], hip ["hipStreamWaitEvent"];
        event_create: fn(event: *mut RawEvent, flags: c_uint)
            = cuda ["cuEventCreate"], hip ["hipEventCreateWithFlags"];
        event_destroy: fn(event: RawEvent)
            = cuda ["cuEventDestroy_v2"], hip ["hipEventDestroy"];
        event_record: fn(event: RawEvent, stream: RawStream)
            = cuda ["cuEventRecord"], hip ["hipEventRecord"];
        event_synchronize: fn(event: RawEvent)
            = cuda ["cuEventSynchronize"], hip ["hipEventSynchronize"];
        module_load_data: fn(module: *mut RawModule, image: *const c_void)
            = cuda ["cuModuleLoadData"], hip ["hipModuleLoadData"];
        module_unload: fn(module: RawModule) = cuda ["cuModuleUnload"], hip ["hipModuleUnload"];
        module_get_function: fn(function: *mut RawFunction, module: RawModule, name: *const c_char)
            = cuda ["cuModuleGetFunction"], hip ["hipModuleGetFunction"];
        launch_kernel: fn(
            function: RawFunction,
            grid_x: c_uint, grid_y: c_uint, grid_z: c_uint,
            block_x: c_uint, block_y: c_uint, block_z: c_uint,
            shared_mem_bytes: c_uint,
            stream: RawStream,
            params: *mut *mut c_void,
            extra: *mut *mut c_void,
        ) = cuda ["cuLaunchKernel"], hip ["hipModuleLaunchKernel"];
    }
    optional {
        /// Whether `device` can read and write `peer`'s memory directly (NVLink, xGMI, PCIe).
        device_can_access_peer: fn(can: *mut c_int, device: DeviceHandle, peer: DeviceHandle)
            = cuda ["cuDeviceCanAccessPeer"], hip ["hipDeviceCanAccessPeer"];
        /// CUDA 12.8 renamed the call; older drivers have only the first spelling.
        event_elapsed_time: fn(milliseconds: *mut f32, start: RawEvent, end: RawEvent)
            = cuda ["cuEventElapsedTime_v2", "cuEventElapsedTime"], hip ["hipEventElapsedTime"];
        stream_begin_capture: fn(stream: RawStream, mode: c_int)
            = cuda ["cuStreamBeginCapture_v2"], hip ["hipStreamBeginCapture"];
        stream_end_capture: fn(stream: RawStream, graph: *mut RawGraph)
            = cuda ["cuStreamEndCapture"], hip ["hipStreamEndCapture"];
        graph_instantiate: fn(exec: *mut RawGraphExec, graph: RawGraph, flags: c_ulonglong)
            = cuda ["cuGraphInstantiateWithFlags"], hip ["hipGraphInstantiateWithFlags"];
        graph_launch: fn(exec: RawGraphExec, stream: RawStream)
            = cuda ["cuGraphLaunch"], hip ["hipGraphLaunch"];
        graph_exec_destroy: fn(exec: RawGraphExec)
            = cuda ["cuGraphExecDestroy"], hip ["hipGraphExecDestroy"];
        graph_destroy: fn(graph: RawGraph) = cuda ["cuGraphDestroy"], hip ["hipGraphDestroy"];
    }
}
