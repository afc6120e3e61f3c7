//! One sequence's block table and the position of the token held in each of its slots.

use super::block_pool::{BlockId, BlockPool};
use super::live_tokens::LiveTokens;
use super::write_plan::{BlockCopy, Placement};

/// Position recorded for a slot that holds no live token of the sequence (a hole left by
/// a removal, or a slot not written yet). It is larger than every position a token may
/// have, so an attention kernel's causal test `key_pos <= query_pos` skips empty slots
/// without a second check.
pub const EMPTY_SLOT: i32 = i32::MAX;

/// Positions `start..end` (llama.cpp's convention: a negative `p0` means from the first
/// position, a negative `p1` to the last).
#[derive(Debug, Clone, Copy)]
pub(super) struct PositionRange {
    start: i32,
    end: i32,
}

impl PositionRange {
    pub fn new(p0: i32, p1: i32) -> Self {
        // EMPTY_SLOT as the exclusive end takes in every position a token can have.
        let end = if p1 < 0 { EMPTY_SLOT } else { p1 };
        PositionRange {
            start: p0.max(0),
            end,
        }
    }

    pub(super) fn holds_token_at(self, position: i32) -> bool {
        position != EMPTY_SLOT && self.start <= position && position < self.end
    }
}

/// The tokens of one sequence, in append order.
///
/// Invariants (kept by the methods below; `KvCache` checks each caller's input first):
/// live positions strictly increase with the logical slot; `block_table` names no block
/// twice and every block in it holds at least one live token; logical slot `len - 1` is
/// live and every slot from `len` on is empty;
/// `block_table.len() == len.div_ceil(block_size)`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SequenceTable {
    block_size: u32,
    /// [n_blocks of this sequence] the blocks in token order.
    block_table: Vec<BlockId>,
    /// [block_table.len() * block_size] the position of the token in each logical slot,
    /// or EMPTY_SLOT.
    slot_positions: Vec<i32>,
    /// Logical slots in use, holes included: the next token goes into logical slot `len`.
    len: usize,
    /// Live tokens: `len` minus the holes.
    n_tokens: usize,
}

impl SequenceTable {
    pub(super) fn new(block_size: u32) -> Self {
        SequenceTable {
            block_size,
            block_table: Vec::new(),
            slot_positions: Vec::new(),
            len: 0,
            n_tokens: 0,
        }
    }

    /// The sequence's blocks in token order: logical slot `i` is offset `i % block_size`
    /// of block `block_table()[i / block_size]`.
    pub fn block_table(&self) -> &[BlockId] {
        &self.block_table
    }

    /// [block_table().len() * block_size] the position of each logical slot's token, or
    /// [`EMPTY_SLOT`]; with `block_table` this is what a paged attention kernel reads.
    pub fn slot_positions(&self) -> &[i32] {
        &self.slot_positions
    }

