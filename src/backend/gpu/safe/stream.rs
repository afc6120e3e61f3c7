//! A queue of device work. Streams never synchronise with the legacy default stream: all
//! work this crate does names a stream, so ordering is explicit and graph capture on one
//! stream cannot be broken by work elsewhere.

use super::super::sys::RawStream;
use super::device::Device;
use super::event::Event;
use crate::error::Result;

pub struct Stream {
    device: Device,
    raw: RawStream,
}

// SAFETY: a stream handle may be used from any thread (the vendor APIs are thread-safe);
// the pointer is only passed to the driver. Capture, the one thread-bound operation,
// takes `&mut self`.
unsafe impl Send for Stream {}
// SAFETY: as above.
unsafe impl Sync for Stream {}

impl Stream {
    pub fn new(device: &Device) -> Result<Stream> {
        // SAFETY: `run` made the device current; the stream below owns the handle.
        let raw = device.run(|driver| unsafe { driver.stream_create() })?;
        Ok(Stream {
            device: device.clone(),
            raw,
        })
    }

    pub fn device(&self) -> &Device {
        &self.device
    }

    /// Waits until all work queued so far has finished; reports errors of that work
    /// (a faulting kernel shows up here).
    pub fn synchronize(&self) -> Result<()> {
        let raw = self.raw;
        // SAFETY: the stream is live while `self` is.
        self.device
            .run(|driver| unsafe { driver.stream_synchronize(raw) })
    }

    /// Makes work queued later on this stream wait until `event` has completed; the
    /// event may be another GPU's of the same runtime.
    pub fn wait_for(&self, event: &Event) -> Result<()> {
        event.check_runtime(&self.device)?;
        let (raw, event) = (self.raw, event.raw());
        // SAFETY: both are live and of one runtime (checked above), which lets a stream
        // wait for any of its devices' events.
        self.device
            .run(|driver| unsafe { driver.stream_wait_event(raw, event) })
    }

    pub(crate) fn raw(&self) -> RawStream {
        self.raw
    }
}

impl Drop for Stream {
    fn drop(&mut self) {
        let raw = self.raw;
        // SAFETY: the handle is not used after this; queued work still completes.
        let _ = self
            .device
            .run_cleanup(|driver| unsafe { driver.stream_destroy(raw) });
    }
}

impl std::fmt::Debug for Stream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Stream({:p} on {:?})", self.raw, self.device)
    }
}
