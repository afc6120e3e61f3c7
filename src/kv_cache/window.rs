//! The cache of a model's sliding-window layers (Gemma 3's local layers), kept apart from
//! the cache of its other layers as llama.cpp keeps its SWA cache
//! (`llama_kv_cache_iswa`): a token at position `p` attends to positions
//! `(p - window, p]` only, so the cache need not hold what no later token of a sequence
//! sees. After each step it drops ("prunes") every position more than `window + margin`
//! behind the sequence's last, and so holds at most `window + margin` tokens a sequence
//! however long the sequence grows. The margin (the context's batch size) is what a
//! rollback may take back: after removing up to `margin` positions from a sequence's end,
//! decoding goes on as before (llama.cpp's SWA cache, `n_swa + n_ubatch` cells, retains
//! about as much).
//!
//! The bookkeeping beside the blocks is one number a sequence, `pruned_max`: the largest
//! position the full cache holds for the sequence whose K/V this cache dropped (-1: none).
//! The window cache holds exactly the full cache's tokens above it. That is kept true by
//! every operation: pruning drops a prefix; removals and copies apply to both caches
//! alike; a shift moves both caches' positions, and `pruned_max` with them. A token at
//! position `p` (a decoded one, or the last one whose logits are recomputed) is computed
//! only when `pruned_max <= p - window`, that is when no key inside its window was
//! dropped; otherwise the step is refused (`InvalidArgument`, nothing changed). That
//! happens only after a rollback of more than `margin` positions (or a shift that brings
//! dropped positions back into the window): the sequence must then be cleared and decoded
//! again, never attended with keys missing.

use super::cache::KvCache;
use super::sequence_table::{PositionRange, SequenceTable};
use crate::error::{Error, Result};
use crate::host_memory::filled_vec;

/// The window layers' bookkeeping: a [`KvCache`] of their own blocks, and per sequence
/// the largest position they dropped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WindowCache {
    pub(super) cache: KvCache,
    /// Each token sees the last `window` positions, its own included.
    window: i64,
    /// Positions kept behind a sequence's last after a step: `window + margin`.
    kept: i64,
    /// [n_seq_max] the largest position of the sequence (as the full cache holds it)
    /// whose K/V this cache dropped, or -1.
    pruned_max: Vec<i32>,
}

impl WindowCache {
    /// Bookkeeping for `n_blocks` blocks of `block_size` token slots shared by sequences
    /// `0..n_seq_max`, for layers whose tokens see the last `window` positions, keeping
    /// `margin` positions more for rollbacks.
    pub fn new(
        n_blocks: usize,
        block_size: usize,
        n_seq_max: usize,
        window: usize,
        margin: usize,
    ) -> Result<WindowCache> {
        if window == 0 {
            return Err(Error::InvalidArgument(
                "a sliding window of 0 positions".into(),
            ));
        }
        let window = i64::try_from(window).unwrap_or(i64::MAX);
        Ok(WindowCache {
            cache: KvCache::new(n_blocks, block_size, n_seq_max)?,
            window,
            kept: window.saturating_add(i64::try_from(margin).unwrap_or(i64::MAX)),
            pruned_max: filled_vec(n_seq_max, -1, "the window cache's sequences")?,
        })
    }

    /// The blocks and tables of the window layers.
    pub fn cache(&self) -> &KvCache {
        &self.cache
    }

    /// The largest position of `seq` whose window-layer K/V was dropped, or -1.
    pub fn pruned_max(&self, seq: i32) -> Result<i32> {
        Ok(self.pruned_max[self.cache.seq_index(seq)?])
    }

    /// `Ok` when a token of sequence `seq` (its index `index`) at `position` would see
    /// every key of its window: none of the positions it sees was dropped.
    pub(super) fn check_sees(&self, index: usize, seq: i32, position: i32) -> Result<()> {
        let pruned_max = self.pruned_max[index];
        // -1 (nothing dropped) passes whatever the position.
        if pruned_max < 0 || i64::from(pruned_max) <= i64::from(position) - self.window {
            return Ok(());
        }
        Err(Error::InvalidArgument(format!(
            "sequence {seq}'s sliding-window layers no longer hold the keys of positions up \
             to {pruned_max}, which a token at position {position} sees (window {}): clear \
             the sequence and decode it again",
            self.window
        )))
    }

    /// Drops the tokens of sequence `index` more than `window + margin` positions behind
    /// its last: every position up to `pos_max - window - margin`, which neither a later
    /// token, nor the last one computed again (`Context::recompute_last_logits`), nor
    /// either after a rollback of up to `margin` positions, can see.
    pub(super) fn prune(&mut self, index: usize) {
        let table = &mut self.cache.sequences[index];
        let floor = i64::from(table.pos_max()) - self.kept;
        let Ok(floor) = i32::try_from(floor) else {
            return;
        };
        if floor < 0 {
            return;
        }
        if let Some(pruned) = table.prune_through(floor, &mut self.cache.pool) {
            self.pruned_max[index] = self.pruned_max[index].max(pruned);
        }
    }

    /// After positions `range` of sequence `index` were removed from both caches (`full`
    /// is its full table now): when the position `pruned_max` named is gone, the
    /// dropped tokens that remain end at the full cache's last position below it.
    pub(super) fn removed(&mut self, index: usize, range: PositionRange, full: &SequenceTable) {
        let pruned_max = &mut self.pruned_max[index];
        if range.holds_token_at(*pruned_max) {
            *pruned_max = full.last_position_through(*pruned_max).unwrap_or(-1);
        }
    }

    /// After sequence `dst` became a copy of `src`'s positions `range` in both caches
    /// (`full_src` is `src`'s full table): `dst` lacks the tokens of the range that `src`
    /// lacks.
    pub(super) fn copied(
        &mut self,
        src: usize,
        dst: usize,
        range: PositionRange,
        full_src: &SequenceTable,
    ) {
        let src_pruned = self.pruned_max[src];
        self.pruned_max[dst] = full_src
            .live_tokens()
            .map(|t| t.position)
            .take_while(|&p| p <= src_pruned)
            .filter(|&p| range.holds_token_at(p))
            .last()
            .unwrap_or(-1);
    }

    /// After both caches moved sequence `index`'s positions in `range` by `delta`.
    pub(super) fn shifted(&mut self, index: usize, range: PositionRange, delta: i32) {
        let pruned_max = &mut self.pruned_max[index];
        if range.holds_token_at(*pruned_max) {
            // The full cache's shift checked that its tokens' new positions are valid.
            *pruned_max += delta;
        }
    }

    /// Sets what sequence `index` lacks after a load put only the tokens above
    /// `pruned_max` into this cache.
    pub(super) fn loaded(&mut self, index: usize, pruned_max: i32) {
        self.pruned_max[index] = pruned_max;
    }

    /// The most positions a token sees.
    pub(super) fn window(&self) -> i64 {
        self.window
    }

    /// The positions kept behind a sequence's last after a step.
    pub(super) fn kept(&self) -> i64 {
        self.kept
    }
}
