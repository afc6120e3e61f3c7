//! Device memory with exactly one owner. A [`DeviceBuffer`] frees its allocation when it
//! drops, cannot be cloned (shared access goes through `Arc`), and copies to and from the
//! host only with slices of its exact length.

use std::ffi::c_void;
use std::marker::PhantomData;

use super::super::sys::DevicePtr;
use super::device::Device;
use super::stream::Stream;
use crate::error::{Error, Result};

/// Element types that may live in device memory and be copied bytewise both ways.
///
/// # Safety
/// Every bit pattern must be a valid value (a kernel may write anything), and the type
/// must have no padding and no pointers or references.
pub unsafe trait DeviceCopy: Copy + Send + Sync + 'static {}

macro_rules! device_copy {
    ($($t:ty),*) => {
        // SAFETY: primitive numbers: no padding, every bit pattern valid.
        $(unsafe impl DeviceCopy for $t {})*
    };
}
device_copy!(
    u8,
    i8,
    u16,
    i16,
    u32,
    i32,
    u64,
    i64,
    f32,
    f64,
    half::f16,
    half::bf16
);

/// `len` elements of `T` on one device.
pub struct DeviceBuffer<T: DeviceCopy> {
    device: Device,
    /// 0 when `len` is 0: nothing is allocated for an empty buffer.
    ptr: DevicePtr,
    len: usize,
    _elements: PhantomData<T>,
}

/// Proves at compile time that a type does not implement a trait: if it did, the
/// `AmbiguousIfImpl<_>` below would have two candidate impls and fail to infer.
macro_rules! assert_not_impl {
    ($t:ty: $trait:path) => {
        const _: fn() = || {
            trait AmbiguousIfImpl<A> {
                fn some_item() {}
            }
            impl<T: ?Sized> AmbiguousIfImpl<()> for T {}
            #[allow(dead_code)]
            struct Invalid;
            impl<T: ?Sized + $trait> AmbiguousIfImpl<Invalid> for T {}
            let _ = <$t as AmbiguousIfImpl<_>>::some_item;
        };
    };
}
// One owner per allocation: a copy or clone of the handle would free it twice.
assert_not_impl!(DeviceBuffer<u8>: Clone);
assert_not_impl!(DeviceBuffer<f32>: Clone);
assert_not_impl!(DeviceBuffer<u8>: Copy);

/// Allocations are whole 16-byte vectors, so a kernel's aligned 16-byte load that holds
/// any byte of a buffer stays inside its allocation (`kernels/matvec_q8.hip` reads
/// 2-aligned weight blocks that way).
const ALLOCATION_GRANULE: usize = 16;

/// The bytes reserved for a buffer of `bytes` bytes.
fn reserved_bytes(bytes: usize) -> Result<usize> {
    bytes
        .checked_next_multiple_of(ALLOCATION_GRANULE)
        .ok_or_else(|| Error::InvalidArgument(format!("{bytes} bytes overflow the address space")))
}

impl Device {
    /// `len` elements of device memory with unspecified contents (any bit pattern is a
    /// valid `T`, so reading them is safe, just meaningless).
    pub fn alloc<T: DeviceCopy>(&self, len: usize) -> Result<DeviceBuffer<T>> {
        let bytes = len.checked_mul(size_of::<T>()).ok_or_else(|| {
            Error::InvalidArgument(format!(
                "{len} elements of {} bytes overflow the address space",
                size_of::<T>()
            ))
        })?;
        let ptr = if bytes == 0 {
            0
        } else {
            let reserved = reserved_bytes(bytes)?;
            #[cfg(feature = "fault-injection")]
            if crate::host_memory::fault_injection::this_one_fails() {
                return Err(Error::DeviceOutOfMemory(format!(
                    "{reserved} bytes of device memory: injected failure"
                )));
            }
            let tracker = self.tracker();
            if !tracker.try_reserve(reserved as u64) {
                return Err(Error::DeviceOutOfMemory(format!(
                    "{reserved} bytes of device memory would pass the limit of {} bytes set \
                     for {self:?} ({} in use)",
                    tracker.limit().unwrap_or(u64::MAX),
                    tracker.stats().live_bytes
                )));
            }
            // SAFETY: `run` made the device current; the buffer below owns the result.
            let ptr = self
                .run(|driver| unsafe { driver.mem_alloc(reserved) })
                .inspect_err(|_| tracker.cancel_reservation(reserved as u64))?;
            tracker.record_alloc();
            ptr
        };
        Ok(DeviceBuffer {
            device: self.clone(),
            ptr,
            len,
            _elements: PhantomData,
        })
    }

