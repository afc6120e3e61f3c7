//! A context: one model's KV cache, working memory and compute resources for one or more
//! sequences, and the decode step that ties them together.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

mod embeddings;
mod params;
mod sequences;

pub use embeddings::Pooling;
pub use params::ContextParams;

use crate::backend::{BackendState, ContextSizes, Step, StepTables};
use crate::error::{Error, Result};
use crate::host_memory::filled_vec;
use crate::kv_cache::{KvCache, KvCaches, KvWritePlan, KvWritePlans, PoolStats, WindowCache};
use crate::model::Model;
use crate::sampler::Sampler;

/// Token slots per KV block: small enough that a short sequence wastes little, large
/// enough that block tables stay short.
pub const KV_BLOCK_SIZE: usize = 16;

/// The most token slots a context holds: positions are `i32`, and a larger cache could
/// not be addressed by them.
pub const MAX_CONTEXT_SLOTS: usize = i32::MAX as usize + 1 - KV_BLOCK_SIZE;

/// Tokens to decode together. `None` fields take their defaults: each token at the next
/// position of its sequence, sequence 0; logits for the last token only by default.
#[derive(Clone, Copy, Debug, Default)]
pub struct Batch<'a> {
    pub tokens: &'a [i32],
    pub positions: Option<&'a [i32]>,
    pub seq_ids: Option<&'a [i32]>,
    pub want_logits: WantLogits<'a>,
}

/// Which tokens of a batch produce logits.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum WantLogits<'a> {
    /// The last token only.
    #[default]
    Last,
    /// Every token.
    All,
    /// The tokens whose flag is not 0, one flag per token (the C ABI's array, taken as
    /// it is).
    Flags(&'a [u8]),
}

impl WantLogits<'_> {
    /// Whether token `t` of a batch of `n` wants logits.
    fn wants(self, t: usize, n: usize) -> bool {
        match self {
            WantLogits::Last => t + 1 == n,
            WantLogits::All => true,
            WantLogits::Flags(flags) => flags[t] != 0,
        }
    }

    /// How many entries it holds: only `Flags` has one per token, to be checked.
    fn n_flags(self) -> Option<usize> {
        match self {
            WantLogits::Flags(flags) => Some(flags.len()),
            WantLogits::Last | WantLogits::All => None,
        }
    }
}

/// Occupancy and size of a context's memory.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MemoryReport {
    /// The cache of every position: every layer's, or with a window cache the global
    /// layers'.
    pub kv: PoolStats,
    /// The sliding-window layers' cache, where the context has one.
    pub kv_window: Option<PoolStats>,
    pub host_bytes: u64,
    pub device_bytes: u64,
}

pub struct Context {
    model: Arc<Model>,
    params: ContextParams,
    /// What the backend holds: which layers read the window cache.
    sizes: ContextSizes,
    caches: KvCaches,
    plans: KvWritePlans,
    /// The inputs of the next step, built here from the caches' bookkeeping. Sequence row
    /// `n_seq_max` is spare: `recompute_last_logits` puts a redirected table there.
    step: Step,
    backend: BackendState,
    /// [n_ctx] the token whose K and V each slot of the full cache holds.
    slot_tokens: Vec<i32>,
    /// [n_batch] the sequence ids of a batch that gives none.
    default_seq_ids: Vec<i32>,
    /// [n_seq_max] scratch for the next position of each sequence in a batch.
    next_position: Vec<Option<i32>>,
    cancel: Arc<AtomicBool>,
}

impl Context {
    /// A context for `model`. Every size is checked before anything is allocated, and the
    /// allocations are fallible: a size the machine cannot hold is `OutOfMemory` with the
    /// bytes asked for. `n_ctx` is rounded up to whole KV blocks and `n_batch` is capped
    /// at `n_ctx` (a batch never holds more tokens than the cache); [`Context::params`]
    /// gives the values in use.
    pub fn new(model: Arc<Model>, params: &ContextParams) -> Result<Context> {
        let config = model.config();
        let params = params.resolved(config.n_ctx_train)?;
        let (n_batch, n_seq_max) = (params.n_batch, params.n_seq_max);
        let sizes = params.backend_sizes(config);
        let window = match params.window_cache(config) {
            Some((window, n_blocks)) => Some(WindowCache::new(
                n_blocks,
                KV_BLOCK_SIZE,
                n_seq_max,
                window.window,
                n_batch,
            )?),
            None => None,
        };
        let full = KvCache::new(params.n_ctx / KV_BLOCK_SIZE, KV_BLOCK_SIZE, n_seq_max)?;
        let window_slots = sizes.window.map(|w| w.n_slots);
        let backend = model.new_backend(&sizes, params.n_threads)?;
        Ok(Context {
            step: Step::new(
                n_batch,
                n_seq_max + 1,
                sizes.n_slots,
                KV_BLOCK_SIZE,
                window_slots,
            )?,
            backend,
            caches: KvCaches::new(full, window)?,
            plans: KvWritePlans::default(),
            sizes,
            slot_tokens: filled_vec(params.n_ctx, 0, "the KV cache's token ids")?,
            default_seq_ids: filled_vec(params.n_batch, 0, "a batch's sequence ids")?,
            next_position: filled_vec(params.n_seq_max, None, "a batch's positions")?,
            cancel: Arc::new(AtomicBool::new(false)),
            model,
            params,
        })
    }

