//! A marker in a stream's work: to wait for, to order another stream after, or to time
//! the work between two of them.

use super::super::sys::RawEvent;
use super::device::Device;
use super::stream::Stream;
use crate::error::{Error, Result};

pub struct Event {
    device: Device,
    raw: RawEvent,
}

// SAFETY: an event handle may be used from any thread; the pointer is only passed to the
// driver.
unsafe impl Send for Event {}
// SAFETY: as above.
unsafe impl Sync for Event {}

impl Event {
    pub fn new(device: &Device) -> Result<Event> {
        // SAFETY: `run` made the device current; the event below owns the handle.
        let raw = device.run(|driver| unsafe { driver.event_create() })?;
        Ok(Event {
            device: device.clone(),
            raw,
        })
    }

    /// Marks the point after the work queued on `stream` so far.
    pub fn record(&self, stream: &Stream) -> Result<()> {
        self.check_device(stream.device())?;
        let (raw, stream) = (self.raw, stream.raw());
        // SAFETY: both are live and on the same device (checked above).
        self.device
            .run(|driver| unsafe { driver.event_record(raw, stream) })
    }

    /// Waits until the work before the recorded point has finished.
    pub fn synchronize(&self) -> Result<()> {
        let raw = self.raw;
        // SAFETY: the event is live while `self` is.
        self.device
            .run(|driver| unsafe { driver.event_synchronize(raw) })
    }

    /// Milliseconds from this event to `end`; both must have been recorded and reached.
    pub fn elapsed_ms(&self, end: &Event) -> Result<f32> {
        end.check_device(&self.device)?;
        let (start, end) = (self.raw, end.raw);
        // SAFETY: both are live and on the same device (checked above).
        self.device
            .run(|driver| unsafe { driver.event_elapsed_time(start, end) })
    }

    pub(crate) fn raw(&self) -> RawEvent {
        self.raw
    }

    pub(crate) fn check_runtime(&self, device: &Device) -> Result<()> {
        if self.device.vendor() == device.vendor() {
            Ok(())
        } else {
            Err(Error::InvalidArgument(
                "the event belongs to another runtime's device".into(),
            ))
        }
    }

    fn check_device(&self, device: &Device) -> Result<()> {
        if self.device.same_device(device) {
            Ok(())
        } else {
            Err(Error::InvalidArgument(
                "the event belongs to another device".into(),
            ))
        }
    }
}

impl Drop for Event {
    fn drop(&mut self) {
        let raw = self.raw;
        // SAFETY: the handle is not used after this.
        let _ = self
            .device
            .run_cleanup(|driver| unsafe { driver.event_destroy(raw) });
    }
}
