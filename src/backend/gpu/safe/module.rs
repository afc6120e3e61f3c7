//! Loaded device code. A [`Function`] keeps its [`Module`] loaded, and both keep the
//! device open.

use std::ffi::{CString, c_void};
use std::sync::Arc;

use super::super::kernels;
use super::super::sys::{RawFunction, RawModule};
use super::device::Device;
use super::launch::{KernelArgs, LaunchConfig};
use super::stream::Stream;
use crate::error::{Error, Result};

/// A code object loaded on one device.
#[derive(Clone)]
pub struct Module {
    shared: Arc<LoadedModule>,
}

struct LoadedModule {
    device: Device,
    raw: RawModule,
    name: String,
    /// Launch its kernels to overlap the kernel before them (`kernels::launch_overlap`),
    /// each asking for the one shared-memory carve-out they share
    /// (`kernels::OVERLAP_SHARED_MEMORY_CARVEOUT`).
    overlap_launches: bool,
}

// SAFETY: a module handle may be used from any thread; it is only passed to the driver.
unsafe impl Send for LoadedModule {}
// SAFETY: as above.
unsafe impl Sync for LoadedModule {}

impl Drop for LoadedModule {
    fn drop(&mut self) {
        let raw = self.raw;
        // SAFETY: the last `Module` or `Function` referring to the handle is gone.
        let _ = self
            .device
            .run_cleanup(|driver| unsafe { driver.module_unload(raw) });
    }
}

impl Module {
    /// Loads a code object: a CUDA fatbin or cubin, or a HIP code object or offload
    /// bundle. The runtime checks the image and copies what it needs.
    pub fn load(device: &Device, name: &str, image: &[u8]) -> Result<Module> {
        Module::load_image(device, name, image, false)
    }

    fn load_image(
        device: &Device,
        name: &str,
        image: &[u8],
        overlap_launches: bool,
    ) -> Result<Module> {
        if image.is_empty() {
            return Err(Error::InvalidArgument(format!(
                "module '{name}': empty image"
            )));
        }
        // The runtimes read the image's headers as 8-byte words, so give them an 8-byte
        // aligned copy rather than trusting the caller's alignment.
        let mut aligned = vec![0u64; image.len().div_ceil(8)];
        // SAFETY: `aligned` holds at least `image.len()` bytes and does not overlap it.
        unsafe {
            std::ptr::copy_nonoverlapping(
                image.as_ptr(),
                aligned.as_mut_ptr().cast::<u8>(),
                image.len(),
            );
        }
        let image_ptr = aligned.as_ptr().cast::<c_void>();
        // SAFETY: `run` made the device current; the image is complete and readable for
        // the call; the module below owns the handle.
        let raw = device.run(|driver| unsafe { driver.module_load_data(image_ptr) })?;
        Ok(Module {
            shared: Arc::new(LoadedModule {
                device: device.clone(),
                raw,
                name: name.to_owned(),
                overlap_launches,
            }),
        })
    }

    /// Loads the kernels this library was built with from `kernels/<name>.hip`, choosing
    /// the code object for the device's vendor; fails with the reason when the build has
    /// none that runs on this device.
    pub fn load_embedded(device: &Device, name: &str) -> Result<Module> {
        let image = kernels::image_for(device, name)?;
        Module::load_image(device, name, image, kernels::launch_overlap(device))
    }

    pub fn name(&self) -> &str {
        &self.shared.name
    }

    pub fn device(&self) -> &Device {
        &self.shared.device
    }

    /// The `extern "C"` kernel called `name`.
    pub fn function(&self, name: &str) -> Result<Function> {
        let c_name = CString::new(name)
            .map_err(|_| Error::InvalidArgument(format!("kernel name {name:?} contains NUL")))?;
        let module = self.shared.raw;
        let named = |e: Error| match e {
            Error::Device(message) => Error::Device(format!(
                "kernel '{name}' in module '{}': {message}",
                self.shared.name
            )),
            other => other,
        };
        // SAFETY: the module is live while `self.shared` is, and the function keeps it.
        let raw = self
            .shared
            .device
            .run(|driver| unsafe { driver.module_get_function(module, &c_name) })
            .map_err(named)?;
        if self.shared.overlap_launches {
            let percent = kernels::OVERLAP_SHARED_MEMORY_CARVEOUT;
            // SAFETY: `raw` was just returned by the module, which is live.
            let carved = self
                .shared
                .device
                .run(|driver| unsafe { driver.set_shared_memory_carveout(raw, percent) });
            carved.map_err(named)?;
        }
        Ok(Function {
            module: Arc::clone(&self.shared),
            raw,
            name: name.to_owned(),
        })
    }
}

/// A kernel of a loaded module.
pub struct Function {
    module: Arc<LoadedModule>,
    raw: RawFunction,
    name: String,
}

// SAFETY: a function handle may be launched from any thread; it is only passed to the
// driver and stays valid while `module` is loaded.
unsafe impl Send for Function {}
// SAFETY: as above.
unsafe impl Sync for Function {}

impl Function {
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Queues the kernel on `stream`; returns without waiting.
    ///
    /// # Safety
    /// `args` must match the kernel's parameters in number, order and type; every buffer
    /// passed must stay alive until the kernel has finished (or, when captured into a
    /// graph, until the last replay has); and the kernel must stay inside the memory it
    /// is given for the launch geometry used. The library cannot check any of this: the
    /// kernel is compiled code.
    pub unsafe fn launch(
        &self,
        stream: &Stream,
        config: &LaunchConfig,
        args: &KernelArgs,
    ) -> Result<()> {
        let device = &self.module.device;
        if !device.same_device(stream.device()) {
            return Err(Error::InvalidArgument(format!(
                "kernel '{}': the stream belongs to another device",
                self.name
            )));
        }
        config.validate()?;
        let mut params = args.param_pointers();
        let (function, raw_stream) = (self.raw, stream.raw());
        let overlap = self.module.overlap_launches;
        // SAFETY: function and stream are live on the same device (checked above); each
        // parameter pointer addresses a slot of `args`, which outlives the call; the
        // caller guarantees the arguments match the kernel and the buffers outlive it;
        // overlap is on only for this library's kernels, which all wait for their inputs.
        device.run(|driver| unsafe {
            driver.launch_kernel(
                function,
                config.grid,
                config.block,
                config.shared_mem_bytes,
                raw_stream,
                params.as_mut_ptr(),
                overlap,
            )
        })
    }
}
