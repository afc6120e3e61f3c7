//! Page-locked host memory that kernels read and write directly: how the host tells a
//! running kernel something while the device's queues are busy, and how a kernel hands
//! the host a result with no copy queued behind it.

use std::marker::PhantomData;

use super::device::Device;
use super::memory::DeviceCopy;
use super::page_locked::PageLocked;
use crate::error::{Error, Result};

/// `len` elements of `T` in page-locked host memory, mapped into the kernels of one
/// device. The host touches them only through volatile loads and stores of whole
/// elements, so a kernel writing them at the same time leaves each element either value.
pub struct MappedHost<T: DeviceCopy> {
    memory: PageLocked,
    len: usize,
    elements: PhantomData<T>,
}

// SAFETY: the elements are only reached through volatile accesses of whole elements (see
// above); the device handle in the memory may be used from any thread.
unsafe impl<T: DeviceCopy> Send for MappedHost<T> {}
// SAFETY: as above: concurrent stores of a whole element leave one of the values.
unsafe impl<T: DeviceCopy> Sync for MappedHost<T> {}

impl<T: DeviceCopy> MappedHost<T> {
    /// `len` (at least one) zeroed elements, readable and writable by the kernels of
    /// `device`.
    pub fn new(device: &Device, len: usize) -> Result<MappedHost<T>> {
        let len = len.max(1);
        let bytes = len.checked_mul(size_of::<T>()).ok_or_else(|| {
            Error::DeviceOutOfMemory(format!("{len} elements of page-locked host memory"))
        })?;
        let mapped = MappedHost {
            memory: PageLocked::new(device, bytes)?,
            len,
            elements: PhantomData,
        };
        for index in 0..len {
            // SAFETY: the all-zero bit pattern is a valid `DeviceCopy` value.
            mapped.store(index, unsafe { std::mem::zeroed() });
        }
        Ok(mapped)
    }

    pub fn len(&self) -> usize {
        self.len
    }

    /// Always false: [`MappedHost::new`] holds at least one element.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub fn device(&self) -> &Device {
        self.memory.device()
    }

    fn element(&self, index: usize) -> *mut T {
        self.memory.as_ptr().cast::<T>().wrapping_add(index)
    }

    /// Stores `value` at `index`, which kernels reading it see without any stream's help.
    /// An index past the end is a caller's bug: it stores nothing.
    pub fn store(&self, index: usize, value: T) {
        debug_assert!(index < self.len, "store at {index} of {}", self.len);
        if index < self.len {
            // SAFETY: `index` is within the allocation this value owns, aligned for `T`
            // (the runtime's allocations are page-aligned).
            unsafe { self.element(index).write_volatile(value) }
        }
    }

    /// Copies the first `dst.len()` elements into `dst`: what the kernels that wrote them
    /// left, once the caller has waited for those kernels.
    pub fn load_into(&mut self, dst: &mut [T]) -> Result<()> {
        if dst.len() > self.len {
            return Err(Error::InvalidArgument(format!(
                "a read of {} elements from {} of mapped host memory",
                dst.len(),
                self.len
            )));
        }
        for (index, value) in dst.iter_mut().enumerate() {
            // SAFETY: `index` is within the allocation (checked above), aligned for `T`,
            // and every bit pattern is a valid `T`.
            *value = unsafe { self.element(index).read_volatile() };
        }
        Ok(())
    }

    /// The address kernels reach the elements at (the host's: unified addressing).
    pub fn device_ptr(&self) -> u64 {
        self.memory.as_ptr() as u64
    }
}
