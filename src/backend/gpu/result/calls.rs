//! One checked method per vendor call. Methods that take a raw handle or pointer are
//! `unsafe`: the owning types in `safe` are what make those arguments valid.

use std::ffi::{CStr, c_char, c_int, c_void};

use super::super::sys::constants::{self, Attribute};
use super::super::sys::{
    DeviceHandle, DevicePtr, FUNC_ATTRIBUTE_PREFERRED_SHARED_MEMORY_CARVEOUT,
    LAUNCH_ATTRIBUTE_PROGRAMMATIC_STREAM_SERIALIZATION, LaunchAttribute, LaunchConfigEx,
    RawContext, RawEvent, RawFunction, RawGraph, RawGraphExec, RawModule, RawStream, SUCCESS,
    VendorApi,
};
use super::{Driver, DriverError};

/// `CUDA_ERROR_NOT_SUPPORTED` and `hipErrorNotSupported` share this number; used when an
/// optional entry point is absent from the loaded library.
const NOT_SUPPORTED: i32 = 801;

/// Launch geometry in the vendors' three dimensions.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Dim3 {
    pub x: u32,
    pub y: u32,
    pub z: u32,
}

impl Driver {
    fn missing(&self, call: &'static str) -> DriverError {
        DriverError {
            vendor: self.vendor,
            call,
            code: NOT_SUPPORTED,
            name: "entry point missing".into(),
            description: format!("{} does not export {call}", self.library),
        }
    }

    pub(super) fn init(&self) -> Result<(), DriverError> {
        // SAFETY: no pointers; flags must be 0 for both vendors.
        self.check(self.names.init, unsafe { (self.api.init)(0) })
    }

    pub(super) fn driver_version(&self) -> Result<i32, DriverError> {
        let mut version: c_int = 0;
        // SAFETY: writes one int to a valid local.
        let status = unsafe { (self.api.driver_get_version)(&mut version) };
        self.check(self.names.driver_get_version, status)?;
        Ok(version)
    }

    pub(super) fn query_device_count(&self) -> Result<usize, DriverError> {
        let mut count: c_int = 0;
        // SAFETY: writes one int to a valid local.
        let status = unsafe { (self.api.device_get_count)(&mut count) };
        self.check(self.names.device_get_count, status)?;
        Ok(usize::try_from(count).unwrap_or(0))
    }

    pub fn device_get(&self, ordinal: usize) -> Result<DeviceHandle, DriverError> {
        let ordinal = c_int::try_from(ordinal).unwrap_or(c_int::MAX);
        let mut device: DeviceHandle = 0;
        // SAFETY: writes one handle to a valid local; an out-of-range ordinal is an error
        // status, not undefined behaviour.
        let status = unsafe { (self.api.device_get)(&mut device, ordinal) };
        self.check(self.names.device_get, status)?;
        Ok(device)
    }

    pub fn device_name(&self, device: DeviceHandle) -> Result<String, DriverError> {
        let mut buffer = [0 as c_char; 256];
        // SAFETY: the runtime writes at most `len` bytes, NUL included, into the buffer.
        let status = unsafe {
            (self.api.device_get_name)(buffer.as_mut_ptr(), buffer.len() as c_int, device)
        };
        self.check(self.names.device_get_name, status)?;
        // Not trusting the runtime to terminate: read up to the first NUL or the end.
        let bytes: Vec<u8> = buffer
            .iter()
            .take_while(|&&c| c != 0)
            .map(|&c| c as u8)
            .collect();
        Ok(String::from_utf8_lossy(&bytes).trim().to_owned())
    }

    pub fn device_attribute(
        &self,
        device: DeviceHandle,
        attribute: Attribute,
    ) -> Result<i32, DriverError> {
        let mut value: c_int = 0;
        // SAFETY: writes one int to a valid local; the id is this vendor's number for it.
        let status = unsafe {
            (self.api.device_get_attribute)(&mut value, attribute.id(self.vendor), device)
        };
        self.check(self.names.device_get_attribute, status)?;
        Ok(value)
    }