    pub fn model(&self) -> &Arc<Model> {
        &self.model
    }

    /// On a GPU, what multiplies prefill batches (the vendor BLAS or the library's own
    /// kernels, and why); `None` on the CPU.
    pub fn prefill_products(&self) -> Option<&str> {
        self.backend.prefill_products()
    }

    pub fn params(&self) -> &ContextParams {
        &self.params
    }

    /// A flag that, once set, stops every decode at its next layer boundary (and
    /// [`generate`](crate::generate::generate) between tokens) until it is cleared. The
    /// context never clears it itself, so a request is not lost when it lands as a step
    /// ends; the owner clears it when a new call starts (see `ffi::context`).
    pub fn cancel_flag(&self) -> Arc<AtomicBool> {
        Arc::clone(&self.cancel)
    }

    /// `Err(Cancelled)` when a cancel has been requested.
    pub fn check_cancelled(&self) -> Result<()> {
        if self.cancel.load(Ordering::Relaxed) {
            return Err(Error::Cancelled);
        }
        Ok(())
    }

    /// Runs the batch through the model. On `ContextFull`, `Cancelled` or any other error
    /// the KV cache is exactly as before the call.
    pub fn decode(&mut self, batch: &Batch<'_>) -> Result<()> {
        self.step.n_outputs = 0;
        let n = batch.tokens.len();
        if n == 0 || n > self.params.n_batch {
            return Err(Error::InvalidArgument(format!(
                "a batch holds 1 to {} tokens, got {n}",
                self.params.n_batch
            )));
        }
        for (name, len) in [
            ("positions", batch.positions.map(<[_]>::len)),
            ("seq_ids", batch.seq_ids.map(<[_]>::len)),
            ("want_logits", batch.want_logits.n_flags()),
        ] {
            if len.is_some_and(|len| len != n) {
                return Err(Error::InvalidArgument(format!(
                    "{name} must have {n} entries"
                )));
            }
        }
        // Moved out while the batch is read, so the step can be filled beside it.
        let default_seq_ids = std::mem::take(&mut self.default_seq_ids);
        let seq_ids = batch.seq_ids.unwrap_or(&default_seq_ids[..n]);
        let result = self.decode_sequences(batch, seq_ids);
        self.default_seq_ids = default_seq_ids;
        result
    }

    fn decode_sequences(&mut self, batch: &Batch<'_>, seq_ids: &[i32]) -> Result<()> {
        let n = batch.tokens.len();
        for (t, &seq) in seq_ids.iter().enumerate() {
            self.step.seq_of_token[t] = self.seq_index(seq)? as u32;
        }
        match batch.positions {
            Some(p) => self.step.positions[..n].copy_from_slice(p),
            None => self.next_positions(seq_ids)?,
        }
        self.step.n_tokens = n;
        self.step.tokens[..n].copy_from_slice(batch.tokens);

        self.caches
            .append_batch(seq_ids, &self.step.positions[..n], &mut self.plans)?;
        // A failed step takes its append back exactly: no snapshot of the bookkeeping.
        let result = self
            .fill_step_tables(batch, seq_ids)
            .and_then(|()| self.run_step());
        if result.is_err() {
            self.caches.undo_append(&mut self.plans);
            self.step.n_outputs = 0;
            return result;
        }
        self.caches.prune(seq_ids);
        // A block copied for copy-on-write took its K/V with it; its tokens' ids follow.
        for copy in self.plans.full.block_copies() {
            let (src, dst) = (
                copy.src.index() * KV_BLOCK_SIZE,
                copy.dst.index() * KV_BLOCK_SIZE,
            );
            self.slot_tokens.copy_within(src..src + KV_BLOCK_SIZE, dst);
        }
        for (&slot, &token) in self.plans.full.slots().iter().zip(batch.tokens) {
            self.slot_tokens[slot as usize] = token;
        }
        Ok(())
    }

    /// Each token at the position after the last one its sequence holds.
    fn next_positions(&mut self, seq_ids: &[i32]) -> Result<()> {
        let mut result = Ok(());
        for (t, &seq) in seq_ids.iter().enumerate() {
            let index = self.step.seq_of_token[t] as usize;
            let pos = match self.next_position[index] {
                Some(p) => p,
                None => match self.caches.pos_max(seq) {
                    Ok(p) => p + 1,
                    Err(e) => {
                        result = Err(e);
                        break;
                    }
                },
            };
            self.step.positions[t] = pos;
            self.next_position[index] = Some(pos.saturating_add(1));
        }
        for t in 0..seq_ids.len() {
            self.next_position[self.step.seq_of_token[t] as usize] = None;
        }
        result
    }

