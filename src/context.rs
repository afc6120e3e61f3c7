//! A context: one model's KV cache, working memory and compute resources for one or more
//! sequences, and the decode step that ties them together.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use crate::backend::cpu::{CpuMatmul, MAX_THREADS};
use crate::error::{Error, Result};
use crate::host_memory::filled_vec;
use crate::kv_cache::{KvCache, KvWritePlan, MAX_SEQUENCES, PoolStats};
use crate::model::Model;
use crate::model::llama::{BatchToken, KvStorage, Scratch, forward};

/// Token slots per KV block: small enough that a short sequence wastes little, large
/// enough that block tables stay short.
pub const KV_BLOCK_SIZE: usize = 16;

/// The most token slots a context holds: positions are `i32`, and a larger cache could
/// not be addressed by them.
pub const MAX_CONTEXT_SLOTS: usize = i32::MAX as usize + 1 - KV_BLOCK_SIZE;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ContextParams {
    /// Token slots across all sequences; 0 = min(training context, 4096). Rounded up to
    /// whole KV blocks of [`KV_BLOCK_SIZE`] slots.
    pub n_ctx: usize,
    pub n_seq_max: usize,
    /// Most tokens one `decode` may take; at most `n_ctx`.
    pub n_batch: usize,
    pub n_threads: usize,
}

impl Default for ContextParams {
    fn default() -> ContextParams {
        ContextParams {
            n_ctx: 0,
            n_seq_max: 1,
            n_batch: 512,
            n_threads: std::thread::available_parallelism().map_or(1, |n| n.get()),
        }
    }
}

/// Tokens to decode together. `None` fields take their defaults: each token at the next
/// position of its sequence, sequence 0, logits for the last token only.
#[derive(Clone, Copy, Debug, Default)]
pub struct Batch<'a> {
    pub tokens: &'a [i32],
    pub positions: Option<&'a [i32]>,
    pub seq_ids: Option<&'a [i32]>,
    pub want_logits: Option<&'a [bool]>,
}

/// Occupancy and size of a context's memory.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MemoryReport {
    pub kv: PoolStats,
    pub host_bytes: u64,
}