    pub fn device_total_mem(&self, device: DeviceHandle) -> Result<u64, DriverError> {
        let mut bytes: usize = 0;
        // SAFETY: writes one size to a valid local.
        let status = unsafe { (self.api.device_total_mem)(&mut bytes, device) };
        self.check(self.names.device_total_mem, status)?;
        Ok(bytes as u64)
    }

    /// What a thread needs before it works on `device`: CUDA's primary context (retained:
    /// call [`Driver::context_release`] once per success), or NULL for HIP, which tracks
    /// the current device instead.
    pub fn context_acquire(&self, device: DeviceHandle) -> Result<RawContext, DriverError> {
        match &self.vendor_api {
            VendorApi::Cuda(cuda) => {
                let mut context: RawContext = std::ptr::null_mut();
                // SAFETY: writes one handle to a valid local.
                let status = unsafe { (cuda.primary_ctx_retain)(&mut context, device) };
                self.check("cuDevicePrimaryCtxRetain", status)?;
                Ok(context)
            }
            VendorApi::Hip(_) => Ok(std::ptr::null_mut()),
        }
    }

    /// # Safety
    /// Balances one successful [`Driver::context_acquire`] of `device`; nothing may use
    /// the context afterwards unless another retain holds it.
    pub unsafe fn context_release(&self, device: DeviceHandle) -> Result<(), DriverError> {
        match &self.vendor_api {
            VendorApi::Cuda(cuda) => {
                // SAFETY: the caller balances a retain of this device.
                let status = unsafe { (cuda.primary_ctx_release)(device) };
                self.check("cuDevicePrimaryCtxRelease_v2", status)
            }
            VendorApi::Hip(_) => Ok(()),
        }
    }

    /// Makes `device` (with `context` from [`Driver::context_acquire`]) current on the
    /// calling thread, as every later call in this file assumes.
    ///
    /// # Safety
    /// `context` must be retained for `device` and not yet released.
    pub unsafe fn make_current(
        &self,
        device: DeviceHandle,
        context: RawContext,
    ) -> Result<(), DriverError> {
        match &self.vendor_api {
            VendorApi::Cuda(cuda) => {
                // SAFETY: the caller keeps the context retained.
                let status = unsafe { (cuda.ctx_set_current)(context) };
                self.check("cuCtxSetCurrent", status)
            }
            VendorApi::Hip(hip) => {
                // SAFETY: no pointers; a bad ordinal is an error status.
                let status = unsafe { (hip.set_device)(device) };
                self.check("hipSetDevice", status)
            }
        }
    }

    /// (free, total) bytes of the current device.
    ///
    /// # Safety
    /// A device must be current on this thread ([`Driver::make_current`]).
    pub unsafe fn mem_get_info(&self) -> Result<(u64, u64), DriverError> {
        let (mut free, mut total) = (0usize, 0usize);
        // SAFETY: writes two sizes to valid locals; the caller made a device current.
        let status = unsafe { (self.api.mem_get_info)(&mut free, &mut total) };
        self.check(self.names.mem_get_info, status)?;
        Ok((free as u64, total as u64))
    }

    /// # Safety
    /// A device must be current on this thread; the caller owns the returned allocation
    /// and frees it once with [`Driver::mem_free`].
    pub unsafe fn mem_alloc(&self, bytes: usize) -> Result<DevicePtr, DriverError> {
        let mut ptr: DevicePtr = 0;
        // SAFETY: writes one device pointer to a valid local.
        let status = unsafe { (self.api.mem_alloc)(&mut ptr, bytes) };
        self.check(self.names.mem_alloc, status)?;
        Ok(ptr)
    }

    /// # Safety
    /// `ptr` came from [`Driver::mem_alloc`] on the current device and is freed once; no
    /// queued work may still use it (the vendors' free waits for the device, but only for
    /// work already queued).
    pub unsafe fn mem_free(&self, ptr: DevicePtr) -> Result<(), DriverError> {
        // SAFETY: forwarded from the caller.
        self.check(self.names.mem_free, unsafe { (self.api.mem_free)(ptr) })
    }