    /// The write slots, block copies, block tables and logit rows of the appended batch.
    fn fill_step_tables(&mut self, batch: &Batch<'_>, seq_ids: &[i32]) -> Result<()> {
        let n = batch.tokens.len();
        let step = &mut self.step;
        let full = self.caches.full();
        fill_tables(
            &mut step.full,
            &self.plans.full,
            full,
            seq_ids,
            &step.seq_of_token,
        )?;
        if let (Some(tables), Some(window)) = (&mut step.window, self.caches.window()) {
            let plan = &self.plans.window;
            fill_tables(tables, plan, window.cache(), seq_ids, &step.seq_of_token)?;
        }
        step.n_outputs = 0;
        for t in 0..n {
            if batch.want_logits.wants(t, n) {
                step.output_tokens[step.n_outputs] = t as u32;
                step.n_outputs += 1;
            }
        }
        Ok(())
    }

    fn run_step(&mut self) -> Result<()> {
        self.backend.begin_step(&self.step)?;
        self.model.forward(&mut self.backend, &self.cancel)
    }

    fn seq_index(&self, seq: i32) -> Result<usize> {
        usize::try_from(seq)
            .ok()
            .filter(|&s| s < self.params.n_seq_max)
            .ok_or_else(|| {
                Error::InvalidArgument(format!(
                    "sequence id {seq} is outside 0..{}",
                    self.params.n_seq_max
                ))
            })
    }

    /// Logits of the `output_index`-th batch token that asked for them (-1: the last).
    pub fn logits(&mut self, output_index: i32) -> Result<&[f32]> {
        let n_vocab = self.model.config().n_vocab;
        let row = self.output_row(output_index)?;
        Ok(&self.backend.logits()?[row * n_vocab..(row + 1) * n_vocab])
    }

    /// Draws a token with `sampler` from the `output_index`-th output's logits (-1: the
    /// last) and accepts it into the sampler's history. A plain greedy sampler takes the
    /// argmax the backend computed beside the logits where it did (a GPU), so the logits
    /// need not leave the device.
    pub fn sample(&mut self, sampler: &mut Sampler, output_index: i32) -> Result<u32> {
        let row = self.output_row(output_index)?;
        if sampler.is_plain_argmax()
            && let Some(argmax) = self.backend.argmax()
        {
            let n_vocab = self.model.config().n_vocab;
            let value = argmax.get(row).copied().unwrap_or(-1);
            let token = u32::try_from(value)
                .ok()
                .filter(|&t| (t as usize) < n_vocab)
                .ok_or_else(|| {
                    Error::Device(format!("the device's argmax of output {row} is {value}"))
                })?;
            sampler.accept(token);
            return Ok(token);
        }
        sampler.sample(self.logits(output_index)?)
    }

    /// The row of the `output_index`-th output (-1: the last) in the step's logits.
    fn output_row(&self, output_index: i32) -> Result<usize> {
        let n_outputs = self.step.n_outputs;
        let index = match output_index {
            -1 => n_outputs.checked_sub(1),
            i => usize::try_from(i).ok().filter(|&i| i < n_outputs),
        };
        index.ok_or_else(|| {
            Error::InvalidArgument(format!(
                "output {output_index} does not exist: the last decode produced {n_outputs} logit rows"
            ))
        })
    }

    pub fn memory(&self) -> MemoryReport {
        let backend = self.backend.memory();
        let config = self.model.config();
        // K and V of a block's slots in each layer that reads the cache.
        let block_bytes = |window: bool| {
            let layers = (0..config.n_layer)
                .filter(|&layer| self.sizes.reads_window(layer) == window)
                .count();
            let row = self.params.kv_type.bytes(config.kv_dim());
            (2 * KV_BLOCK_SIZE * row) as u64 * layers as u64
        };
        MemoryReport {
            kv: self.caches.full().pool().stats(block_bytes(false)),
            kv_window: self
                .caches
                .window()
                .map(|w| w.cache().pool().stats(block_bytes(true))),
            host_bytes: backend.host_bytes,
            device_bytes: backend.device_bytes,
        }
    }
}

/// Fills `tables` with `plan`'s write slots and block copies and the tables `cache` holds
/// for the sequences of the batch (`seq_of_token` gives each token's row).
fn fill_tables(
    tables: &mut StepTables,
    plan: &KvWritePlan,
    cache: &KvCache,
    seq_ids: &[i32],
    seq_of_token: &[u32],
) -> Result<()> {
    for (dst, &slot) in tables.write_slots.iter_mut().zip(plan.slots()) {
        *dst = slot;
    }
    tables.block_copies.clear();
    tables.block_copies.extend(
        plan.block_copies()
            .iter()
            .map(|c| (c.src.index() as u32, c.dst.index() as u32)),
    );
    for (t, &seq) in seq_ids.iter().enumerate() {
        let table = cache.sequence(seq)?;
        tables.set_sequence(
            seq_of_token[t] as usize,
            table.block_table().iter().map(|b| b.index() as u32),
            table.slot_positions(),
        );
    }
    Ok(())
}
