//! Host-to-device uploads through page-locked host memory. A step's inputs are written
//! into the staging area, each with a description of where it goes, and one kernel then
//! reads the area (mapped into the device) and writes every input into its buffer: one
//! launch where a copy per input would each cost the copy engine's latency. The area is
//! written again only after the kernel that read it has finished.

use std::mem::ManuallyDrop;

use super::super::sys::RawStream;
use super::event::Event;
use super::memory::{DeviceBuffer, DeviceCopy};
use super::page_locked::PageLocked;
use super::stream::Stream;
use crate::error::{Error, Result};

/// Where each staged input starts in the area: enough for every element type and for the
/// gather kernel's 16-byte loads.
const ALIGN: usize = 16;

/// The most uploads one set holds.
pub const MAX_UPLOADS: usize = 16;

/// One upload as the gather kernel reads it (`kernels/staging.hip`, `StagedPiece`): the
/// area opens with `MAX_UPLOADS` of these.
#[repr(C)]
#[derive(Clone, Copy)]
struct StagedPiece {
    destination: u64,
    offset: u32,
    bytes: u32,
}

/// The area's bytes before its first staged input.
pub const STAGING_HEADER_BYTES: usize = MAX_UPLOADS * size_of::<StagedPiece>();

/// What the kernel that gathers an [`UploadSet`] is given, only while the set ends (see
/// [`UploadSet::finish`]): made nowhere else, and neither copied nor kept, so a gather
/// reads only an area whose descriptions name live buffers with room for their pieces.
#[derive(Debug)]
pub struct StagedUploads {
    area: u64,
    count: u32,
    max_bytes: u32,
    stream: RawStream,
}

impl StagedUploads {
    /// The area's address in the device (unified addressing: the host's).
    pub fn area(&self) -> u64 {
        self.area
    }

    /// Uploads described at the start of the area (at least one); each starts 16-byte
    /// aligned in the area and in its buffer, which holds all of its bytes.
    pub fn count(&self) -> u32 {
        self.count
    }

    /// The bytes of the largest.
    pub fn max_bytes(&self) -> u32 {
        self.max_bytes
    }

    /// Whether the gather is queued on `stream`, the set's (which the event after it
    /// orders).
    pub fn is_for(&self, stream: &Stream) -> bool {
        stream.raw() == self.stream
    }
}

/// A page-locked area of host memory and the gathers that read it, all queued on one
/// stream (the event below orders them only on it).
pub struct UploadStaging {
    stream: RawStream,
    /// Freed by the drop below, or never while a gather may still read it.
    area: ManuallyDrop<PageLocked>,
    used: usize,
    count: usize,
    max_bytes: usize,
    /// Recorded after the gather of the last set: the area is free again once it is
    /// reached.
    copied: Event,
    /// Whether a gather was queued with no event after it (its record failed, and so did
    /// the wait that stood in for it).
    unfenced: bool,
}

// SAFETY: the area is owned by this value alone and only touched through `&mut self`; the
// event and device handles (the latter in the area) may be used from any thread.
unsafe impl Send for UploadStaging {}
// SAFETY: `&self` gives no access to the area.
unsafe impl Sync for UploadStaging {}

impl UploadStaging {
    /// An area of `capacity` bytes of inputs (and the descriptions of up to
    /// [`MAX_UPLOADS`] of them) for uploads queued on `stream`.
    pub fn new(stream: &Stream, capacity: usize) -> Result<UploadStaging> {
        let device = stream.device();
        let bytes = capacity.checked_add(STAGING_HEADER_BYTES).ok_or_else(|| {
            Error::DeviceOutOfMemory(format!("{capacity} bytes of page-locked host memory"))
        })?;
        Ok(UploadStaging {
            copied: Event::new(device)?,
            stream: stream.raw(),
            area: ManuallyDrop::new(PageLocked::new(device, bytes)?),
            used: STAGING_HEADER_BYTES,
            count: 0,
            max_bytes: 0,
            unfenced: false,
        })
    }

    /// Page-locked host bytes held.
    pub fn size_bytes(&self) -> usize {
        self.area.len()
    }