    /// `bytes` of page-locked host memory.
    ///
    /// # Safety
    /// A device must be current on this thread; the caller owns the returned allocation
    /// and frees it once with [`Driver::mem_free_host`].
    pub unsafe fn mem_host_alloc(&self, bytes: usize) -> Result<*mut c_void, DriverError> {
        let mut ptr: *mut c_void = std::ptr::null_mut();
        // SAFETY: writes one host pointer to a valid local; flags 0 is the default kind.
        let status = unsafe { (self.api.mem_host_alloc)(&mut ptr, bytes, 0) };
        self.check(self.names.mem_host_alloc, status)?;
        Ok(ptr)
    }

    /// # Safety
    /// `ptr` came from [`Driver::mem_host_alloc`] and is freed once; no queued work may still
    /// use it (the vendors' free of page-locked memory waits for the device, but only for
    /// work already queued).
    pub unsafe fn mem_free_host(&self, ptr: *mut c_void) -> Result<(), DriverError> {
        // SAFETY: forwarded from the caller.
        self.check(self.names.mem_free_host, unsafe {
            (self.api.mem_free_host)(ptr)
        })
    }

    /// # Safety
    /// `dst` holds `bytes` bytes on the stream's device, `src` is readable for `bytes`
    /// bytes until the stream has finished the copy, and `stream` is a live stream.
    pub unsafe fn memcpy_htod_async(
        &self,
        dst: DevicePtr,
        src: *const c_void,
        bytes: usize,
        stream: RawStream,
    ) -> Result<(), DriverError> {
        // SAFETY: forwarded from the caller.
        let status = unsafe { (self.api.memcpy_htod_async)(dst, src, bytes, stream) };
        self.check(self.names.memcpy_htod_async, status)
    }

    /// # Safety
    /// `src` holds `bytes` bytes on the stream's device, `dst` is writable for `bytes`
    /// bytes until the stream has finished the copy, and `stream` is a live stream.
    pub unsafe fn memcpy_dtoh_async(
        &self,
        dst: *mut c_void,
        src: DevicePtr,
        bytes: usize,
        stream: RawStream,
    ) -> Result<(), DriverError> {
        // SAFETY: forwarded from the caller.
        let status = unsafe { (self.api.memcpy_dtoh_async)(dst, src, bytes, stream) };
        self.check(self.names.memcpy_dtoh_async, status)
    }

    /// # Safety
    /// `src` and `dst` each hold `bytes` bytes on the stream's device and stay allocated
    /// until the stream has finished the copy; `stream` is a live stream.
    pub unsafe fn memcpy_dtod_async(
        &self,
        dst: DevicePtr,
        src: DevicePtr,
        bytes: usize,
        stream: RawStream,
    ) -> Result<(), DriverError> {
        // SAFETY: forwarded from the caller.
        let status = unsafe { (self.api.memcpy_dtod_async)(dst, src, bytes, stream) };
        self.check(self.names.memcpy_dtod_async, status)
    }

    /// Lets the current device (whose context is current) read and write `peer`'s memory
    /// directly, when the hardware allows: `Ok(false)` when it does not, the runtime
    /// lacks the calls or refuses (too many peers), and copies between the two then go
    /// through the host. Enabling access that is already on is success.
    ///
    /// # Safety
    /// `device` is current on this thread; `peer` is another device of this runtime, with
    /// its context from [`Driver::context_acquire`] still retained.
    pub unsafe fn enable_peer_access(
        &self,
        device: DeviceHandle,
        (peer, peer_context): (DeviceHandle, RawContext),
    ) -> Result<bool, DriverError> {
        let Some(can_access) = self.api.device_can_access_peer else {
            return Ok(false);
        };
        let mut can: c_int = 0;
        // SAFETY: writes one int to a valid local; both handles are of this runtime.
        let status = unsafe { can_access(&mut can, device, peer) };
        self.check(self.names.device_can_access_peer, status)?;
        if can == 0 {
            return Ok(false);
        }
        let status = match &self.vendor_api {
            VendorApi::Cuda(cuda) => match cuda.ctx_enable_peer_access {
                // SAFETY: the caller made `device` current and keeps `peer_context` retained.
                Some(enable) => unsafe { enable(peer_context, 0) },
                None => return Ok(false),
            },
            VendorApi::Hip(hip) => match hip.device_enable_peer_access {
                // SAFETY: the caller made `device` current; `peer` is a device ordinal.
                Some(enable) => unsafe { enable(peer, 0) },
                None => return Ok(false),
            },
        };
        // Already enabled is success; a refusal (too many peers, say) is no direct access:
        // the copies still work, through the host. A device that failed surfaces on the
        // next call that needs it.
        Ok(status == SUCCESS || status == constants::error::PEER_ACCESS_ALREADY_ENABLED)
    }

