//! Appending tokens, all or nothing: every token is checked and the free blocks needed are
//! counted before anything changes, so a refused append leaves the cache as it was
//! (`RF_ERR_CONTEXT_FULL`'s promise).

use super::cache::KvCache;
use super::sequence_table::EMPTY_SLOT;
use super::write_plan::{KvWritePlan, PendingAppend, PlacedToken, Placement};
use crate::error::{Error, Result};

impl KvCache {
    /// Appends tokens at `positions` to sequence `seq`; see [`append_batch`](Self::append_batch).
    pub fn append(&mut self, seq: i32, positions: &[i32], plan: &mut KvWritePlan) -> Result<()> {
        self.append_tokens(positions.iter().map(|&position| (seq, position)), plan)
    }

    /// Appends token `i` of a batch to sequence `seq_ids[i]` at `positions[i]`, and fills
    /// `plan` with the slot of each token and the block copies to perform first.
    ///
    /// Within a sequence positions must strictly increase, across calls too (each above
    /// the sequence's [`pos_max`](Self::pos_max)); gaps are allowed. A token that starts
    /// a block takes one from the pool; the first write into a shared block takes a
    /// private copy. When the pool holds too few free blocks this fails with
    /// [`Error::ContextFull`], and on any error nothing changes and `plan` is empty.
    pub fn append_batch(
        &mut self,
        seq_ids: &[i32],
        positions: &[i32],
        plan: &mut KvWritePlan,
    ) -> Result<()> {
        if seq_ids.len() != positions.len() {
            plan.clear();
            return Err(Error::InvalidArgument(format!(
                "batch has {} sequence ids for {} positions",
                seq_ids.len(),
                positions.len()
            )));
        }
        let tokens = seq_ids.iter().copied().zip(positions.iter().copied());
        self.append_tokens(tokens, plan)
    }

    fn append_tokens<I>(&mut self, tokens: I, plan: &mut KvWritePlan) -> Result<()>
    where
        I: Iterator<Item = (i32, i32)> + Clone,
    {
        plan.clear();
        let blocks_needed = self.count_blocks_needed(tokens.clone(), plan)?;
        let blocks_free = self.pool.blocks_free();
        if blocks_needed > blocks_free {
            return Err(Error::ContextFull(format!(
                "appending needs {blocks_needed} free KV blocks of {} tokens, {blocks_free} of {} are free",
                self.pool.block_size(),
                self.pool.blocks_total()
            )));
        }
        for (seq, position) in tokens {
            // `count_blocks_needed` checked every id and position.
            let table = &mut self.sequences[seq as usize];
            let (slot, placement) = table.push_token(position, &mut self.pool);
            if let Placement::CopiedTail(copy) = placement {
                plan.block_copies.push(copy);
            }
            plan.slots.push(slot);
            plan.placed.push(PlacedToken {
                seq_index: seq as usize,
                placement,
            });
        }
        Ok(())
    }

    /// Checks every token (a valid sequence id; a position above the sequence's last and
    /// below EMPTY_SLOT) and counts the free blocks placing them takes, replaying what
    /// `SequenceTable::push_token` will do without changing anything: one block per token
    /// that starts a block, and one per sequence whose first write lands in a shared tail
    /// block, except for the last of that block's holders to write, which by then holds
    /// it alone and writes in place.
    fn count_blocks_needed<I>(&self, tokens: I, plan: &mut KvWritePlan) -> Result<usize>
    where
        I: Iterator<Item = (i32, i32)>,
    {
        plan.pending.resize(self.sequences.len(), None);
        let block_size = self.pool.block_size();
        let mut blocks_needed = 0;
        for (token_index, (seq, position)) in tokens.enumerate() {
            let index = self.seq_index(seq)?;
            let table = &self.sequences[index];
            let pending = plan.pending[index].get_or_insert_with(|| PendingAppend {
                pos_max: table.pos_max(),
                len: table.n_slots_in_use(),
                tail_is_private: false,
            });
            if position <= pending.pos_max || position == EMPTY_SLOT {
                return Err(Error::InvalidArgument(format!(
                    "token {token_index}: position {position} of sequence {seq} must be above \
                     the sequence's last position {} and below {EMPTY_SLOT}",
                    pending.pos_max
                )));
            }
            pending.pos_max = position;
            if pending.len.is_multiple_of(block_size) {
                blocks_needed += 1;
                pending.tail_is_private = true;
            } else if !pending.tail_is_private {
                // The sequence's first write in this append, into its existing tail block.
                pending.tail_is_private = true;
                if let Some(tail) = table.tail_block_with_room() {
                    let writers = match plan.tail_writers.iter_mut().find(|(b, _)| *b == tail) {
                        Some((_, writers)) => {
                            *writers += 1;
                            *writers
                        }
                        None => {
                            plan.tail_writers.push((tail, 1));
                            1
                        }
                    };
                    if writers < self.pool.ref_count(tail) {
                        blocks_needed += 1;
                    }
                }
            }
            pending.len += 1;
        }
        Ok(blocks_needed)
    }
}
