//! A context's KV bookkeeping: the full cache, which every layer reads, or, for a model
//! with sliding-window layers, the full cache of its global layers beside the
//! [`WindowCache`] of its window layers. Every sequence operation is applied to both, so
//! that the two stay one sequence seen through two windows; see `window.rs` for what the
//! window cache drops and when a step is refused for it.

use super::cache::KvCache;
use super::live_tokens::TokenSlot;
use super::sequence_table::PositionRange;
use super::window::WindowCache;
use super::write_plan::KvWritePlan;
use crate::error::{Error, Result};

/// The full cache, and the window layers' cache when the model has window layers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KvCaches {
    full: KvCache,
    window: Option<WindowCache>,
}

/// What an append asks of each cache's storage.
#[derive(Debug, Default)]
pub struct KvWritePlans {
    pub full: KvWritePlan,
    /// Empty when there is no window cache.
    pub window: KvWritePlan,
}

/// The tokens a shift moves, in each cache.
#[derive(Debug)]
pub struct ShiftTokens {
    pub full: Vec<TokenSlot>,
    /// Empty when there is no window cache.
    pub window: Vec<TokenSlot>,
}

impl KvCaches {
    /// Both caches must track the same sequences.
    pub fn new(full: KvCache, window: Option<WindowCache>) -> Result<KvCaches> {
        if let Some(w) = &window
            && w.cache.n_seq_max() != full.n_seq_max()
        {
            return Err(Error::InvalidArgument(format!(
                "a window cache of {} sequences beside a full cache of {}",
                w.cache.n_seq_max(),
                full.n_seq_max()
            )));
        }
        Ok(KvCaches { full, window })
    }

    /// The cache of every position: the tokens, positions and slots of the global layers
    /// (of every layer when there is no window cache).
    pub fn full(&self) -> &KvCache {
        &self.full
    }

    pub fn window(&self) -> Option<&WindowCache> {
        self.window.as_ref()
    }

    /// The largest position in sequence `seq`, or -1 when it is empty.
    pub fn pos_max(&self, seq: i32) -> Result<i32> {
        self.full.pos_max(seq)
    }

    /// Appends token `i` to sequence `seq_ids[i]` at `positions[i]` in both caches (see
    /// [`KvCache::append_batch`]), all or nothing: refused when a token would see a
    /// position the window cache dropped, or when either cache lacks room, with both
    /// caches unchanged and both plans empty.
    pub fn append_batch(
        &mut self,
        seq_ids: &[i32],
        positions: &[i32],
        plans: &mut KvWritePlans,
    ) -> Result<()> {
        plans.window.clear();
        if let Some(window) = &self.window {
            // Positions increase within a sequence, so each sequence's first token of the
            // batch sees the most; every later one passes when it does.
            for (&seq, &position) in seq_ids.iter().zip(positions) {
                let index = self.full.seq_index(seq)?;
                if let Err(e) = window.check_sees(index, seq, position) {
                    plans.full.clear();
                    return Err(e);
                }
            }
        }
        self.full
            .append_batch(seq_ids, positions, &mut plans.full)?;
        if let Some(window) = &mut self.window
            && let Err(e) = window
                .cache
                .append_batch(seq_ids, positions, &mut plans.window)
        {
            self.full.undo_append(&mut plans.full);
            return Err(e);
        }
        Ok(())
    }

    /// Undoes the append that filled `plans` in both caches (see
    /// [`KvCache::undo_append`]).
    pub fn undo_append(&mut self, plans: &mut KvWritePlans) {
        if let Some(window) = &mut self.window {
            window.cache.undo_append(&mut plans.window);
        }
        self.full.undo_append(&mut plans.full);
    }

    /// Drops from the window cache what the sequences `seq_ids` no longer need, after a
    /// step that appended to them ran; their ids were checked by the append.
    pub fn prune(&mut self, seq_ids: &[i32]) {
        if let Some(window) = &mut self.window {
            for &seq in seq_ids {
                if let Ok(index) = window.cache.seq_index(seq) {
                    window.prune(index);
                }
            }
        }
    }

    /// `Ok` when the last token of `seq` can be computed again: its window is whole.
    pub fn check_last_token_sees(&self, seq: i32) -> Result<()> {
        let index = self.full.seq_index(seq)?;
        match &self.window {
            Some(window) => window.check_sees(index, seq, self.full.pos_max(seq)?),
            None => Ok(()),
        }
    }

    /// Removes positions `p0..p1` of `seq` from both caches (see [`KvCache::remove`]).
    pub fn remove(&mut self, seq: i32, p0: i32, p1: i32) -> Result<()> {
        self.full.remove(seq, p0, p1)?;
        if let Some(window) = &mut self.window {
            window.cache.remove(seq, p0, p1)?;
            let index = self.full.seq_index(seq)?;
            let full_table = &self.full.sequences[index];
            window.removed(index, PositionRange::new(p0, p1), full_table);
        }
        Ok(())
    }

