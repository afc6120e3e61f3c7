//! One context's state over the GPUs a model's layers are split across: a [`GpuBackend`]
//! for each GPU's contiguous share of the layers, in layer order (one share, all layers,
//! for a model on one GPU). A step runs the shares one after the other, each in its own
//! stream (and decode graph); between two, the GPU of the later layers waits for the
//! earlier one's work and copies the residual stream over. The last share computes the
//! logits, and the step ends when its argmax is back on the host.

use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use super::backend::{GpuBackend, GpuStep};
use super::graph_step::GraphStats;
use super::ops::GpuOps;
use crate::backend::{BackendMemory, KvRowSlots, Step};
use crate::error::{Error, Result};

pub struct GpuParts {
    /// Never empty; each share's layers follow the previous one's.
    shares: Vec<GpuBackend>,
}

impl GpuParts {
    /// The shares in layer order: the first's layers begin at 0, each next one's where
    /// the previous one's end, the last's at the model's last layer.
    pub fn new(shares: Vec<GpuBackend>) -> Result<GpuParts> {
        let mut next = 0;
        for share in &shares {
            if share.layers().start != next {
                return Err(Error::InvalidArgument(format!(
                    "a share of layers {:?} where layer {next} was expected",
                    share.layers()
                )));
            }
            next = share.layers().end;
        }
        match shares.last() {
            None => Err(Error::InvalidArgument("a GPU state of no shares".into())),
            Some(last) if !last.computes_logits() => Err(Error::InvalidArgument(format!(
                "the last share ends at layer {next}, before the model's last layer"
            ))),
            Some(_) => Ok(GpuParts { shares }),
        }
    }

    pub fn shares(&self) -> &[GpuBackend] {
        &self.shares
    }

    /// Takes the step's inputs into every share; see [`GpuBackend::begin_step`].
    pub fn begin_step(&mut self, step: &Step) -> Result<()> {
        self.shares.iter_mut().try_for_each(|s| s.begin_step(step))
    }

    /// Runs the step through every share in turn: `forward(i, step)` queues share `i`'s
    /// part of the forward pass with the kernels `model_ops[i]` (see
    /// [`GpuBackend::run_step`]). Returns once the last share's argmax is on the host.
    pub(crate) fn run_step(
        &mut self,
        model_ops: &[Arc<GpuOps>],
        cancel: &AtomicBool,
        mut forward: impl FnMut(usize, &mut GpuStep<'_>) -> Result<()>,
    ) -> Result<()> {
        if model_ops.len() != self.shares.len() {
            return Err(Error::InvalidArgument(
                "a context's GPU state runs only the model it was made for".into(),
            ));
        }
        let queued = model_ops.iter().enumerate().try_for_each(|(i, ops)| {
            let (earlier, rest) = self.shares.split_at_mut(i);
            let share = &mut rest[0];
            if let Some(previous) = earlier.last() {
                share.take_residual(previous)?;
            }
            share.run_step(ops, cancel, |step| forward(i, step))
        });
        match queued {
            // The last share's argmax copy waited for its own stream; this also covers a
            // step without outputs, so no share's next step can overwrite what a copy
            // still reads.
            Ok(()) => self.last().synchronize(),
            // A later share may have queued its copy of an earlier share's residual
            // stream before the failure: let it finish before the caller may free either.
            Err(err) => {
                self.synchronize_all();
                Err(err)
            }
        }
    }

    /// Waits for every share's stream, as far as each device still answers: the cleanup
    /// of a failed step or of the state itself, where the first error is already known.
    fn synchronize_all(&self) {
        for share in &self.shares {
            let _ = share.synchronize();
        }
    }

    fn last(&self) -> &GpuBackend {
        // `new` refuses an empty list.
        &self.shares[self.shares.len() - 1]
    }

    fn last_mut(&mut self) -> &mut GpuBackend {
        let last = self.shares.len() - 1;
        &mut self.shares[last]
    }

    /// See [`GpuBackend::logits`].
    pub fn logits(&mut self) -> Result<&[f32]> {
        self.last_mut().logits()
    }

    /// See [`GpuBackend::embeddings`].
    pub fn embeddings(&mut self) -> Result<&[f32]> {
        self.last_mut().embeddings()
    }

    /// See [`GpuBackend::argmax`].
    pub fn argmax(&self) -> &[i32] {
        self.last().argmax()
    }

    /// What multiplies the prefill batches of the first share (every share makes the
    /// same choice on GPUs of one kind).
    pub fn prefill_products(&self) -> &str {
        self.shares[0].prefill_products()
    }

    /// Turns every share's decode graphs on or off; see [`GpuBackend::set_graphs`].
    pub fn set_graphs(&mut self, enabled: bool) {
        self.shares.iter_mut().for_each(|s| s.set_graphs(enabled));
    }

    /// How the shares' steps have run, added up.
    pub fn graph_stats(&self) -> GraphStats {
        self.shares
            .iter()
            .map(GpuBackend::graph_stats)
            .fold(GraphStats::default(), |sum, s| GraphStats {
                captured: sum.captured + s.captured,
                launched: sum.launched + s.launched,
                eager: sum.eager + s.eager,
                off: sum.off.or(s.off),
            })
    }

    /// Every share's rows into `out`; see [`GpuBackend::read_kv_rows`].
    pub fn read_kv_rows(&mut self, slots: &KvRowSlots<'_>, out: &mut [u8]) -> Result<()> {
        self.shares
            .iter_mut()
            .try_for_each(|s| s.read_kv_rows(slots, out))
    }

    /// Every share's rows from `rows`; see [`GpuBackend::write_kv_rows`].
    pub fn write_kv_rows(&mut self, slots: &KvRowSlots<'_>, rows: &[u8]) -> Result<()> {
        self.shares
            .iter_mut()
            .try_for_each(|s| s.write_kv_rows(slots, rows))
    }

    /// What the shares hold, added up.
    pub fn memory(&self) -> BackendMemory {
        self.shares.iter().map(GpuBackend::memory).sum()
    }
}

impl Drop for GpuParts {
    /// A share's stream may still copy from the previous share's buffers (a step left
    /// unfinished by a cancellation or an error), and freeing memory on one GPU does not
    /// wait for another GPU's streams: every share finishes before any is freed.
    fn drop(&mut self) {
        self.synchronize_all();
    }
}