    /// Starts a new set of uploads queued on `stream`, the one the area was made for:
    /// waits until the gather of every previous set has read the area.
    pub fn begin<'a>(&'a mut self, stream: &'a Stream) -> Result<UploadSet<'a>> {
        if stream.raw() != self.stream {
            return Err(Error::InvalidArgument(
                "a staging area queues its uploads on the one stream it was made for".into(),
            ));
        }
        if self.unfenced {
            stream.synchronize()?;
            self.unfenced = false;
        }
        self.copied.synchronize()?;
        self.used = STAGING_HEADER_BYTES;
        self.count = 0;
        self.max_bytes = 0;
        Ok(UploadSet {
            staging: self,
            stream,
        })
    }
}

/// One set of uploads out of an [`UploadStaging`] area, queued on one stream when it
/// ends. Never while that stream records a graph: a recorded gather would read the area
/// at every replay, long after it was written again. The buffers it writes stay borrowed
/// until it ends, so none is freed before its gather is queued.
pub struct UploadSet<'a> {
    staging: &'a mut UploadStaging,
    stream: &'a Stream,
}

impl<'a> UploadSet<'a> {
    /// Puts `src` in the area, to be written into `dst`'s first `src.len()` elements when
    /// the set ends. Fails when the area or its descriptions are full.
    pub fn upload<T: DeviceCopy>(&mut self, src: &[T], dst: &'a mut DeviceBuffer<T>) -> Result<()> {
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
        let end = offset
            .checked_add(bytes)
            .filter(|&end| end <= staging.area.len());
        let (Some(end), Ok(offset32), Ok(bytes32)) =
            (end, u32::try_from(offset), u32::try_from(bytes))
        else {
            return Err(Error::InvalidArgument(format!(
                "the staging area of {} bytes has no room for {bytes} more after {offset}",
                staging.area.len()
            )));
        };
        if staging.count == MAX_UPLOADS {
            return Err(Error::InvalidArgument(format!(
                "a set of uploads holds at most {MAX_UPLOADS}"
            )));
        }
        let piece = StagedPiece {
            destination: dst.device_ptr(),
            offset: offset32,
            bytes: bytes32,
        };
        // SAFETY: offset + bytes is within the area (checked), and so is the description's
        // slot (count < MAX_UPLOADS, in the header); no queued gather reads the area
        // (`begin` waited for the earlier sets' gathers, and this set's runs when it
        // ends); `src` is `bytes` of plain data, and the area is page-aligned.
        unsafe {
            let base = staging.area.as_ptr();
            std::ptr::copy_nonoverlapping(src.as_ptr().cast::<u8>(), base.add(offset), bytes);
            base.cast::<StagedPiece>().add(staging.count).write(piece);
        }
        staging.used = end;
        staging.count += 1;
        staging.max_bytes = staging.max_bytes.max(bytes);
        Ok(())
    }

    /// Ends the set: `gather` queues the kernel that writes every upload into its buffer
    /// (nothing, for a set without uploads), then an event marks the area free again.
    pub fn finish(self, gather: impl FnOnce(&StagedUploads) -> Result<()>) -> Result<()> {
        let staging = self.staging;
        if staging.count == 0 {
            return Ok(());
        }
        let gathered = gather(&StagedUploads {
            area: staging.area.as_ptr() as u64,
            count: staging.count as u32,
            max_bytes: staging.max_bytes as u32,
            stream: staging.stream,
        });
        // Fenced whatever `gather` returned: it may have queued the kernel and failed after.
        if let Err(e) = staging.copied.record(self.stream) {
            // The event cannot guard the area: wait for the gather here instead.
            staging.unfenced = self.stream.synchronize().is_err();
            return gathered.and(Err(e));
        }
        gathered
    }
}

impl Drop for UploadStaging {
    fn drop(&mut self) {
        if self.unfenced {
            // A gather may still read the area and nothing here can wait for it (its
            // stream may be gone): the area is leaked, never freed under it.
            return;
        }
        // A queued gather must not read freed memory; a lost device runs nothing more.
        let _ = self.copied.synchronize();
        // SAFETY: dropped once, here, where nothing uses the area again, and every gather
        // reading it has finished (waited for above, or the device is lost and runs nothing).
        unsafe { ManuallyDrop::drop(&mut self.area) }
    }
}

impl std::fmt::Debug for UploadStaging {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "UploadStaging[{} bytes] on {:?}",
            self.area.len(),
            self.area.device()
        )
    }
}