pub struct Context {
    model: Arc<Model>,
    params: ContextParams,
    cache: KvCache,
    storage: KvStorage,
    scratch: Scratch,
    matmul: CpuMatmul,
    plan: KvWritePlan,
    /// [n_ctx] the token whose K and V each slot holds.
    slot_tokens: Vec<i32>,
    /// Per sequence id: its cached `(position, slot)` entries, refreshed each decode.
    seq_entries: Vec<Vec<(i32, usize)>>,
    n_outputs: usize,
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
        let mut params = params.clone();
        if params.n_ctx == 0 {
            params.n_ctx = config.n_ctx_train.min(4096);
        }
        if !(1..=MAX_THREADS).contains(&params.n_threads) {
            return Err(Error::InvalidArgument(format!(
                "n_threads is {}, expected 1 to {MAX_THREADS}",
                params.n_threads
            )));
        }
        if !(1..=MAX_SEQUENCES).contains(&params.n_seq_max) {
            return Err(Error::InvalidArgument(format!(
                "n_seq_max is {}, expected 1 to {MAX_SEQUENCES}",
                params.n_seq_max
            )));
        }
        if params.n_batch == 0 {
            return Err(Error::InvalidArgument("n_batch must be positive".into()));
        }
        let n_blocks = params.n_ctx.div_ceil(KV_BLOCK_SIZE);
        params.n_ctx = n_blocks
            .checked_mul(KV_BLOCK_SIZE)
            .filter(|&slots| slots <= MAX_CONTEXT_SLOTS)
            .ok_or_else(|| {
                Error::InvalidArgument(format!(
                    "n_ctx is {}, expected at most {MAX_CONTEXT_SLOTS}",
                    params.n_ctx
                ))
            })?;
        params.n_batch = params.n_batch.min(params.n_ctx);
        // One block past the pool's: `recompute_last_logits` writes there.
        let storage = KvStorage::new(config, params.n_ctx + KV_BLOCK_SIZE)?;
        let scratch = Scratch::new(config, params.n_batch)?;
        let cache = KvCache::new(n_blocks, KV_BLOCK_SIZE, params.n_seq_max)?;
        Ok(Context {
            slot_tokens: filled_vec(params.n_ctx, 0, "the KV cache's token ids")?,
            storage,
            scratch,
            matmul: CpuMatmul::new(params.n_threads)?,
            cache,
            plan: KvWritePlan::new(),
            seq_entries: filled_vec(params.n_seq_max, Vec::new(), "sequence tables")?,
            n_outputs: 0,
            cancel: Arc::new(AtomicBool::new(false)),
            model,
            params,
        })
    }

    pub fn model(&self) -> &Arc<Model> {
        &self.model
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
        self.n_outputs = 0;
        self.try_decode(batch)
    }

    fn try_decode(&mut self, batch: &Batch<'_>) -> Result<()> {
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
            ("want_logits", batch.want_logits.map(<[_]>::len)),
        ] {
            if len.is_some_and(|len| len != n) {
                return Err(Error::InvalidArgument(format!(
                    "{name} must have {n} entries"
                )));
            }
        }
        let seq_ids: Vec<i32> = batch.seq_ids.map_or_else(|| vec![0; n], <[_]>::to_vec);
        let positions = match batch.positions {
            Some(p) => p.to_vec(),
            None => self.next_positions(&seq_ids)?,
        };

        let saved = self.cache.clone();
        self.cache
            .append_batch(&seq_ids, &positions, &mut self.plan)?;
        let kv_dim = self.model.config().kv_dim();
        for copy in self.plan.block_copies() {
            let (src, dst) = (copy.src.index(), copy.dst.index());
            self.storage.copy_slots(
                src * KV_BLOCK_SIZE,
                dst * KV_BLOCK_SIZE,
                KV_BLOCK_SIZE,
                kv_dim,
            );
            self.slot_tokens.copy_within(
                src * KV_BLOCK_SIZE..(src + 1) * KV_BLOCK_SIZE,
                dst * KV_BLOCK_SIZE,
            );
        }
        let result = self.run_forward(batch, &seq_ids, &positions);
        if result.is_err() {
            self.cache = saved;
            return result;
        }
        for (&slot, &token) in self.plan.slots().iter().zip(batch.tokens) {
            self.slot_tokens[slot as usize] = token;
        }
        Ok(())
    }

    /// Each token at the position after the last one its sequence holds.
    fn next_positions(&self, seq_ids: &[i32]) -> Result<Vec<i32>> {
        let mut next: Vec<Option<i32>> = vec![None; self.params.n_seq_max];
        seq_ids
            .iter()
            .map(|&seq| {
                let index = self.seq_index(seq)?;
                let pos = match next[index] {
                    Some(p) => p,
                    None => self.cache.pos_max(seq)? + 1,
                };
                next[index] = Some(pos + 1);
                Ok(pos)
            })
            .collect()
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

    fn run_forward(&mut self, batch: &Batch<'_>, seq_ids: &[i32], positions: &[i32]) -> Result<()> {
        let n = batch.tokens.len();
        for &seq in seq_ids {
            let index = self.seq_index(seq)?;
            let entries = &mut self.seq_entries[index];
            entries.clear();
            entries.extend(
                self.cache
                    .sequence(seq)?
                    .live_tokens()
                    .map(|t| (t.position, t.slot as usize)),
            );
        }
        let mut tokens = Vec::with_capacity(n);
        for t in 0..n {
            let wants_logits = match batch.want_logits {
                Some(w) => w[t],
                None => t == n - 1,
            };
            tokens.push(BatchToken {
                token: batch.tokens[t],
                pos: positions[t],
                slot: self.plan.slots()[t] as usize,
                context: &self.seq_entries[self.seq_index(seq_ids[t])?],
                wants_logits,
            });
        }
        let model = &self.model;
        forward(
            model.config(),
            model.weights(),
            &self.matmul,
            &mut self.storage,
            &mut self.scratch,
            &tokens,
            &self.cancel,
        )?;
        self.n_outputs = tokens.iter().filter(|t| t.wants_logits).count();
        Ok(())
    }

    /// Logits of the `output_index`-th batch token that asked for them (-1: the last).
    pub fn logits(&self, output_index: i32) -> Result<&[f32]> {
        let n_vocab = self.model.config().n_vocab;
        let index = match output_index {
            -1 => self.n_outputs.checked_sub(1),
            i => usize::try_from(i).ok().filter(|&i| i < self.n_outputs),
        };
        let index = index.ok_or_else(|| {
            Error::InvalidArgument(format!(
                "output {output_index} does not exist: the last decode produced {} logit rows",
                self.n_outputs
            ))
        })?;
        Ok(&self.scratch.logits[index * n_vocab..(index + 1) * n_vocab])
    }

    /// Removes positions `p0..p1` (`p1 < 0`: to the end) of a sequence.
    pub fn seq_remove(&mut self, seq: i32, p0: i32, p1: i32) -> Result<()> {
        self.cache.remove(seq, p0, p1)
    }

    /// Makes `dst` share `src`'s cached positions `p0..p1`; no K/V is copied.
    pub fn seq_copy(&mut self, src: i32, dst: i32, p0: i32, p1: i32) -> Result<()> {
        self.cache.copy_seq(src, dst, p0, p1)
    }

    /// The highest position a sequence holds, or -1 when it is empty.
    pub fn seq_pos_max(&self, seq: i32) -> Result<i32> {
        self.cache.pos_max(seq)
    }

    /// Recomputes the logits of a sequence's last token, as if it had just been decoded,
    /// so that generation can continue the sequence after other sequences' decodes. The
    /// cache is not changed: the token's K and V are written to a slot outside the pool.
    pub fn recompute_last_logits(&mut self, seq: i32) -> Result<()> {
        self.n_outputs = 0;
        let index = self.seq_index(seq)?;
        let scratch_slot = self.params.n_ctx;
        let entries = &mut self.seq_entries[index];
        entries.clear();
        entries.extend(
            self.cache
                .sequence(seq)?
                .live_tokens()
                .map(|t| (t.position, t.slot as usize)),
        );
        let Some(last) = entries.last_mut() else {
            return Err(Error::InvalidArgument(format!(
                "sequence {seq} holds no tokens"
            )));
        };
        let (pos, slot) = *last;
        last.1 = scratch_slot;
        let token = BatchToken {
            token: self.slot_tokens[slot],
            pos,
            slot: scratch_slot,
            context: &self.seq_entries[index],
            wants_logits: true,
        };
        let model = &self.model;
        forward(
            model.config(),
            model.weights(),
            &self.matmul,
            &mut self.storage,
            &mut self.scratch,
            &[token],
            &self.cancel,
        )?;
        self.n_outputs = 1;
        Ok(())
    }

    pub fn memory(&self) -> MemoryReport {
        // The storage holds one block more than the pool: recompute_last_logits' slot.
        let bytes_per_block = self.storage.bytes() / (self.cache.pool().blocks_total() as u64 + 1);
        MemoryReport {
            kv: self.cache.pool().stats(bytes_per_block),
            host_bytes: self.storage.bytes() + self.scratch.bytes(),
        }
    }
}
