//! A context's parameters, and the sizes of the caches and buffers they ask for.

use super::{KV_BLOCK_SIZE, MAX_CONTEXT_SLOTS};
use crate::backend::cpu::MAX_THREADS;
use crate::backend::{ContextSizes, KvType, WindowSizes};
use crate::error::{Error, Result};
use crate::kv_cache::MAX_SEQUENCES;
use crate::model::{ModelConfig, SlidingWindow};

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ContextParams {
    /// Token slots across all sequences; 0 = min(training context, 4096). Rounded up to
    /// whole KV blocks of [`KV_BLOCK_SIZE`] slots.
    pub n_ctx: usize,
    pub n_seq_max: usize,
    /// Most tokens one `decode` may take; at most `n_ctx`.
    pub n_batch: usize,
    pub n_threads: usize,
    /// How the KV cache stores K and V.
    pub kv_type: KvType,
    /// For a model with sliding-window layers, keep every position for those layers too,
    /// in the one cache of the other layers (llama.cpp's `swa_full`): their K/V then
    /// takes as much memory as the others', and any rollback or removal works. Off, they
    /// keep only what their window sees (see [`crate::kv_cache::WindowCache`]).
    pub swa_full: bool,
}

impl Default for ContextParams {
    fn default() -> ContextParams {
        ContextParams {
            n_ctx: 0,
            n_seq_max: 1,
            n_batch: 512,
            n_threads: std::thread::available_parallelism().map_or(1, |n| n.get()),
            kv_type: KvType::F16,
            swa_full: false,
        }
    }
}

impl ContextParams {
    /// The parameters a context of a model trained on `n_ctx_train` positions uses:
    /// `n_ctx` 0 replaced by min(`n_ctx_train`, 4096) and rounded up to whole KV blocks,
    /// `n_batch` capped at `n_ctx`; every value checked.
    pub fn resolved(&self, n_ctx_train: usize) -> Result<ContextParams> {
        let mut params = self.clone();
        if params.n_ctx == 0 {
            params.n_ctx = n_ctx_train.min(4096);
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
        params.n_ctx = params
            .n_ctx
            .div_ceil(KV_BLOCK_SIZE)
            .checked_mul(KV_BLOCK_SIZE)
            .filter(|&slots| slots <= MAX_CONTEXT_SLOTS)
            .ok_or_else(|| {
                Error::InvalidArgument(format!(
                    "n_ctx is {}, expected at most {MAX_CONTEXT_SLOTS}",
                    params.n_ctx
                ))
            })?;
        params.n_batch = params.n_batch.min(params.n_ctx);
        Ok(params)
    }

    /// The K/V storage's token slots for resolved parameters: one block past the pool's,
    /// for `Context::recompute_last_logits`.
    pub fn n_slots(&self) -> usize {
        self.n_ctx + KV_BLOCK_SIZE
    }

    /// What the backend of a context of these (resolved) parameters for a model of
    /// `config` holds: the slots, a spare sequence table
    /// ([`Context::recompute_last_logits`](super::Context::recompute_last_logits) uses
    /// it), the batch, and the window layers' cache where there is one.
    pub fn backend_sizes(&self, config: &ModelConfig) -> ContextSizes {
        ContextSizes {
            n_slots: self.n_slots(),
            block_size: KV_BLOCK_SIZE,
            n_seq: self.n_seq_max + 1,
            n_batch: self.n_batch,
            kv_type: self.kv_type,
            window: self
                .window_cache(config)
                .map(|(window, n_blocks)| WindowSizes {
                    // One block past the pool's, as for the full cache.
                    n_slots: (n_blocks + 1) * KV_BLOCK_SIZE,
                    global_every: window.global_every,
                }),
        }
    }

    /// The window layers' cache of a context of these (resolved) parameters for a model
    /// of `config`: their window and the cache's blocks; `None` for a model without
    /// window layers or with `swa_full`. The cache keeps `n_batch` positions beyond the
    /// window (see [`crate::kv_cache::WindowCache`]), so a rollback of up to a batch goes
    /// on.
    ///
    /// The blocks are what the sequences hold at once at most. After a step a sequence
    /// holds the tokens of its last `window + n_batch` positions, which start anywhere in
    /// a block: at most `(window + n_batch + block - 1).div_ceil(block)` blocks. A step
    /// adds to each sequence it appends `n_s` tokens to at most `n_s.div_ceil(block)`
    /// blocks, so the batch at most `n_batch.div_ceil(block)` plus one for each of its
    /// sequences. (A removal from the middle of a window leaves holes that take room
    /// until the window passes them; an append that finds no room is `ContextFull`.)
    /// Never more than the full cache's blocks: the window cache holds a part of the full
    /// cache's tokens.
    pub fn window_cache<'c>(&self, config: &'c ModelConfig) -> Option<(&'c SlidingWindow, usize)> {
        let window = config.sliding_window.as_ref().filter(|_| !self.swa_full)?;
        let b = KV_BLOCK_SIZE;
        let kept = window.window.saturating_add(self.n_batch);
        let per_sequence = kept.saturating_add(b - 1).div_ceil(b);
        let batch = self.n_batch.div_ceil(b) + self.n_seq_max.min(self.n_batch);
        let n_blocks = self
            .n_seq_max
            .saturating_mul(per_sequence)
            .saturating_add(batch)
            .min(self.n_ctx / b);
        Some((window, n_blocks))
    }
}
