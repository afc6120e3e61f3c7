//! A context: one model's KV cache, working memory and compute resources for one or more
//! sequences, and the decode step that ties them together.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use crate::backend::cpu::CpuMatmul;
use crate::error::{Error, Result};
use crate::kv_cache::{KvCache, KvWritePlan, PoolStats};
use crate::model::Model;
use crate::model::llama::{BatchToken, KvStorage, Scratch, forward};

/// Token slots per KV block: small enough that a short sequence wastes little, large
/// enough that block tables stay short.
pub const KV_BLOCK_SIZE: usize = 16;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ContextParams {
    /// Token slots across all sequences; 0 = min(training context, 4096).
    pub n_ctx: usize,
    pub n_seq_max: usize,
    /// Most tokens one `decode` may take.
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
    /// Per sequence id: its cached `(position, slot)` entries, refreshed each decode.
    seq_entries: Vec<Vec<(i32, usize)>>,
    n_outputs: usize,
    cancel: Arc<AtomicBool>,
}

impl Context {
    pub fn new(model: Arc<Model>, params: &ContextParams) -> Result<Context> {
        let config = model.config();
        let mut params = params.clone();
        if params.n_ctx == 0 {
            params.n_ctx = config.n_ctx_train.min(4096);
        }
        if params.n_batch == 0 || params.n_seq_max == 0 || params.n_threads == 0 {
            return Err(Error::InvalidArgument(format!(
                "n_batch, n_seq_max and n_threads must be positive: {params:?}"
            )));
        }
        let n_blocks = params.n_ctx.div_ceil(KV_BLOCK_SIZE);
        let cache = KvCache::new(n_blocks, KV_BLOCK_SIZE, params.n_seq_max)?;
        Ok(Context {
            storage: KvStorage::new(config, n_blocks * KV_BLOCK_SIZE),
            scratch: Scratch::new(config, params.n_batch),
            matmul: CpuMatmul::new(params.n_threads)?,
            cache,
            plan: KvWritePlan::new(),
            seq_entries: vec![Vec::new(); params.n_seq_max],
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

    /// A flag that stops the running (or next) decode at a layer boundary when set.
    pub fn cancel_flag(&self) -> Arc<AtomicBool> {
        Arc::clone(&self.cancel)
    }

    /// Runs the batch through the model. On `ContextFull`, `Cancelled` or any other error
    /// the KV cache is exactly as before the call.
    pub fn decode(&mut self, batch: &Batch<'_>) -> Result<()> {
        self.n_outputs = 0;
        let result = self.try_decode(batch);
        self.cancel.store(false, Ordering::Relaxed);
        result
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
        }
        let result = self.run_forward(batch, &seq_ids, &positions);
        if result.is_err() {
            self.cache = saved;
        }
        result
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
        let index = if output_index < 0 {
            self.n_outputs.checked_sub(1)
        } else {
            Some(output_index as usize).filter(|&i| i < self.n_outputs)
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

    pub fn memory(&self) -> MemoryReport {
        let bytes_per_block = self.storage.bytes() / self.cache.pool().blocks_total() as u64;
        MemoryReport {
            kv: self.cache.pool().stats(bytes_per_block),
            host_bytes: self.storage.bytes() + self.scratch.bytes(),
        }
    }
}
