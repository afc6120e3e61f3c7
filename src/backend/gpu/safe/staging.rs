//! Host-to-device copies through page-locked host memory. A step's inputs are written into
//! the staging area and their copies queued without waiting (a copy from ordinary,
//! pageable memory must wait until the driver has read it); the area is written again only
//! after the copies that read it have finished.

use std::ffi::c_void;
use std::ptr::NonNull;

use super::super::sys::RawStream;
use super::device::Device;
use super::event::Event;
use super::memory::{DeviceBuffer, DeviceCopy};
use super::stream::Stream;
use crate::error::{Error, Result};

/// Where each upload starts in the area: enough for every element type.
const ALIGN: usize = 16;

/// A page-locked area of host memory and the copies that read it, all queued on one
/// stream (the event below orders them only on it).
pub struct UploadStaging {
    device: Device,
    stream: RawStream,
    area: NonNull<u8>,
    capacity: usize,
    used: usize,
    /// Recorded after the copies of the last ended set: the area is free again once it is
    /// reached.
    copied: Event,
    /// Whether copies were queued after `copied` was last recorded (a set still open, or
    /// one leaked with `mem::forget`, which never ran its drop).
    unfenced: bool,
}

// SAFETY: the area is owned by this value alone and only touched through `&mut self`; the
// event and device handles may be used from any thread.
unsafe impl Send for UploadStaging {}
// SAFETY: `&self` gives no access to the area.
unsafe impl Sync for UploadStaging {}

impl UploadStaging {
    /// An area of `capacity` bytes (at least one) for copies queued on `stream`.
    pub fn new(stream: &Stream, capacity: usize) -> Result<UploadStaging> {
        let device = stream.device();
        let bytes = capacity.max(1);
        // SAFETY: `run` made the device current; the value below owns the allocation and
        // frees it once when it drops.
        let ptr = device.run(|driver| unsafe { driver.mem_host_alloc(bytes) })?;
        let area = NonNull::new(ptr.cast::<u8>()).ok_or_else(|| {
            Error::DeviceOutOfMemory(format!("{bytes} bytes of page-locked host memory"))
        })?;
        Ok(UploadStaging {
            copied: Event::new(device)?,
            device: device.clone(),
            stream: stream.raw(),
            area,
            capacity: bytes,
            used: 0,
            unfenced: false,
        })
    }

    /// Page-locked host bytes held.
    pub fn size_bytes(&self) -> usize {
        self.capacity
    }

    /// Starts a new set of uploads queued on `stream`, the one the area was made for:
    /// waits until every copy of the previous sets has read the area. The set's copies
    /// are fenced by one event, recorded when it ends ([`UploadSet::finish`], or its drop).
    pub fn begin<'a>(&'a mut self, stream: &'a Stream) -> Result<UploadSet<'a>> {
        if stream.raw() != self.stream {
            return Err(Error::InvalidArgument(
                "a staging area queues its copies on the one stream it was made for".into(),
            ));
        }
        if self.unfenced {
            // A set that was never ended: no event follows its copies.
            stream.synchronize()?;
            self.unfenced = false;
        }
        self.copied.synchronize()?;
        self.used = 0;
        Ok(UploadSet {
            staging: self,
            stream,
        })
    }
}

/// One set of copies out of an [`UploadStaging`] area, queued on one stream. Never while
/// that stream records a graph: a recorded copy would read the area at every replay, long
/// after it was written again.
pub struct UploadSet<'a> {
    staging: &'a mut UploadStaging,
    stream: &'a Stream,
}

impl UploadSet<'_> {
    /// Puts `src` in the area and queues its copy into `dst`'s first `src.len()` elements;
    /// returns without waiting. Fails when the area is full.
    pub fn upload<T: DeviceCopy>(&mut self, src: &[T], dst: &mut DeviceBuffer<T>) -> Result<()> {
        if src.len() > dst.len() {
            return Err(Error::InvalidArgument(format!(
                "upload of {} elements into a buffer of {}",
                src.len(),
                dst.len()
            )));
        }
        if !dst.device().same_device(self.stream.device()) {
            return Err(Error::InvalidArgument(
                "an upload's buffer and stream are on different devices".into(),
            ));
        }
        if src.is_empty() {
            return Ok(());
        }
        let staging = &mut *self.staging;
        let bytes = size_of_val(src);
        let offset = staging.used.next_multiple_of(ALIGN);
        if offset
            .checked_add(bytes)
            .is_none_or(|end| end > staging.capacity)
        {
            return Err(Error::InvalidArgument(format!(
                "the staging area of {} bytes has no room for {bytes} more after {offset}",
                staging.capacity
            )));
        }
        // SAFETY: offset + bytes is within the area (checked); the area is not read by any
        // queued copy (`begin` waited for the earlier sets' and this set's copies read
        // earlier, disjoint ranges); `src` is `bytes` of plain data.
        let staged = unsafe {
            let at = staging.area.as_ptr().add(offset);
            std::ptr::copy_nonoverlapping(src.as_ptr().cast::<u8>(), at, bytes);
            at.cast_const().cast::<c_void>()
        };
        let (target, raw) = (dst.device_ptr(), self.stream.raw());
        staging.device.run(|driver| {
            // SAFETY: `target` holds at least `bytes` bytes (checked above); `staged` stays
            // allocated and unwritten until the set's event is reached (recorded when the
            // set ends; `begin` and `drop` of the area wait for it).
            unsafe { driver.memcpy_htod_async(target, staged, bytes, raw) }
        })?;
        staging.used = offset + bytes;
        staging.unfenced = true;
        Ok(())
    }

    /// Ends the set: records the event after its copies.
    pub fn finish(mut self) -> Result<()> {
        self.fence()
    }

    fn fence(&mut self) -> Result<()> {
        if !self.staging.unfenced {
            return Ok(());
        }
        self.staging.unfenced = false;
        self.staging.copied.record(self.stream).inspect_err(|_| {
            // The event cannot guard the copies: wait for them here instead.
            let _ = self.stream.synchronize();
        })
    }
}

impl Drop for UploadSet<'_> {
    fn drop(&mut self) {
        // A set left early (an error) still fences its copies.
        let _ = self.fence();
    }
}

impl Drop for UploadStaging {
    fn drop(&mut self) {
        if self.unfenced {
            // A leaked set's copies may still read the area and nothing here can wait for
            // them (its stream may be gone): the area is leaked too, never freed under them.
            return;
        }
        // Queued copies must not read freed memory; a lost device runs nothing more.
        let _ = self.copied.synchronize();
        let area = self.area.as_ptr().cast::<c_void>();
        // SAFETY: this value owns the area, frees it once, and every copy reading it has
        // finished (waited for above, or the device is lost and runs nothing).
        let _ = self
            .device
            .run_cleanup(|driver| unsafe { driver.mem_free_host(area) });
    }
}

impl std::fmt::Debug for UploadStaging {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "UploadStaging[{} bytes] on {:?}",
            self.capacity, self.device
        )
    }
}