    /// Copies `bytes` from `src` on one device to `dst` on another (`(handle, context)` of
    /// each, the context from [`Driver::context_acquire`]), in `stream`'s order.
    ///
    /// # Safety
    /// `src` and `dst` each hold `bytes` bytes on their devices and stay allocated until
    /// the stream has finished the copy; `stream` is a live stream of the current device;
    /// both contexts are retained.
    pub unsafe fn memcpy_peer_async(
        &self,
        (dst, dst_device, dst_context): (DevicePtr, DeviceHandle, RawContext),
        (src, src_device, src_context): (DevicePtr, DeviceHandle, RawContext),
        bytes: usize,
        stream: RawStream,
    ) -> Result<(), DriverError> {
        match &self.vendor_api {
            VendorApi::Cuda(cuda) => {
                // SAFETY: forwarded from the caller.
                let status = unsafe {
                    (cuda.memcpy_peer_async)(dst, dst_context, src, src_context, bytes, stream)
                };
                self.check("cuMemcpyPeerAsync", status)
            }
            VendorApi::Hip(hip) => {
                // SAFETY: forwarded from the caller.
                let status = unsafe {
                    (hip.memcpy_peer_async)(dst, dst_device, src, src_device, bytes, stream)
                };
                self.check("hipMemcpyPeerAsync", status)
            }
        }
    }

    /// # Safety
    /// `dst` holds `bytes` bytes on the stream's device until the stream has finished;
    /// `stream` is a live stream.
    pub unsafe fn memset_d8_async(
        &self,
        dst: DevicePtr,
        value: u8,
        bytes: usize,
        stream: RawStream,
    ) -> Result<(), DriverError> {
        // SAFETY: forwarded from the caller.
        let status = unsafe { (self.api.memset_d8_async)(dst, value, bytes, stream) };
        self.check(self.names.memset_d8_async, status)
    }

    /// A stream that does not synchronise with the legacy default stream.
    ///
    /// # Safety
    /// A device must be current on this thread; destroy the stream once with
    /// [`Driver::stream_destroy`].
    pub unsafe fn stream_create(&self) -> Result<RawStream, DriverError> {
        let mut stream: RawStream = std::ptr::null_mut();
        // SAFETY: writes one handle to a valid local.
        let status =
            unsafe { (self.api.stream_create)(&mut stream, constants::STREAM_NON_BLOCKING) };
        self.check(self.names.stream_create, status)?;
        Ok(stream)
    }

    /// # Safety
    /// `stream` is live and not used again; queued work still completes.
    pub unsafe fn stream_destroy(&self, stream: RawStream) -> Result<(), DriverError> {
        // SAFETY: forwarded from the caller.
        self.check(self.names.stream_destroy, unsafe {
            (self.api.stream_destroy)(stream)
        })
    }

    /// # Safety
    /// `stream` is live.
    pub unsafe fn stream_synchronize(&self, stream: RawStream) -> Result<(), DriverError> {
        // SAFETY: forwarded from the caller.
        let status = unsafe { (self.api.stream_synchronize)(stream) };
        self.check(self.names.stream_synchronize, status)
    }

