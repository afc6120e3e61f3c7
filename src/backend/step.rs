//! One forward step's inputs, built by the context from the KV cache's bookkeeping. Its
//! buffers are sized once per context (`n_batch` tokens, `n_seq_max` sequences of up to
//! `n_ctx` slots), so a step allocates nothing and a GPU can keep them in device buffers
//! that one copy refreshes. The block tables come once per cache: the full cache's, and
//! the window layers' cache's for a model with sliding-window layers.

use crate::error::{Error, Result};
use crate::host_memory::filled_vec;

/// The position recorded for a slot that holds no live token: larger than any position,
/// so the causal test `key_pos <= query_pos` skips it.
pub const EMPTY_SLOT: i32 = i32::MAX;

pub struct Step {
    pub n_tokens: usize,
    /// [n_batch] token ids.
    pub tokens: Vec<i32>,
    /// [n_batch] positions.
    pub positions: Vec<i32>,
    /// [n_batch] the sequence each token belongs to.
    pub seq_of_token: Vec<u32>,
    /// [n_batch] the tokens that want logits, in batch order; the first `n_outputs` count.
    pub output_tokens: Vec<u32>,
    pub n_outputs: usize,
    /// Where the full cache holds the step's sequences: what every layer reads, or with a
    /// window cache what the global layers read.
    pub full: StepTables,
    /// Where the window layers' cache holds them, when the context has one.
    pub window: Option<StepTables>,
}

/// One cache's part of a step: where the step's tokens go and where each sequence's
/// tokens are.
pub struct StepTables {
    /// Token slots per KV block.
    pub block_size: usize,
    /// Most blocks one sequence can hold (all of the cache's).
    pub max_blocks: usize,
    /// [n_batch] the flat slot (`block * block_size + offset`) receiving each token's K/V.
    pub write_slots: Vec<u32>,
    /// [n_seq_max, max_blocks] each sequence's blocks in token order.
    pub block_tables: Vec<u32>,
    /// [n_seq_max, max_blocks * block_size] the position held in each logical slot of a
    /// sequence, or [`EMPTY_SLOT`]. Live positions increase with the logical slot.
    pub slot_positions: Vec<i32>,
    /// [n_seq_max] logical slots in use per sequence (holes included). Only the sequences
    /// of this step's tokens are current.
    pub n_logical: Vec<u32>,
    /// KV block copies `(src, dst)` to perform before any write (copy-on-write); at most
    /// one per sequence.
    pub block_copies: Vec<(u32, u32)>,
}

impl Step {
    /// Inputs of steps of up to `n_batch` tokens over `n_seq_max` sequences of a cache of
    /// `n_slots` slots, and of a window cache of `window_slots` slots where there is one.
    pub fn new(
        n_batch: usize,
        n_seq_max: usize,
        n_slots: usize,
        block_size: usize,
        window_slots: Option<usize>,
    ) -> Result<Step> {
        let what = "a step's inputs";
        Ok(Step {
            n_tokens: 0,
            tokens: filled_vec(n_batch, 0, what)?,
            positions: filled_vec(n_batch, 0, what)?,
            seq_of_token: filled_vec(n_batch, 0, what)?,
            output_tokens: filled_vec(n_batch, 0, what)?,
            n_outputs: 0,
            full: StepTables::new(n_batch, n_seq_max, n_slots, block_size)?,
            window: window_slots
                .map(|slots| StepTables::new(n_batch, n_seq_max, slots, block_size))
                .transpose()?,
        })
    }

    /// The tables of the window cache when `window_layer` and there is one, else the
    /// full cache's.
    pub fn tables(&self, window_layer: bool) -> &StepTables {
        match &self.window {
            Some(window) if window_layer => window,
            _ => &self.full,
        }
    }

    /// The `(position, flat slot)` in `tables` of every cached token that token `t` may
    /// attend to (its sequence's, at or before its position, and with a sliding `window`
    /// the last `window` positions only), in increasing position.
    pub fn visible_slots<'a>(
        &'a self,
        tables: &'a StepTables,
        t: usize,
        window: Option<usize>,
    ) -> VisibleSlots<'a> {
        let seq = self.seq_of_token[t] as usize;
        let max_slots = tables.max_blocks * tables.block_size;
        let n_logical = tables.n_logical[seq] as usize;
        let blocks = seq * tables.max_blocks..(seq + 1) * tables.max_blocks;
        VisibleSlots {
            block_table: &tables.block_tables[blocks],
            slot_positions: &tables.slot_positions[seq * max_slots..seq * max_slots + n_logical],
            block_size: tables.block_size,
            query_pos: self.positions[t],
            oldest_pos: window.map_or(i64::MIN, |w| {
                i64::from(self.positions[t]) - i64::try_from(w).unwrap_or(i64::MAX) + 1
            }),
            next: 0,
        }
    }
}

