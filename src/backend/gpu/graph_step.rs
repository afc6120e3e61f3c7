//! Decode steps as one graph launch. A step of one token that wants its logits launches
//! kernels whose geometry depends only on the context's shapes and reads every input from
//! the context's fixed device buffers, so its forward pass is recorded once and replayed
//! for each later token: one launch instead of a few hundred. The step's input copies
//! before it and the logits copy after it stay outside the graph. Other steps (prefill,
//! batches of several tokens) run kernel by kernel.

use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, Ordering};

use super::safe::{Device, Graph, Stream};
use crate::error::{Error, Result};

/// How a context's steps have run on its GPU so far.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct GraphStats {
    /// Decode steps recorded into a graph (1 unless a graph was dropped).
    pub captured: u64,
    /// Decode steps run as one graph launch (the captured one included).
    pub launched: u64,
    /// Steps run kernel by kernel.
    pub eager: u64,
    /// Why decode steps do not use a graph, when they do not.
    pub off: Option<String>,
}

/// The graph of this context's decode step, recorded on the first one.
pub(super) struct DecodeGraph {
    /// Valid for the context's life: the buffers it reads never move, and the weights it
    /// reads belong to the one model whose kernels the context holds (`GpuBackend::run_step`
    /// checks).
    graph: Option<Graph>,
    stats: GraphStats,
}

/// `ROCMFORGE_GPU_GRAPHS=0` runs every step kernel by kernel, to compare the two; read
/// once per process.
fn allowed_by_environment() -> bool {
    static ALLOWED: OnceLock<bool> = OnceLock::new();
    *ALLOWED.get_or_init(|| std::env::var_os("ROCMFORGE_GPU_GRAPHS").is_none_or(|v| v != "0"))
}

/// Why graphs cannot be used on `device`, if they cannot.
fn unavailable(device: &Device) -> Option<String> {
    if !allowed_by_environment() {
        return Some("turned off by ROCMFORGE_GPU_GRAPHS=0".into());
    }
    device
        .missing_graph_entry_point()
        .map(|missing| format!("the {} runtime lacks {missing}", device.vendor()))
}

impl DecodeGraph {
    pub(super) fn new(device: &Device) -> DecodeGraph {
        DecodeGraph {
            graph: None,
            stats: GraphStats {
                off: unavailable(device),
                ..GraphStats::default()
            },
        }
    }

    /// Turns decode graphs on (where the runtime has them) or off; off drops the graph.
    pub(super) fn set_enabled(&mut self, device: &Device, enabled: bool) {
        self.graph = None;
        self.stats.off = if enabled {
            unavailable(device)
        } else {
            Some("turned off by set_graphs(false)".into())
        };
    }

    pub(super) fn stats(&self) -> GraphStats {
        self.stats.clone()
    }

    /// Runs one step whose inputs are in the device buffers: a decode-shaped step as the
    /// graph (recording it first if there is none yet), any other step by calling
    /// `record` on `stream`, which queues the forward pass's kernels on the stream given.
    pub(super) fn run(
        &mut self,
        stream: &mut Stream,
        decode_shaped: bool,
        cancel: &AtomicBool,
        mut record: impl FnMut(&Stream) -> Result<()>,
    ) -> Result<()> {
        if !decode_shaped || self.stats.off.is_some() {
            self.stats.eager += 1;
            return record(stream);
        }
        // A replay is one launch that cannot stop between layers: a decode step honours a
        // cancel before it starts (prefill checks between layers).
        if cancel.load(Ordering::Relaxed) {
            return Err(Error::Cancelled);
        }
        let graph = match self.graph.take() {
            Some(graph) => graph,
            // Recording queues nothing: a failed capture leaves the step unrun and no graph
            // behind (`Stream::capture` discards a partial one).
            None => match stream.capture(&mut record) {
                Ok(graph) => {
                    self.stats.captured += 1;
                    graph
                }
                Err(Error::Cancelled) => return Err(Error::Cancelled),
                Err(e) => {
                    self.stats.off = Some(format!("the decode step's capture failed: {e}"));
                    self.stats.eager += 1;
                    return record(stream);
                }
            },
        };
        // SAFETY: the graph was recorded by `record` over this context's buffers and the
        // kernels and weights of its model, all alive while the context is and never
        // reallocated (see `graph`); the step is decode-shaped like the recorded one, so
        // every launch's checked sizes still hold, and its inputs were copied into the same
        // buffers the recording read.
        let launched = unsafe { graph.launch(stream) };
        self.graph = Some(graph);
        launched?;
        self.stats.launched += 1;
        Ok(())
    }
}
