//! Page-locked host memory that kernels read and write directly: how the host tells a
//! running kernel something while the device's queues are busy, and how a kernel hands
//! the host a result with no copy queued behind it.

use std::marker::PhantomData;
use std::sync::atomic::{AtomicI32, AtomicU32, Ordering};

use super::device::Device;
use super::memory::DeviceCopy;
use super::page_locked::PageLocked;
use crate::error::{Error, Result};

/// `len` elements of `T` in page-locked host memory, mapped into the kernels of one
/// device. The host stores an element only atomically ([`MappedWord`]) and reads them
/// only through `&mut self`, with volatile loads of whole elements, so a kernel writing
/// them at the same time leaves each element either value.
pub struct MappedHost<T: DeviceCopy> {
    memory: PageLocked,
    len: usize,
    elements: PhantomData<T>,
}

// SAFETY: the host reaches the elements only as above; the device handle in the memory may
// be used from any thread.
unsafe impl<T: DeviceCopy> Send for MappedHost<T> {}
// SAFETY: as above: `&self` only stores, atomically.
unsafe impl<T: DeviceCopy> Sync for MappedHost<T> {}

impl<T: DeviceCopy> MappedHost<T> {
    /// `len` (at least one) zeroed elements, readable and writable by the kernels of
    /// `device`.
    pub fn new(device: &Device, len: usize) -> Result<MappedHost<T>> {
        let len = len.max(1);
        let bytes = len.checked_mul(size_of::<T>()).ok_or_else(|| {
            Error::DeviceOutOfMemory(format!("{len} elements of page-locked host memory"))
        })?;
        let memory = PageLocked::new(device, bytes)?;
        // SAFETY: the allocation holds `bytes` bytes that nothing else reaches yet, and the
        // all-zero bit pattern is a valid `DeviceCopy` value.
        unsafe { memory.as_ptr().write_bytes(0, bytes) };
        Ok(MappedHost {
            memory,
            len,
            elements: PhantomData,
        })
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

impl<T: MappedWord> MappedHost<T> {
    /// Stores `value` at `index`, which kernels reading it see without any stream's help.
    /// An index past the end is a caller's bug: it stores nothing.
    pub fn store(&self, index: usize, value: T) {
        debug_assert!(index < self.len, "store at {index} of {}", self.len);
        if index < self.len {
            // SAFETY: `index` is within the allocation this value owns, aligned for `T`
            // (the runtime's allocations are page-aligned), and the host stores its
            // elements only atomically while it is shared (see `MappedHost`).
            unsafe { T::store_atomic(self.element(index), value) }
        }
    }
}

/// The elements the host stores into [`MappedHost`] while kernels and other threads may
/// read them: 4-byte words, stored atomically.
pub trait MappedWord: DeviceCopy {
    /// # Safety
    /// `at` is aligned, valid for writes, and reached concurrently only atomically.
    unsafe fn store_atomic(at: *mut Self, value: Self);
}

impl MappedWord for u32 {
    unsafe fn store_atomic(at: *mut u32, value: u32) {
        // SAFETY: forwarded from the caller.
        unsafe { AtomicU32::from_ptr(at) }.store(value, Ordering::SeqCst);
    }
}

impl MappedWord for i32 {
    unsafe fn store_atomic(at: *mut i32, value: i32) {
        // SAFETY: forwarded from the caller.
        unsafe { AtomicI32::from_ptr(at) }.store(value, Ordering::SeqCst);
    }
}