    /// # Safety
    /// `stream` and `event` are live and belong to the same device.
    pub unsafe fn stream_wait_event(
        &self,
        stream: RawStream,
        event: RawEvent,
    ) -> Result<(), DriverError> {
        // SAFETY: forwarded from the caller; flags must be 0.
        let status = unsafe { (self.api.stream_wait_event)(stream, event, 0) };
        self.check(self.names.stream_wait_event, status)
    }

    /// # Safety
    /// A device must be current on this thread; destroy the event once with
    /// [`Driver::event_destroy`].
    pub unsafe fn event_create(&self) -> Result<RawEvent, DriverError> {
        let mut event: RawEvent = std::ptr::null_mut();
        // SAFETY: writes one handle to a valid local.
        let status = unsafe { (self.api.event_create)(&mut event, constants::EVENT_DEFAULT) };
        self.check(self.names.event_create, status)?;
        Ok(event)
    }

    /// # Safety
    /// `event` is live and not used again.
    pub unsafe fn event_destroy(&self, event: RawEvent) -> Result<(), DriverError> {
        // SAFETY: forwarded from the caller.
        self.check(self.names.event_destroy, unsafe {
            (self.api.event_destroy)(event)
        })
    }

    /// # Safety
    /// `event` and `stream` are live and belong to the same device.
    pub unsafe fn event_record(
        &self,
        event: RawEvent,
        stream: RawStream,
    ) -> Result<(), DriverError> {
        // SAFETY: forwarded from the caller.
        let status = unsafe { (self.api.event_record)(event, stream) };
        self.check(self.names.event_record, status)
    }

    /// # Safety
    /// `event` is live.
    pub unsafe fn event_synchronize(&self, event: RawEvent) -> Result<(), DriverError> {
        // SAFETY: forwarded from the caller.
        let status = unsafe { (self.api.event_synchronize)(event) };
        self.check(self.names.event_synchronize, status)
    }

    /// Milliseconds between two completed events.
    ///
    /// # Safety
    /// Both events are live, recorded, and belong to the same device.
    pub unsafe fn event_elapsed_time(
        &self,
        start: RawEvent,
        end: RawEvent,
    ) -> Result<f32, DriverError> {
        let call = self.names.event_elapsed_time;
        let elapsed = self
            .api
            .event_elapsed_time
            .ok_or_else(|| self.missing(call))?;
        let mut milliseconds = 0f32;
        // SAFETY: forwarded from the caller; writes one float to a valid local.
        self.check(call, unsafe { elapsed(&mut milliseconds, start, end) })?;
        Ok(milliseconds)
    }

    /// # Safety
    /// A device must be current on this thread; `image` points to a complete code object
    /// (CUDA fatbin or cubin, HIP code object or offload bundle) that the runtime may read
    /// during the call. Unload the module once with [`Driver::module_unload`].
    pub unsafe fn module_load_data(&self, image: *const c_void) -> Result<RawModule, DriverError> {
        let mut module: RawModule = std::ptr::null_mut();
        // SAFETY: forwarded from the caller; writes one handle to a valid local.
        let status = unsafe { (self.api.module_load_data)(&mut module, image) };
        self.check(self.names.module_load_data, status)?;
        Ok(module)
    }

    /// # Safety
    /// `module` is live; neither it nor its functions are used again.
    pub unsafe fn module_unload(&self, module: RawModule) -> Result<(), DriverError> {
        // SAFETY: forwarded from the caller.
        self.check(self.names.module_unload, unsafe {
            (self.api.module_unload)(module)
        })
    }

    /// # Safety
    /// `module` is live; the function is valid only while it is.
    pub unsafe fn module_get_function(
        &self,
        module: RawModule,
        name: &CStr,
    ) -> Result<RawFunction, DriverError> {
        let mut function: RawFunction = std::ptr::null_mut();
        // SAFETY: forwarded from the caller; `name` is NUL-terminated.
        let status =
            unsafe { (self.api.module_get_function)(&mut function, module, name.as_ptr()) };
        self.check(self.names.module_get_function, status)?;
        Ok(function)
    }

