//! Page-locked host memory, the allocation under the host memory kernels read and write
//! ([`super::MappedHost`]) and under the upload staging area ([`super::UploadStaging`]).
//! Both runtimes use unified addressing on the 64-bit hosts the library runs on, where
//! page-locked host memory is mapped into every device at the address the host sees.

use std::ffi::c_void;
use std::ptr::NonNull;

use super::device::Device;
use crate::error::{Error, Result};

/// `bytes` of page-locked host memory, freed when this value drops. Its owner decides who
/// reads and writes the bytes, and when.
pub struct PageLocked {
    device: Device,
    bytes: NonNull<u8>,
    len: usize,
}

impl PageLocked {
    /// `len` bytes (uninitialised) allocated through `device`'s runtime, page-aligned.
    pub fn new(device: &Device, len: usize) -> Result<PageLocked> {
        // SAFETY: `run` made the device current; the value below owns the allocation and
        // frees it once when it drops.
        let ptr = device.run(|driver| unsafe { driver.mem_host_alloc(len) })?;
        let bytes = NonNull::new(ptr.cast::<u8>()).ok_or_else(|| {
            Error::DeviceOutOfMemory(format!("{len} bytes of page-locked host memory"))
        })?;
        Ok(PageLocked {
            device: device.clone(),
            bytes,
            len,
        })
    }

    /// The first byte, for the host and (unified addressing) for the device alike.
    pub fn as_ptr(&self) -> *mut u8 {
        self.bytes.as_ptr()
    }

    /// The bytes held.
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn device(&self) -> &Device {
        &self.device
    }
}

impl Drop for PageLocked {
    fn drop(&mut self) {
        let bytes = self.bytes.as_ptr().cast::<c_void>();
        // SAFETY: this value owns the allocation and frees it once; the vendors' free of
        // page-locked memory waits for the device first, so no queued kernel still reaches
        // it (as for a `DeviceBuffer`).
        let _ = self
            .device
            .run_cleanup(|driver| unsafe { driver.mem_free_host(bytes) });
    }
}