    /// `len` elements set to zero; returns once the fill is complete.
    pub fn alloc_zeroed<T: DeviceCopy>(&self, len: usize) -> Result<DeviceBuffer<T>> {
        let mut buffer = self.alloc(len)?;
        let stream = Stream::new(self)?;
        buffer.fill_bytes(&stream, 0)?;
        stream.synchronize()?;
        Ok(buffer)
    }

    /// A device copy of `src`; returns once the copy is complete.
    pub fn upload<T: DeviceCopy>(&self, stream: &Stream, src: &[T]) -> Result<DeviceBuffer<T>> {
        let mut buffer = self.alloc(src.len())?;
        buffer.copy_from_host(stream, src)?;
        Ok(buffer)
    }
}

impl<T: DeviceCopy> DeviceBuffer<T> {
    /// The bytes `Device::alloc` reserved (rounding cannot overflow: the allocation
    /// succeeded with it).
    fn reserved_bytes(&self) -> usize {
        self.size_bytes().next_multiple_of(ALLOCATION_GRANULE)
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub fn size_bytes(&self) -> usize {
        self.len * size_of::<T>()
    }

    pub fn device(&self) -> &Device {
        &self.device
    }

    /// The address kernels see. Valid while the buffer lives.
    pub fn device_ptr(&self) -> DevicePtr {
        self.ptr
    }

    /// Copies `src` into the buffer and waits until the copy is complete, so `src` is free
    /// again when this returns. Ordered after the stream's earlier work.
    pub fn copy_from_host(&mut self, stream: &Stream, src: &[T]) -> Result<()> {
        self.check_len("copy_from_host", src.len())?;
        self.check_stream(stream)?;
        if self.is_empty() {
            return Ok(());
        }
        let (dst, bytes, raw) = (self.ptr, self.size_bytes(), stream.raw());
        self.device.run(|driver| {
            // SAFETY: `dst` holds `bytes` bytes; `src` is borrowed until the stream
            // synchronises below, so it stays readable for the whole copy.
            unsafe {
                driver.memcpy_htod_async(dst, src.as_ptr().cast::<c_void>(), bytes, raw)?;
                driver.stream_synchronize(raw)
            }
        })
    }

    /// Copies the buffer into `dst` and waits until the copy is complete. Ordered after
    /// the stream's earlier work, so it sees what kernels on the stream wrote.
    pub fn copy_to_host(&self, stream: &Stream, dst: &mut [T]) -> Result<()> {
        self.check_len("copy_to_host", dst.len())?;
        self.check_stream(stream)?;
        if self.is_empty() {
            return Ok(());
        }
        let (src, bytes, raw) = (self.ptr, self.size_bytes(), stream.raw());
        self.device.run(|driver| {
            // SAFETY: `src` holds `bytes` bytes; `dst` is borrowed mutably until the stream
            // synchronises, and any bit pattern is a valid `T`.
            unsafe {
                driver.memcpy_dtoh_async(dst.as_mut_ptr().cast::<c_void>(), src, bytes, raw)?;
                driver.stream_synchronize(raw)
            }
        })
    }

    /// The buffer's contents as a vector; waits for the copy.
    pub fn to_host_vec(&self, stream: &Stream) -> Result<Vec<T>> {
        let mut host = Vec::new();
        host.try_reserve_exact(self.len).map_err(|_| {
            Error::InvalidArgument(format!("no host memory for {} bytes", self.size_bytes()))
        })?;
        // Zero-filled first so the vector is initialised before the copy overwrites it.
        host.resize(self.len, zeroed::<T>());
        self.copy_to_host(stream, &mut host)?;
        Ok(host)
    }

    /// Copies `src` (same length, same device) into this buffer, in stream order; returns
    /// without waiting.
    pub fn copy_from_device(&mut self, stream: &Stream, src: &DeviceBuffer<T>) -> Result<()> {
        self.check_len("copy_from_device", src.len)?;
        self.check_stream(stream)?;
        if !self.device.same_device(&src.device) {
            return Err(Error::InvalidArgument(
                "copy_from_device: the buffers are on different devices".into(),
            ));
        }
        if self.is_empty() {
            return Ok(());
        }
        let (dst, from, bytes, raw) = (self.ptr, src.ptr, self.size_bytes(), stream.raw());
        // SAFETY: both hold `bytes` bytes and stay allocated while the stream uses them:
        // dropping either frees it through the vendor's free, which synchronises with the
        // device before releasing memory.
        self.device
            .run(|driver| unsafe { driver.memcpy_dtod_async(dst, from, bytes, raw) })
    }

    /// Copies elements `start..start + dst.len()` into `dst` and waits until the copy is
    /// complete. Ordered after the stream's earlier work.
    pub fn copy_range_to_host(&self, stream: &Stream, start: usize, dst: &mut [T]) -> Result<()> {
        self.check_range("copy_range_to_host", start, dst.len())?;
        self.check_stream(stream)?;
        if dst.is_empty() {
            return Ok(());
        }
        let from = self.ptr + (start * size_of::<T>()) as u64;
        let (bytes, raw) = (size_of_val(dst), stream.raw());
        self.device.run(|driver| {
            // SAFETY: `from` begins `bytes` bytes inside the allocation (checked); `dst` is
            // borrowed mutably until the stream synchronises, and any bit pattern is a
            // valid `T`.
            unsafe {
                driver.memcpy_dtoh_async(dst.as_mut_ptr().cast::<c_void>(), from, bytes, raw)?;
                driver.stream_synchronize(raw)
            }
        })
    }

    /// Copies `src` into elements `start..start + src.len()` and waits until the copy is
    /// complete, so `src` is free again when this returns. Ordered after the stream's
    /// earlier work.
    pub fn copy_range_from_host(&mut self, stream: &Stream, start: usize, src: &[T]) -> Result<()> {
        self.check_range("copy_range_from_host", start, src.len())?;
        self.check_stream(stream)?;
        if src.is_empty() {
            return Ok(());
        }
        let to = self.ptr + (start * size_of::<T>()) as u64;
        let (bytes, raw) = (size_of_val(src), stream.raw());
        self.device.run(|driver| {
            // SAFETY: `to` begins `bytes` bytes inside the allocation (checked); `src` is
            // borrowed until the stream synchronises below, so it stays readable for the
            // whole copy.
            unsafe {
                driver.memcpy_htod_async(to, src.as_ptr().cast::<c_void>(), bytes, raw)?;
                driver.stream_synchronize(raw)
            }
        })
    }

    /// Copies elements `src_start..src_start + len` of `src` to `dst_start..` of this
    /// buffer, in the order of `stream` (this buffer's device's); returns without
    /// waiting. `src` may not be this buffer (see [`DeviceBuffer::copy_within`]); it may
    /// be on another GPU of the same runtime, when `stream` already waits for the work
    /// that writes it.
    pub fn copy_range_from(
        &mut self,
        stream: &Stream,
        src: &DeviceBuffer<T>,
        src_start: usize,
        dst_start: usize,
        len: usize,
    ) -> Result<()> {
        self.check_range("copy_range_from destination", dst_start, len)?;
        src.check_range("copy_range_from source", src_start, len)?;
        self.check_stream(stream)?;
        if self.device.same_device(&src.device) {
            return self.copy_bytes(stream, src.ptr, src_start, dst_start, len);
        }
        // From another GPU.
        if self.device.vendor() != src.device.vendor() {
            return Err(Error::InvalidArgument(
                "copy_range_from: the buffers are on GPUs of different runtimes".into(),
            ));
        }
        if len == 0 {
            return Ok(());
        }
        // A copy from a lost GPU fails with that GPU's reason, before the copy is issued in
        // this GPU's context, which would mark this one lost if the copy failed.
        if let Some(reason) = src.device.lost_reason() {
            return Err(Error::DeviceLost(reason.to_owned()));
        }
        let element = size_of::<T>() as u64;
        let from = src.ptr + src_start as u64 * element;
        let to = self.ptr + dst_start as u64 * element;
        let ((dst_handle, dst_context), (src_handle, src_context)) =
            (self.device.raw_parts(), src.device.raw_parts());
        let (bytes, raw) = (len * size_of::<T>(), stream.raw());
        // SAFETY: both ranges lie inside live allocations (checked above) on two
        // devices of one runtime whose contexts their `Device`s keep retained; the
        // buffers stay allocated while the stream uses them, as in `copy_from_device`.
        self.device.run(|driver| unsafe {
            driver.memcpy_peer_async(
                (to, dst_handle, dst_context),
                (from, src_handle, src_context),
                bytes,
                raw,
            )
        })
    }

    /// Copies elements `src_start..src_start + len` to `dst_start..`, which must not
    /// overlap them, in stream order; returns without waiting.
    pub fn copy_within(
        &mut self,
        stream: &Stream,
        src_start: usize,
        dst_start: usize,
        len: usize,
    ) -> Result<()> {
        self.check_range("copy_within source", src_start, len)?;
        self.check_range("copy_within destination", dst_start, len)?;
        self.check_stream(stream)?;
        if src_start < dst_start + len && dst_start < src_start + len {
            return Err(Error::InvalidArgument(format!(
                "copy_within: {src_start}..+{len} overlaps {dst_start}..+{len}"
            )));
        }
        self.copy_bytes(stream, self.ptr, src_start, dst_start, len)
    }

    /// The device-to-device copy behind the range copies, after their checks.
    fn copy_bytes(
        &mut self,
        stream: &Stream,
        src: DevicePtr,
        src_start: usize,
        dst_start: usize,
        len: usize,
    ) -> Result<()> {
        if len == 0 {
            return Ok(());
        }
        let element = size_of::<T>() as u64;
        let from = src + src_start as u64 * element;
        let to = self.ptr + dst_start as u64 * element;
        let (bytes, raw) = (len * size_of::<T>(), stream.raw());
        // SAFETY: both ranges lie inside live allocations (checked by the callers) and do
        // not overlap; the buffers stay allocated while the stream uses them, as in
        // `copy_from_device`.
        self.device
            .run(|driver| unsafe { driver.memcpy_dtod_async(to, from, bytes, raw) })
    }

    /// Fails unless `start..start + len` lies inside the buffer.
    fn check_range(&self, operation: &str, start: usize, len: usize) -> Result<()> {
        if start.checked_add(len).is_some_and(|end| end <= self.len) {
            Ok(())
        } else {
            Err(Error::InvalidArgument(format!(
                "{operation}: {start}..+{len} is outside the buffer's {} elements",
                self.len
            )))
        }
    }

    /// Sets every byte to `value`, in stream order; returns without waiting.
    pub fn fill_bytes(&mut self, stream: &Stream, value: u8) -> Result<()> {
        self.check_stream(stream)?;
        if self.is_empty() {
            return Ok(());
        }
        let (dst, bytes, raw) = (self.ptr, self.size_bytes(), stream.raw());
        // SAFETY: `dst` holds `bytes` bytes, kept allocated as in `copy_from_device`.
        self.device
            .run(|driver| unsafe { driver.memset_d8_async(dst, value, bytes, raw) })
    }

    fn check_len(&self, operation: &str, other: usize) -> Result<()> {
        if other == self.len {
            Ok(())
        } else {
            Err(Error::InvalidArgument(format!(
                "{operation}: the buffer holds {} elements, the other side {other}",
                self.len
            )))
        }
    }

    fn check_stream(&self, stream: &Stream) -> Result<()> {
        if self.device.same_device(stream.device()) {
            Ok(())
        } else {
            Err(Error::InvalidArgument(
                "the stream belongs to another device than the buffer".into(),
            ))
        }
    }
}

/// The all-zero value of a plain-data type.
fn zeroed<T: DeviceCopy>() -> T {
    // SAFETY: `DeviceCopy` types accept every bit pattern, zero included.
    unsafe { std::mem::zeroed() }
}

impl<T: DeviceCopy> Drop for DeviceBuffer<T> {
    fn drop(&mut self) {
        if self.ptr == 0 {
            return;
        }
        let ptr = self.ptr;
        // SAFETY: this buffer is the allocation's only owner and frees it exactly once;
        // the vendors' free waits for queued work that may still use it.
        let freed = self
            .device
            .run_cleanup(|driver| unsafe { driver.mem_free(ptr) });
        // A lost device (`Ok(false)`) reclaims the memory with its context.
        self.device
            .tracker()
            .record_free(self.reserved_bytes() as u64, freed.is_ok());
    }
}

impl<T: DeviceCopy> std::fmt::Debug for DeviceBuffer<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "DeviceBuffer<{}>[{}] at {:#x} on {:?}",
            std::any::type_name::<T>(),
            self.len,
            self.ptr,
            self.device
        )
    }
}