    /// Asks that `function` run with `percent` of each SM's L1 and shared-memory storage
    /// as shared memory (CUDA; a hint the driver may round). Does nothing where the driver
    /// lacks `cuFuncSetAttribute`.
    ///
    /// # Safety
    /// `function` is live.
    pub unsafe fn set_shared_memory_carveout(
        &self,
        function: RawFunction,
        percent: c_int,
    ) -> Result<(), DriverError> {
        let VendorApi::Cuda(cuda) = &self.vendor_api else {
            return Ok(());
        };
        let Some(set_attribute) = cuda.func_set_attribute else {
            return Ok(());
        };
        // SAFETY: forwarded from the caller; the attribute takes an int percentage.
        let status = unsafe {
            set_attribute(
                function,
                FUNC_ATTRIBUTE_PREFERRED_SHARED_MEMORY_CARVEOUT,
                percent,
            )
        };
        self.check("cuFuncSetAttribute", status)
    }

    /// Whether [`Driver::launch_kernel`] can let a kernel overlap the one before it:
    /// CUDA with `cuLaunchKernelEx`.
    pub fn can_overlap_launches(&self) -> bool {
        matches!(&self.vendor_api, VendorApi::Cuda(cuda) if cuda.launch_kernel_ex.is_some())
    }

    /// Queues a kernel. With `overlap` (only where [`Driver::can_overlap_launches`]), it is
    /// launched with programmatic stream serialization: it may start while the previous
    /// kernel on the stream is still running, and must wait for that kernel's results
    /// itself (`kernels/compat.h`, `rf_grid_dependency_sync`).
    ///
    /// # Safety
    /// `function` and `stream` are live on the same device; `params` holds one pointer per
    /// kernel parameter, each to a value of that parameter's type (the runtime copies them
    /// during the call); every device pointer among them stays valid until the kernel has
    /// run; the kernel must not access memory outside what it was given; and with
    /// `overlap` it must call the grid dependency wait before touching memory that earlier
    /// work on the stream writes or reads.
    #[allow(clippy::too_many_arguments)]
    pub unsafe fn launch_kernel(
        &self,
        function: RawFunction,
        grid: Dim3,
        block: Dim3,
        shared_mem_bytes: u32,
        stream: RawStream,
        params: *mut *mut c_void,
        overlap: bool,
    ) -> Result<(), DriverError> {
        if overlap
            && let VendorApi::Cuda(cuda) = &self.vendor_api
            && let Some(launch_ex) = cuda.launch_kernel_ex
        {
            let mut attribute =
                LaunchAttribute::int(LAUNCH_ATTRIBUTE_PROGRAMMATIC_STREAM_SERIALIZATION, 1);
            let config = LaunchConfigEx {
                grid: [grid.x, grid.y, grid.z],
                block: [block.x, block.y, block.z],
                shared_mem_bytes,
                stream,
                attrs: &mut attribute,
                num_attrs: 1,
            };
            // SAFETY: forwarded from the caller; `config` and its one attribute are valid
            // locals for the call; `extra` is NULL, as `params` is used.
            let status = unsafe { launch_ex(&config, function, params, std::ptr::null_mut()) };
            return self.check("cuLaunchKernelEx", status);
        }
        // SAFETY: forwarded from the caller; `extra` is NULL, as `params` is used.
        let status = unsafe {
            (self.api.launch_kernel)(
                function,
                grid.x,
                grid.y,
                grid.z,
                block.x,
                block.y,
                block.z,
                shared_mem_bytes,
                stream,
                params,
                std::ptr::null_mut(),
            )
        };
        self.check(self.names.launch_kernel, status)
    }

