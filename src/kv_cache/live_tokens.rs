//! Walking a sequence's live tokens for attention: no allocation, one pass over its slots.

use super::block_pool::BlockId;
use super::sequence_table::EMPTY_SLOT;

/// A live token of a sequence: its position (for RoPE and the causal mask) and the flat
/// slot index (`block * block_size + offset`) where the storage holds its K and V.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TokenSlot {
    pub position: i32,
    pub slot: u32,
}

/// The live tokens of one sequence in increasing position, from
/// [`SequenceTable::live_tokens`](super::SequenceTable::live_tokens).
#[derive(Debug, Clone)]
pub struct LiveTokens<'a> {
    block_table: &'a [BlockId],
    /// The sequence's slot positions up to its last live token.
    slot_positions: &'a [i32],
    block_size: u32,
    next_logical_slot: usize,
    n_remaining: usize,
}

impl<'a> LiveTokens<'a> {
    pub(super) fn new(
        block_table: &'a [BlockId],
        slot_positions: &'a [i32],
        block_size: u32,
        n_tokens: usize,
    ) -> Self {
        LiveTokens {
            block_table,
            slot_positions,
            block_size,
            next_logical_slot: 0,
            n_remaining: n_tokens,
        }
    }
}

impl Iterator for LiveTokens<'_> {
    type Item = TokenSlot;

    fn next(&mut self) -> Option<TokenSlot> {
        let block_size = self.block_size as usize;
        while let Some(&position) = self.slot_positions.get(self.next_logical_slot) {
            let logical_slot = self.next_logical_slot;
            self.next_logical_slot += 1;
            if position == EMPTY_SLOT {
                continue;
            }
            self.n_remaining -= 1;
            let block = self.block_table[logical_slot / block_size];
            let offset = (logical_slot % block_size) as u32;
            return Some(TokenSlot {
                position,
                slot: block.slot(self.block_size, offset),
            });
        }
        None
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (self.n_remaining, Some(self.n_remaining))
    }
}

impl ExactSizeIterator for LiveTokens<'_> {}
