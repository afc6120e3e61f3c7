//! Graph capture and replay: record a fixed sequence of stream work once, then launch the
//! whole sequence with one call per replay (a decode step is such a sequence).

use super::super::result::DriverError;
use super::super::sys::{RawGraph, RawGraphExec, RawStream};
use super::device::Device;
use super::stream::Stream;
use crate::error::{Error, Result};

/// An instantiated graph, ready to replay on any stream of its device.
pub struct Graph {
    device: Device,
    exec: RawGraphExec,
}

// SAFETY: an executable graph may be launched from any thread; the handle is only passed
// to the driver.
unsafe impl Send for Graph {}
// SAFETY: as above.
unsafe impl Sync for Graph {}

/// Ends a capture that is still open when the recording closure unwinds, so the stream is
/// usable again; the partial graph is discarded.
struct OpenCapture<'a> {
    device: &'a Device,
    stream: RawStream,
}

impl Drop for OpenCapture<'_> {
    fn drop(&mut self) {
        let stream = self.stream;
        let _ = self.device.run_cleanup(|driver| {
            // SAFETY: the capture was begun on this thread on this live stream.
            let (graph, _) = unsafe { driver.stream_end_capture(stream) };
            // SAFETY: the partial graph is owned here and not used again.
            destroy_graph(driver, graph)
        });
    }
}

fn destroy_graph(
    driver: &super::super::result::Driver,
    graph: RawGraph,
) -> Result<(), DriverError> {
    if graph.is_null() {
        return Ok(());
    }
    // SAFETY: the caller owns `graph` and does not use it again.
    unsafe { driver.graph_destroy(graph) }
}

impl Stream {
    /// Records the work `record` queues on this stream into a graph instead of running it.
    /// Nothing runs until the graph is launched. While recording, this thread must not
    /// allocate, free or synchronise (the runtime refuses, and the capture fails).
    pub fn capture(&mut self, record: impl FnOnce(&Stream) -> Result<()>) -> Result<Graph> {
        let device = self.device().clone();
        if let Some(missing) = device.missing_graph_entry_point() {
            return Err(Error::Unsupported(format!(
                "graph capture: the {} runtime lacks {missing}",
                device.vendor()
            )));
        }
        let stream = self.raw();
        // SAFETY: the stream is live and, being borrowed mutably, not capturing already.
        device.run(|driver| unsafe { driver.stream_begin_capture(stream) })?;
        let open = OpenCapture {
            device: &device,
            stream,
        };
        let recorded = record(self);
        std::mem::forget(open);

        // SAFETY: the capture was begun above, on this thread.
        let (graph, ended) =
            device.run(|driver| Ok(unsafe { driver.stream_end_capture(stream) }))?;
        // The closure's own error explains more than the capture it invalidated.
        if let Err(e) = recorded.and(device.check(ended)) {
            let _ = device.run(|driver| destroy_graph(driver, graph));
            return Err(e);
        }
        let exec = device.run(|driver| {
            // SAFETY: `graph` is live; the executable copy does not need it afterwards.
            let exec = unsafe { driver.graph_instantiate(graph) };
            destroy_graph(driver, graph)?;
            exec
        })?;
        Ok(Graph { device, exec })
    }
}

impl Graph {
    /// Queues one replay of the recorded work on `stream`; returns without waiting.
    ///
    /// # Safety
    /// Every buffer, module and function the recorded work used must still be alive, and
    /// the recorded kernel launches must still meet [`super::module::Function::launch`]'s
    /// contract.
    pub unsafe fn launch(&self, stream: &Stream) -> Result<()> {
        if !self.device.same_device(stream.device()) {
            return Err(Error::InvalidArgument(
                "graph launch: the stream belongs to another device".into(),
            ));
        }
        let (exec, raw) = (self.exec, stream.raw());
        // SAFETY: both live on the same device; the caller keeps the recorded work valid.
        self.device
            .run(|driver| unsafe { driver.graph_launch(exec, raw) })
    }
}

impl Drop for Graph {
    fn drop(&mut self) {
        let exec = self.exec;
        // SAFETY: the handle is not used after this; queued replays still complete.
        let _ = self
            .device
            .run_cleanup(|driver| unsafe { driver.graph_exec_destroy(exec) });
    }
}