    /// The live tokens as (position, flat slot), in increasing position.
    pub fn live_tokens(&self) -> LiveTokens<'_> {
        LiveTokens::new(
            &self.block_table,
            &self.slot_positions[..self.len],
            self.block_size,
            self.n_tokens,
        )
    }

    pub fn n_tokens(&self) -> usize {
        self.n_tokens
    }

    pub fn is_empty(&self) -> bool {
        self.n_tokens == 0
    }

    /// The largest position held, or -1 when the sequence is empty.
    pub fn pos_max(&self) -> i32 {
        match self.len.checked_sub(1) {
            Some(last) => self.slot_positions[last],
            None => -1,
        }
    }

    /// Logical slots in use, holes included: the next token goes into this logical slot.
    pub(super) fn n_slots_in_use(&self) -> usize {
        self.len
    }

    /// The block the next token goes into when it is already in the table (the tail
    /// block has room); `None` when the next token needs a new block.
    pub(super) fn tail_block_with_room(&self) -> Option<BlockId> {
        if self.len.is_multiple_of(self.block_size as usize) {
            None
        } else {
            self.block_table.last().copied()
        }
    }

    /// Puts a token at `position` into the next logical slot and returns its flat slot and
    /// how it was placed. Takes a block from the pool when the tail block is full or
    /// absent; when the tail block is shared, swaps in a private block (the caller has
    /// the storage copy the shared one into it, see [`Placement::CopiedTail`]).
    ///
    /// Preconditions (checked by `KvCache::append` before anything changes): `position`
    /// is above `pos_max()` and below EMPTY_SLOT, and the pool holds the blocks needed.
    pub(super) fn push_token(&mut self, position: i32, pool: &mut BlockPool) -> (u32, Placement) {
        let placement = match self.tail_block_with_room() {
            None => {
                self.block_table.push(pool.allocate());
                let n_slots = self.slot_positions.len() + self.block_size as usize;
                self.slot_positions.resize(n_slots, EMPTY_SLOT);
                Placement::NewBlock
            }
            Some(shared) if pool.ref_count(shared) > 1 => {
                // Other sequences read this block's slots: write into a private copy.
                let private = pool.allocate();
                pool.release(shared);
                let tail = self.block_table.len() - 1;
                self.block_table[tail] = private;
                Placement::CopiedTail(BlockCopy {
                    src: shared,
                    dst: private,
                })
            }
            Some(_) => Placement::InTail,
        };
        self.slot_positions[self.len] = position;
        self.len += 1;
        self.n_tokens += 1;
        (self.flat_slot(self.len - 1), placement)
    }

    /// Takes back the token the last `push_token` put in, which placed it as `placement`,
    /// and returns the table and the pool to their state before that push: the slot is
    /// empty again, a block taken for the token goes back to the end of the free list
    /// (where `allocate` took it from, so undoing pushes in reverse order restores the
    /// free list's order), and a copy-on-write swap is reverted (the shared block is back
    /// in the table with its reference, the private copy is free).
    ///
    /// Precondition: nothing else changed this table or those blocks since that push
    /// (`KvCache::undo_append` checks the slot; the pool asserts the reference counts).
    pub(super) fn pop_token(&mut self, placement: Placement, pool: &mut BlockPool) {
        // Every slot at or after `len` is empty, so emptying the slot restores it.
        self.len -= 1;
        self.n_tokens -= 1;
        self.slot_positions[self.len] = EMPTY_SLOT;
        match placement {
            Placement::InTail => {}
            Placement::NewBlock => {
                if let Some(block) = self.block_table.pop() {
                    pool.undo_allocate(block);
                }
                self.slot_positions
                    .truncate(self.block_table.len() * self.block_size as usize);
            }
            Placement::CopiedTail(copy) => {
                pool.retain(copy.src);
                let tail = self.block_table.len() - 1;
                self.block_table[tail] = copy.src;
                pool.undo_allocate(copy.dst);
            }
        }
    }

    /// The flat slot of the last logical slot in use, or `None` when there is none.
    pub(super) fn last_slot(&self) -> Option<u32> {
        self.len.checked_sub(1).map(|last| self.flat_slot(last))
    }

    /// The flat slot (`block * block_size + offset`) of a logical slot in the table.
    fn flat_slot(&self, logical_slot: usize) -> u32 {
        let block_size = self.block_size as usize;
        self.block_table[logical_slot / block_size]
            .slot(self.block_size, (logical_slot % block_size) as u32)
    }

    /// Removes the tokens whose positions lie in `range`; the other tokens keep their
    /// positions and slots. Blocks left without a live token go back to the pool (a
    /// shared block loses this sequence's reference).
    pub(super) fn remove(&mut self, range: PositionRange, pool: &mut BlockPool) {
        for position in &mut self.slot_positions[..self.len] {
            if range.holds_token_at(*position) {
                *position = EMPTY_SLOT;
                self.n_tokens -= 1;
            }
        }
        self.drop_blocks_without_tokens(pool);
    }

    /// Empties the slots of the live tokens at positions up to `floor` and returns the
    /// largest of those positions (`None` when there was none). Live positions increase
    /// with the logical slot, so the walk stops at the first token it keeps: a pruned
    /// table costs a walk over its leading holes only. The emptied tokens are a prefix,
    /// so only leading blocks can be left without a token; they go back to the pool
    /// (a shared one loses this sequence's reference).
    pub(super) fn prune_through(&mut self, floor: i32, pool: &mut BlockPool) -> Option<i32> {
        let mut pruned = None;
        for position in &mut self.slot_positions[..self.len] {
            if *position == EMPTY_SLOT {
                continue;
            }
            if *position > floor {
                break;
            }
            pruned = Some(*position);
            *position = EMPTY_SLOT;
            self.n_tokens -= 1;
        }
        let block_size = self.block_size as usize;
        let n_empty = self
            .slot_positions
            .chunks(block_size)
            .take_while(|slots| slots.iter().all(|&p| p == EMPTY_SLOT))
            .count();
        if n_empty > 0 {
            for block in self.block_table.drain(..n_empty) {
                pool.release(block);
            }
            self.slot_positions.drain(..n_empty * block_size);
            self.len = self.len.saturating_sub(n_empty * block_size);
        }
        pruned
    }

    /// The largest live position at or below `limit`, if any.
    pub(super) fn last_position_through(&self, limit: i32) -> Option<i32> {
        self.live_tokens()
            .map(|t| t.position)
            .take_while(|&p| p <= limit)
            .last()
    }

    /// Adds `delta` to the position of every live token in `range`. The caller checked
    /// that the new positions keep the invariants (`KvCache::tokens_to_shift`).
    pub(super) fn shift(&mut self, range: PositionRange, delta: i32) {
        for position in &mut self.slot_positions[..self.len] {
            if range.holds_token_at(*position) {
                *position += delta;
            }
        }
    }

    /// Makes `dst` (which holds no blocks) share every block of `self` that holds a token in `range`; in
    /// `dst`'s view the other slots of those blocks are empty. Copies no K/V: a later
    /// write into a shared block copies it then (see `push_token`).
    pub(super) fn share_into(
        &self,
        dst: &mut SequenceTable,
        range: PositionRange,
        pool: &mut BlockPool,
    ) {
        assert!(
            dst.block_table.is_empty(),
            "KV cache: sharing blocks into a sequence that holds blocks"
        );
        let block_size = self.block_size as usize;
        for (&block, positions) in self
            .block_table
            .iter()
            .zip(self.slot_positions.chunks(block_size))
        {
            if !positions.iter().any(|&p| range.holds_token_at(p)) {
                continue;
            }
            pool.retain(block);
            dst.block_table.push(block);
            dst.slot_positions.extend(positions.iter().map(|&p| {
                if range.holds_token_at(p) {
                    p
                } else {
                    EMPTY_SLOT
                }
            }));
        }
        dst.n_tokens = dst
            .slot_positions
            .iter()
            .filter(|&&p| p != EMPTY_SLOT)
            .count();
        dst.trim_trailing_holes();
    }

    /// Returns blocks without a live token to the pool, keeping the others in order.
    fn drop_blocks_without_tokens(&mut self, pool: &mut BlockPool) {
        let block_size = self.block_size as usize;
        let mut n_kept = 0;
        for index in 0..self.block_table.len() {
            let slots = index * block_size..(index + 1) * block_size;
            if self.slot_positions[slots.clone()]
                .iter()
                .all(|&p| p == EMPTY_SLOT)
            {
                pool.release(self.block_table[index]);
                continue;
            }
            if n_kept != index {
                self.block_table[n_kept] = self.block_table[index];
                self.slot_positions.copy_within(slots, n_kept * block_size);
            }
            n_kept += 1;
        }
        self.block_table.truncate(n_kept);
        self.slot_positions.truncate(n_kept * block_size);
        self.trim_trailing_holes();
    }

    /// Ends `len` after the last live token, so that after a rollback the next token
    /// reuses the freed slots of the tail block rather than leaving them as holes.
    fn trim_trailing_holes(&mut self) {
        self.len = self
            .slot_positions
            .iter()
            .rposition(|&p| p != EMPTY_SLOT)
            .map_or(0, |last| last + 1);
    }
}