    /// Makes `dst` a copy of `src`'s positions `p0..p1` in both caches (see
    /// [`KvCache::copy_seq`]).
    pub fn copy_seq(&mut self, src: i32, dst: i32, p0: i32, p1: i32) -> Result<()> {
        self.full.copy_seq(src, dst, p0, p1)?;
        if let Some(window) = &mut self.window {
            window.cache.copy_seq(src, dst, p0, p1)?;
            let (src, dst) = (self.full.seq_index(src)?, self.full.seq_index(dst)?);
            if src != dst {
                let full_src = &self.full.sequences[src];
                window.copied(src, dst, PositionRange::new(p0, p1), full_src);
            }
        }
        Ok(())
    }

    /// The tokens of `seq` at `p0..p1` that [`shift`](Self::shift) would move by `delta`
    /// in each cache, after checking that both may (see [`KvCache::tokens_to_shift`]).
    /// Changes nothing.
    pub fn tokens_to_shift(&self, seq: i32, p0: i32, p1: i32, delta: i32) -> Result<ShiftTokens> {
        let full = self.full.tokens_to_shift(seq, p0, p1, delta)?;
        let window = match &self.window {
            Some(window) => window.cache.tokens_to_shift(seq, p0, p1, delta)?,
            None => Vec::new(),
        };
        Ok(ShiftTokens { full, window })
    }

    /// Moves `seq`'s positions `p0..p1` by `delta` in both caches, which
    /// [`tokens_to_shift`](Self::tokens_to_shift) approved; then drops what the window
    /// cache no longer needs (a shift up moves the window past some tokens).
    pub fn shift(&mut self, seq: i32, p0: i32, p1: i32, delta: i32) -> Result<()> {
        self.full.shift(seq, p0, p1, delta)?;
        if let Some(window) = &mut self.window {
            window.cache.shift(seq, p0, p1, delta)?;
            let index = self.full.seq_index(seq)?;
            window.shifted(index, PositionRange::new(p0, p1), delta);
            window.prune(index);
        }
        Ok(())
    }

    /// Replaces `seq`'s contents with tokens at `positions` (strictly increasing) whose
    /// window-layer K/V is known for the last `n_window_rows` only, and fills `plans`
    /// with the slots to write: every token in the full cache, and in the window cache
    /// those of them a step would keep (see [`WindowCache`]). Returns the index of the
    /// first token placed in the window cache (`positions.len()` when there is none).
    /// Refused, with nothing changed, when the last token's window reaches a token
    /// without window K/V (`InvalidArgument`) or when either cache has no room
    /// (`ContextFull`).
    pub fn load(
        &mut self,
        seq: i32,
        positions: &[i32],
        n_window_rows: usize,
        plans: &mut KvWritePlans,
    ) -> Result<usize> {
        plans.full.clear();
        plans.window.clear();
        let n = positions.len();
        let first_window = match (&self.window, positions.last()) {
            (Some(window), Some(&last)) => {
                let oldest_seen = i64::from(last) - window.window() + 1;
                let oldest_kept = i64::from(last) - window.kept() + 1;
                let kept = positions.partition_point(|&p| i64::from(p) < oldest_kept);
                let first = kept.max(n.saturating_sub(n_window_rows));
                if let Some(&before) = first.checked_sub(1).and_then(|i| positions.get(i))
                    && i64::from(before) >= oldest_seen
                {
                    return Err(Error::InvalidArgument(format!(
                        "the state holds the sliding-window layers' K/V of its last \
                         {n_window_rows} tokens, and its last token (position {last}) sees \
                         position {before} before them"
                    )));
                }
                first
            }
            _ => n,
        };
        room_for(&self.full, seq, n)?;
        if let Some(window) = &self.window {
            room_for(&window.cache, seq, n - first_window)?;
        }
        self.remove(seq, -1, -1)?;
        // Into empty sequences, with room counted: neither append can fail.
        self.full.append(seq, positions, &mut plans.full)?;
        if let Some(window) = &mut self.window {
            let index = self.full.seq_index(seq)?;
            let before = first_window.checked_sub(1).map_or(-1, |i| positions[i]);
            window
                .cache
                .append(seq, &positions[first_window..], &mut plans.window)?;
            window.loaded(index, before);
        }
        Ok(first_window)
    }
}

/// `Ok` when `cache` has room for `n` tokens in sequence `seq` once the blocks it holds
/// alone are freed.
fn room_for(cache: &KvCache, seq: i32, n: usize) -> Result<()> {
    let table = cache.sequence(seq)?;
    let pool = cache.pool();
    let reclaimed = table
        .block_table()
        .iter()
        .filter(|&&block| pool.ref_count(block) == 1)
        .count();
    let room = pool.blocks_free() + reclaimed;
    let needed = n.div_ceil(pool.block_size());
    if needed > room {
        return Err(Error::ContextFull(format!(
            "a saved state of {n} tokens needs {needed} KV blocks, sequence {seq} can have {room}"
        )));
    }
    Ok(())
}
