//! A word of page-locked host memory that kernels read directly: how the host tells a
//! running kernel something while the device's queues are busy, with no copy or kernel
//! queued behind it. Both runtimes use unified addressing on the 64-bit hosts the library
//! runs on, where page-locked host memory is mapped into every device at the address the
//! host sees.

use std::ffi::c_void;
use std::ptr::NonNull;

use super::device::Device;
use crate::error::{Error, Result};

pub struct HostWord {
    device: Device,
    word: NonNull<u32>,
}

// SAFETY: the word is only written through volatile stores of a whole u32 and read by
// kernels; the device handle may be used from any thread.
unsafe impl Send for HostWord {}
// SAFETY: as above: concurrent stores of a whole word leave one of the values.
unsafe impl Sync for HostWord {}

impl HostWord {
    /// A word holding 0, readable by the kernels of `device`.
    pub fn new(device: &Device) -> Result<HostWord> {
        // SAFETY: `run` made the device current; the value below owns the allocation and
        // frees it once when it drops.
        let ptr = device.run(|driver| unsafe { driver.mem_host_alloc(size_of::<u32>()) })?;
        let word = NonNull::new(ptr.cast::<u32>())
            .ok_or_else(|| Error::DeviceOutOfMemory("a word of page-locked host memory".into()))?;
        let host_word = HostWord {
            device: device.clone(),
            word,
        };
        host_word.set(0);
        Ok(host_word)
    }

    /// Stores `value`, which kernels reading the word see without any stream's help.
    pub fn set(&self, value: u32) {
        // SAFETY: `word` points to 4 page-locked bytes this value owns, aligned (the
        // runtime's allocations are page-aligned).
        unsafe { self.word.as_ptr().write_volatile(value) }
    }

    /// The address kernels read the word at (the host's: unified addressing).
    pub fn device_ptr(&self) -> u64 {
        self.word.as_ptr() as u64
    }
}

impl Drop for HostWord {
    /// The owner makes sure no kernel that reads the word still runs (as for a
    /// `DeviceBuffer`).
    fn drop(&mut self) {
        let word = self.word.as_ptr().cast::<c_void>();
        // SAFETY: this value owns the allocation and frees it once.
        let _ = self
            .device
            .run_cleanup(|driver| unsafe { driver.mem_free_host(word) });
    }
}