impl StepTables {
    /// Tables of `n_seq_max` sequences over a cache of `n_slots` slots, for steps of up
    /// to `n_batch` tokens.
    pub fn new(
        n_batch: usize,
        n_seq_max: usize,
        n_slots: usize,
        block_size: usize,
    ) -> Result<StepTables> {
        let max_blocks = n_slots.div_ceil(block_size);
        let table_len = n_seq_max
            .checked_mul(max_blocks)
            .and_then(|n| n.checked_mul(block_size))
            .ok_or_else(|| Error::OutOfMemory("the step's block tables overflow".into()))?;
        let what = "a step's block tables";
        let mut block_copies = Vec::new();
        crate::host_memory::reserve(&mut block_copies, n_seq_max, what)?;
        Ok(StepTables {
            block_size,
            max_blocks,
            write_slots: filled_vec(n_batch, 0, what)?,
            block_tables: filled_vec(table_len / block_size, 0, what)?,
            slot_positions: filled_vec(table_len, EMPTY_SLOT, what)?,
            n_logical: filled_vec(n_seq_max, 0, what)?,
            block_copies,
        })
    }

    /// Sets sequence `seq`'s block table and slot positions (`slot_positions` covers the
    /// logical slots in use).
    pub fn set_sequence(
        &mut self,
        seq: usize,
        blocks: impl ExactSizeIterator<Item = u32>,
        slot_positions: &[i32],
    ) {
        let table = &mut self.block_tables[seq * self.max_blocks..(seq + 1) * self.max_blocks];
        for (dst, block) in table.iter_mut().zip(blocks) {
            *dst = block;
        }
        let max_slots = self.max_blocks * self.block_size;
        self.slot_positions[seq * max_slots..seq * max_slots + slot_positions.len()]
            .copy_from_slice(slot_positions);
        self.n_logical[seq] = slot_positions.len() as u32;
    }

    /// Copies the first `n` write slots, the tables of the sequences in `seqs` and the
    /// block copies from `from`, whose sizes match.
    pub fn copy_from(&mut self, from: &StepTables, n: usize, seqs: &[u32]) {
        self.write_slots[..n].copy_from_slice(&from.write_slots[..n]);
        let max_slots = self.max_blocks * self.block_size;
        for &seq in seqs {
            let seq = seq as usize;
            let n_logical = from.n_logical[seq] as usize;
            let first = seq * self.max_blocks;
            let tables = first..first + n_logical.div_ceil(self.block_size);
            self.block_tables[tables.clone()].copy_from_slice(&from.block_tables[tables]);
            let slots = seq * max_slots..seq * max_slots + n_logical;
            self.slot_positions[slots.clone()].copy_from_slice(&from.slot_positions[slots]);
            self.n_logical[seq] = from.n_logical[seq];
        }
        self.block_copies.clear();
        self.block_copies.extend_from_slice(&from.block_copies);
    }
}

/// Walks a sequence's logical slots through its block table; see [`Step::visible_slots`].
#[derive(Clone)]
pub struct VisibleSlots<'a> {
    block_table: &'a [u32],
    slot_positions: &'a [i32],
    block_size: usize,
    query_pos: i32,
    /// The oldest position a sliding window lets the query see.
    oldest_pos: i64,
    next: usize,
}

impl Iterator for VisibleSlots<'_> {
    type Item = (i32, usize);

    fn next(&mut self) -> Option<(i32, usize)> {
        while let Some(&pos) = self.slot_positions.get(self.next) {
            let logical = self.next;
            self.next += 1;
            if pos == EMPTY_SLOT || i64::from(pos) < self.oldest_pos {
                continue;
            }
            if pos > self.query_pos {
                // Live positions increase with the logical slot: none further is visible.
                self.next = self.slot_positions.len();
                return None;
            }
            let block = self.block_table[logical / self.block_size] as usize;
            return Some((pos, block * self.block_size + logical % self.block_size));
        }
        None
    }
}
