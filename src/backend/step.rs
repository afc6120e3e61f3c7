//! One forward step's inputs, built by the context from the KV cache's bookkeeping. Its
//! buffers are sized once per context (`n_batch` tokens, `n_seq_max` sequences of up to
//! `n_ctx` slots), so a step allocates nothing and a GPU can keep them in device buffers
//! that one copy refreshes.

use crate::error::{Error, Result};
use crate::host_memory::filled_vec;

/// The position recorded for a slot that holds no live token: larger than any position,
/// so the causal test `key_pos <= query_pos` skips it.
pub const EMPTY_SLOT: i32 = i32::MAX;

pub struct Step {
    /// Token slots per KV block.
    pub block_size: usize,
    /// Most blocks one sequence can hold (all of them).
    pub max_blocks: usize,
    pub n_tokens: usize,
    /// [n_batch] token ids.
    pub tokens: Vec<i32>,
    /// [n_batch] positions.
    pub positions: Vec<i32>,
    /// [n_batch] the flat slot (`block * block_size + offset`) receiving each token's K/V.
    pub write_slots: Vec<u32>,
    /// [n_batch] the sequence each token belongs to.
    pub seq_of_token: Vec<u32>,
    /// [n_seq_max, max_blocks] each sequence's blocks in token order.
    pub block_tables: Vec<u32>,
    /// [n_seq_max, max_blocks * block_size] the position held in each logical slot of a
    /// sequence, or [`EMPTY_SLOT`]. Live positions increase with the logical slot.
    pub slot_positions: Vec<i32>,
    /// [n_seq_max] logical slots in use per sequence (holes included). Only the sequences
    /// of this step's tokens are current.
    pub n_logical: Vec<u32>,
    /// [n_batch] the tokens that want logits, in batch order; the first `n_outputs` count.
    pub output_tokens: Vec<u32>,
    pub n_outputs: usize,
    /// KV block copies `(src, dst)` to perform before any write (copy-on-write); at most
    /// one per sequence.
    pub block_copies: Vec<(u32, u32)>,
}

impl Step {
    pub fn new(
        n_batch: usize,
        n_seq_max: usize,
        n_slots: usize,
        block_size: usize,
    ) -> Result<Step> {
        let max_blocks = n_slots.div_ceil(block_size);
        let table_len = n_seq_max
            .checked_mul(max_blocks)
            .and_then(|n| n.checked_mul(block_size))
            .ok_or_else(|| Error::OutOfMemory("the step's block tables overflow".into()))?;
        let what = "a step's inputs";
        let mut block_copies = Vec::new();
        crate::host_memory::reserve(&mut block_copies, n_seq_max, what)?;
        Ok(Step {
            block_size,
            max_blocks,
            n_tokens: 0,
            tokens: filled_vec(n_batch, 0, what)?,
            positions: filled_vec(n_batch, 0, what)?,
            write_slots: filled_vec(n_batch, 0, what)?,
            seq_of_token: filled_vec(n_batch, 0, what)?,
            block_tables: filled_vec(table_len / block_size, 0, what)?,
            slot_positions: filled_vec(table_len, EMPTY_SLOT, what)?,
            n_logical: filled_vec(n_seq_max, 0, what)?,
            output_tokens: filled_vec(n_batch, 0, what)?,
            n_outputs: 0,
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

    /// The `(position, flat slot)` of every cached token that token `t` may attend to
    /// (its sequence's, at or before its position, and with a sliding `window` the last
    /// `window` positions only), in increasing position.
    pub fn visible_slots(&self, t: usize, window: Option<usize>) -> VisibleSlots<'_> {
        let seq = self.seq_of_token[t] as usize;
        let max_slots = self.max_blocks * self.block_size;
        let n_logical = self.n_logical[seq] as usize;
        VisibleSlots {
            block_table: &self.block_tables[seq * self.max_blocks..(seq + 1) * self.max_blocks],
            slot_positions: &self.slot_positions[seq * max_slots..seq * max_slots + n_logical],
            block_size: self.block_size,
            query_pos: self.positions[t],
            oldest_pos: window.map_or(i64::MIN, |w| {
                i64::from(self.positions[t]) - i64::try_from(w).unwrap_or(i64::MAX) + 1
            }),
            next: 0,
        }
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
