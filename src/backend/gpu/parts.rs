//! One context's state over the GPUs a model is split across: a [`GpuBackend`] for each.
//! Under a layer split, each holds a contiguous share of the layers, in layer order (one
//! share, all layers, for a model on one GPU); a step runs the shares one after the other,
//! each in its own stream (and decode graph), and between two the GPU of the later layers
//! waits for the earlier one's work and copies the residual stream over. Under a tensor
//! split, each runs every layer with its own heads and FFN slice, all at once, and their
//! kernels add up their partial results through each other's memory. The last share
//! computes the logits, and the step ends when its argmax is back on the host.

use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::thread;

use super::backend::{GpuBackend, GpuStep};
use super::graph_step::GraphStats;
use super::ops::{GpuOps, PeerExchange};
use crate::backend::{BackendMemory, KvRowSlots, Step};
use crate::error::{Error, Result};

pub struct GpuParts {
    /// Never empty.
    shares: Vec<GpuBackend>,
    split: Split,
}

/// How the shares divide the model.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Split {
    Layers,
    Tensors,
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
            Some(_) => Ok(GpuParts {
                shares,
                split: Split::Layers,
            }),
        }
    }

    /// The devices of a tensor split, each running every layer with its part of the
    /// heads and FFN, the last one computing the logits; joined here for their sums.
    pub fn tensor_split(mut shares: Vec<GpuBackend>) -> Result<GpuParts> {
        let n = shares.len();
        if n == 0 {
            return Err(Error::InvalidArgument("a tensor split of no shares".into()));
        }
        for (i, share) in shares.iter().enumerate() {
            let whole = share.layers().start == 0 && share.computes_logits() == (i + 1 == n);
            if !whole || share.layers() != shares[0].layers() {
                return Err(Error::InvalidArgument(format!(
                    "share {i} of a tensor split runs layers {:?}, logits {}: each runs \
                     every layer, the last alone computes the logits",
                    share.layers(),
                    share.computes_logits()
                )));
            }
        }
        let capacity = shares
            .iter()
            .map(GpuBackend::largest_sum)
            .max()
            .unwrap_or(0);
        let streams: Vec<_> = shares.iter().map(GpuBackend::stream).collect();
        let exchanges = PeerExchange::group(&streams, capacity)?;
        for (share, exchange) in shares.iter_mut().zip(exchanges) {
            share.join_sums(exchange);
        }
        Ok(GpuParts {
            shares,
            split: Split::Tensors,
        })
    }

    pub fn shares(&self) -> &[GpuBackend] {
        &self.shares
    }

    /// Takes the step's inputs into every share; see [`GpuBackend::begin_step`].
    pub fn begin_step(&mut self, step: &Step) -> Result<()> {
        self.shares.iter_mut().try_for_each(|s| s.begin_step(step))
    }

    /// Runs the step through every share: `forward(i, step)` queues share `i`'s part of
    /// the forward pass with the kernels `model_ops[i]` (see [`GpuBackend::queue_step`]).
    /// Returns once the last share's argmax is on the host.
    pub(crate) fn run_step(
        &mut self,
        model_ops: &[Arc<GpuOps>],
        cancel: &AtomicBool,
        forward: impl Fn(usize, &mut GpuStep<'_>) -> Result<()> + Sync,
    ) -> Result<()> {
        if model_ops.len() != self.shares.len() {
            return Err(Error::InvalidArgument(
                "a context's GPU state runs only the model it was made for".into(),
            ));
        }
        let queued = match self.split {
            Split::Layers => self.queue_layers(model_ops, cancel, &forward),
            Split::Tensors => self.queue_tensors(model_ops, cancel, &forward),
        };
        match queued {
            // The last share's argmax copy waits for its own stream. The other streams
            // are waited for too, so no share's next step can overwrite what a copy or a
            // sum still reads; the last one's only once (a wait costs about 2 µs even
            // when there is nothing left to wait for).
            Ok(()) => {
                self.last_mut().finish_step()?;
                let others = &self.shares[..self.shares.len() - 1];
                others.iter().try_for_each(GpuBackend::synchronize)
            }
            Err(err) => {
                self.abandon_step();
                Err(err)
            }
        }
    }

    /// Queues each share in turn, each after the residual stream of the one before.
    fn queue_layers(
        &mut self,
        model_ops: &[Arc<GpuOps>],
        cancel: &AtomicBool,
        forward: &(impl Fn(usize, &mut GpuStep<'_>) -> Result<()> + Sync),
    ) -> Result<()> {
        model_ops.iter().enumerate().try_for_each(|(i, ops)| {
            let (earlier, rest) = self.shares.split_at_mut(i);
            let share = &mut rest[0];
            if let Some(previous) = earlier.last() {
                share.take_residual(previous)?;
            }
            share.queue_step(ops, cancel, |step| forward(i, step))
        })
    }

    /// Queues every share at once, each on a thread of its own (the last on this one): a
    /// share's sums wait on the device for the others' parts, so no share's queueing may
    /// wait for another's (a stream whose queue filled up while its sums wait would).
    /// Returns the first failure.
    fn queue_tensors(
        &mut self,
        model_ops: &[Arc<GpuOps>],
        cancel: &AtomicBool,
        forward: &(impl Fn(usize, &mut GpuStep<'_>) -> Result<()> + Sync),
    ) -> Result<()> {
        let Some((last, others)) = self.shares.split_last_mut() else {
            return Ok(());
        };
        let n = model_ops.len(); // the shares' count (`run_step`)
        let results: Vec<Result<()>> = thread::scope(|scope| {
            let queueing: Vec<_> = (others.iter_mut().zip(model_ops).enumerate())
                .map(|(i, (share, ops))| {
                    scope.spawn(move || share.queue_step(ops, cancel, |step| forward(i, step)))
                })
                .collect();
            let last = last.queue_step(&model_ops[n - 1], cancel, |step| forward(n - 1, step));
            (queueing.into_iter())
                .map(|thread| {
                    thread.join().unwrap_or_else(|_| {
                        Err(Error::Device(
                            "a tensor split share's queueing panicked".into(),
                        ))
                    })
                })
                .chain([last])
                .collect()
        });
        results.into_iter().collect()
    }

    /// The cleanup of a failed step, where the first error is already known: lets every
    /// share's sums stop waiting for shares that never queued theirs, waits for every
    /// stream as far as each device still answers (a later share of a layer split may
    /// have queued its copy of an earlier share's residual stream before the failure),
    /// then starts the sums' counts again together.
    fn abandon_step(&mut self) {
        self.shares.iter().for_each(GpuBackend::abort_sums);
        self.synchronize_all();
        for share in &mut self.shares {
            let _ = share.clear_sums();
        }
        self.synchronize_all();
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
        self.whole_kv_rows()?;
        self.shares
            .iter_mut()
            .try_for_each(|s| s.read_kv_rows(slots, out))
    }

    /// Every share's rows from `rows`; see [`GpuBackend::write_kv_rows`].
    pub fn write_kv_rows(&mut self, slots: &KvRowSlots<'_>, rows: &[u8]) -> Result<()> {
        self.whole_kv_rows()?;
        self.shares
            .iter_mut()
            .try_for_each(|s| s.write_kv_rows(slots, rows))
    }

    /// Fails for a tensor split, whose shares hold each row's heads apart: its K/V rows
    /// are not read or written as a whole (sequence states are saved and loaded from
    /// contexts on one GPU, a layer split or the CPU).
    fn whole_kv_rows(&self) -> Result<()> {
        match self.split {
            Split::Layers => Ok(()),
            Split::Tensors => Err(Error::Unsupported(
                "reading or writing a tensor split context's K/V rows (sequence states)".into(),
            )),
        }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_split_of_no_shares_is_refused() {
        for parts in [
            GpuParts::new(Vec::new()),
            GpuParts::tensor_split(Vec::new()),
        ] {
            let message = parts.err().map(|e| e.to_string()).unwrap_or_default();
            assert!(message.contains("no shares"), "{message}");
        }
    }
}
