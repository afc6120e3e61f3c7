//! Moving a sequence's cached positions (llama.cpp's `llama_memory_seq_add`): the
//! bookkeeping half of a context shift. The keys' re-rotation is the context's part.

use super::cache::KvCache;
use super::live_tokens::TokenSlot;
use super::sequence_table::{EMPTY_SLOT, PositionRange, SequenceTable};
use crate::error::{Error, Result};
use crate::host_memory::filled_vec;

impl KvCache {
    /// The tokens of `seq` at positions `p0..p1` ([`remove`](Self::remove)'s conventions)
    /// that [`shift`](Self::shift) would move by `delta`, after checking it may: their
    /// new positions stay at 0 or above, below [`EMPTY_SLOT`], and between the positions
    /// of the sequence's tokens before and after the range (order is what attention's
    /// slot walk relies on); and none of them lies in a block another sequence shares
    /// (moving its keys would move the other sequence's too). Changes nothing.
    pub fn tokens_to_shift(
        &self,
        seq: i32,
        p0: i32,
        p1: i32,
        delta: i32,
    ) -> Result<Vec<TokenSlot>> {
        let table = self.sequence(seq)?;
        let range = PositionRange::new(p0, p1);
        let n_moved = table
            .live_tokens()
            .filter(|t| range.holds_token_at(t.position))
            .count();
        let mut moved = filled_vec(
            n_moved,
            TokenSlot {
                position: 0,
                slot: 0,
            },
            "a shift's tokens",
        )?;
        let (mut before, mut after, mut next) = (-1, EMPTY_SLOT, 0);
        for token in table.live_tokens() {
            if range.holds_token_at(token.position) {
                moved[next] = token;
                next += 1;
            } else if next == 0 {
                before = token.position;
            } else if after == EMPTY_SLOT {
                after = token.position;
            }
        }
        let (Some(first), Some(last)) = (moved.first(), moved.last()) else {
            return Ok(moved);
        };
        let shifted = |p: i32| {
            p.checked_add(delta)
                .filter(|&p| (0..EMPTY_SLOT).contains(&p))
        };
        match (shifted(first.position), shifted(last.position)) {
            (Some(new_first), Some(new_last)) if new_first > before && new_last < after => {}
            _ => {
                return Err(Error::InvalidArgument(format!(
                    "shifting positions {}..={} of sequence {seq} by {delta} would leave 0..{EMPTY_SLOT} or pass its neighbours ({before} before, {})",
                    first.position,
                    last.position,
                    if after == EMPTY_SLOT {
                        "none after".to_string()
                    } else {
                        format!("{after} after")
                    }
                )));
            }
        }
        self.check_unshared(table, &moved, seq)?;
        Ok(moved)
    }

    fn check_unshared(&self, table: &SequenceTable, moved: &[TokenSlot], seq: i32) -> Result<()> {
        let block_size = self.pool.block_size();
        let shared = table.block_table().iter().find(|&&block| {
            self.pool.ref_count(block) > 1
                && moved
                    .iter()
                    .any(|t| t.slot as usize / block_size == block.index())
        });
        match shared {
            Some(block) => Err(Error::Unsupported(format!(
                "shifting tokens of sequence {seq} that share KV block {} with another sequence (rf_seq_copy)",
                block.index()
            ))),
            None => Ok(()),
        }
    }

    /// Adds `delta` to the positions of `seq`'s tokens at `p0..p1`, which
    /// [`tokens_to_shift`](Self::tokens_to_shift) approved.
    pub fn shift(&mut self, seq: i32, p0: i32, p1: i32, delta: i32) -> Result<()> {
        let index = self.seq_index(seq)?;
        self.sequences[index].shift(PositionRange::new(p0, p1), delta);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kv_cache::KvWritePlan;

    fn cache_with(seq_positions: &[(i32, &[i32])]) -> KvCache {
        let mut cache = KvCache::new(8, 4, 3).unwrap();
        let mut plan = KvWritePlan::new();
        for &(seq, positions) in seq_positions {
            cache.append(seq, positions, &mut plan).unwrap();
        }
        cache
    }

    fn positions(cache: &KvCache, seq: i32) -> Vec<i32> {
        cache
            .sequence(seq)
            .unwrap()
            .live_tokens()
            .map(|t| t.position)
            .collect()
    }

    #[test]
    fn dropping_the_oldest_tokens_and_shifting_the_rest_down() {
        let mut cache = cache_with(&[(0, &[0, 1, 2, 3, 4, 5, 6, 7, 8, 9])]);
        cache.remove(0, 0, 4).unwrap();
        let moved = cache.tokens_to_shift(0, 4, -1, -4).unwrap();
        assert_eq!(
            moved.iter().map(|t| t.position).collect::<Vec<_>>(),
            [4, 5, 6, 7, 8, 9]
        );
        cache.shift(0, 4, -1, -4).unwrap();
        assert_eq!(positions(&cache, 0), [0, 1, 2, 3, 4, 5]);
        assert_eq!(cache.pos_max(0).unwrap(), 5);
    }

    #[test]
    fn a_shift_past_a_neighbour_or_below_zero_is_refused() {
        let cache = cache_with(&[(0, &[0, 1, 5, 6, 9])]);
        for (p0, p1, delta) in [(5, 7, -4), (5, 7, 3), (0, -1, -1), (9, -1, i32::MAX)] {
            let error = cache.tokens_to_shift(0, p0, p1, delta).unwrap_err();
            assert!(
                matches!(error, Error::InvalidArgument(_)),
                "{p0}..{p1} by {delta}: {error}"
            );
        }
        assert_eq!(cache.tokens_to_shift(0, 5, 7, -3).unwrap().len(), 2);
        assert_eq!(cache.tokens_to_shift(0, 5, 7, 2).unwrap().len(), 2);
        assert!(cache.tokens_to_shift(0, 20, 30, -100).unwrap().is_empty());
    }

    #[test]
    fn tokens_in_a_block_shared_with_another_sequence_do_not_move() {
        let mut cache = cache_with(&[(0, &[0, 1, 2, 3, 4, 5])]);
        cache.copy_seq(0, 1, 0, 4).unwrap();
        // Positions 0..4 fill the first block, which sequence 1 now shares.
        let error = cache.tokens_to_shift(0, 0, -1, 10).unwrap_err();
        assert!(matches!(error, Error::Unsupported(_)), "{error}");
        assert_eq!(cache.tokens_to_shift(0, 4, -1, 10).unwrap().len(), 2);
    }
}