    /// The graph entry point this library lacks, if any.
    pub fn missing_graph_entry_point(&self) -> Option<&'static str> {
        let api = &self.api;
        let names = &self.names;
        [
            (
                api.stream_begin_capture.is_some(),
                names.stream_begin_capture,
            ),
            (api.stream_end_capture.is_some(), names.stream_end_capture),
            (api.graph_instantiate.is_some(), names.graph_instantiate),
            (api.graph_launch.is_some(), names.graph_launch),
            (api.graph_exec_destroy.is_some(), names.graph_exec_destroy),
            (api.graph_destroy.is_some(), names.graph_destroy),
        ]
        .into_iter()
        .find_map(|(present, name)| (!present).then_some(name))
    }

    /// Starts recording the stream's work into a graph instead of running it; only this
    /// thread is restricted meanwhile.
    ///
    /// # Safety
    /// `stream` is live and not already capturing; end the capture with
    /// [`Driver::stream_end_capture`] on this thread.
    pub unsafe fn stream_begin_capture(&self, stream: RawStream) -> Result<(), DriverError> {
        let call = self.names.stream_begin_capture;
        let begin = self
            .api
            .stream_begin_capture
            .ok_or_else(|| self.missing(call))?;
        // SAFETY: forwarded from the caller.
        self.check(call, unsafe {
            begin(stream, constants::CAPTURE_MODE_THREAD_LOCAL)
        })
    }

    /// The recorded graph; the runtime may return NULL alongside an error when the
    /// capture was invalidated.
    ///
    /// # Safety
    /// `stream` is capturing, begun on this thread. A non-NULL graph is owned by the caller
    /// and destroyed once with [`Driver::graph_destroy`].
    pub unsafe fn stream_end_capture(
        &self,
        stream: RawStream,
    ) -> (RawGraph, Result<(), DriverError>) {
        let call = self.names.stream_end_capture;
        let Some(end) = self.api.stream_end_capture else {
            return (std::ptr::null_mut(), Err(self.missing(call)));
        };
        let mut graph: RawGraph = std::ptr::null_mut();
        // SAFETY: forwarded from the caller; writes one handle to a valid local.
        let status = unsafe { end(stream, &mut graph) };
        (graph, self.check(call, status))
    }

    /// # Safety
    /// `graph` is live. The executable graph is owned by the caller and destroyed once
    /// with [`Driver::graph_exec_destroy`]; it does not need `graph` afterwards.
    pub unsafe fn graph_instantiate(&self, graph: RawGraph) -> Result<RawGraphExec, DriverError> {
        let call = self.names.graph_instantiate;
        let instantiate = self
            .api
            .graph_instantiate
            .ok_or_else(|| self.missing(call))?;
        let mut exec: RawGraphExec = std::ptr::null_mut();
        // SAFETY: forwarded from the caller; no flags.
        self.check(call, unsafe { instantiate(&mut exec, graph, 0) })?;
        Ok(exec)
    }

    /// # Safety
    /// `exec` and `stream` are live on the same device, and every buffer the captured work
    /// touches is still allocated when the replay runs.
    pub unsafe fn graph_launch(
        &self,
        exec: RawGraphExec,
        stream: RawStream,
    ) -> Result<(), DriverError> {
        let call = self.names.graph_launch;
        let launch = self.api.graph_launch.ok_or_else(|| self.missing(call))?;
        // SAFETY: forwarded from the caller.
        self.check(call, unsafe { launch(exec, stream) })
    }

    /// # Safety
    /// `exec` is live and not used again.
    pub unsafe fn graph_exec_destroy(&self, exec: RawGraphExec) -> Result<(), DriverError> {
        let call = self.names.graph_exec_destroy;
        let destroy = self
            .api
            .graph_exec_destroy
            .ok_or_else(|| self.missing(call))?;
        // SAFETY: forwarded from the caller.
        self.check(call, unsafe { destroy(exec) })
    }

    /// # Safety
    /// `graph` is live and not used again.
    pub unsafe fn graph_destroy(&self, graph: RawGraph) -> Result<(), DriverError> {
        let call = self.names.graph_destroy;
        let destroy = self.api.graph_destroy.ok_or_else(|| self.missing(call))?;
        // SAFETY: forwarded from the caller.
        self.check(call, unsafe { destroy(graph) })
    }
}
