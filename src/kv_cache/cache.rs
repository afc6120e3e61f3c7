//! The KV cache's bookkeeping for several sequences: a block pool shared by per-sequence
//! block tables.

use super::block_pool::BlockPool;
use super::sequence_table::{PositionRange, SequenceTable};
use crate::error::{Error, Result};

/// The most sequences one cache tracks (llama.cpp's `LLAMA_MAX_SEQ`): a bound on the
/// per-sequence tables allocated up front, whatever `n_seq_max` a host passes.
pub const MAX_SEQUENCES: usize = 256;

/// Block pool plus one [`SequenceTable`] per sequence id `0..n_seq_max`. Appending lives
/// in `append.rs`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KvCache {
    pub(super) pool: BlockPool,
    /// [n_seq_max]
    pub(super) sequences: Vec<SequenceTable>,
}

impl KvCache {
    /// Bookkeeping for `n_blocks` blocks of `block_size` token slots shared by sequences
    /// `0..n_seq_max`.
    pub fn new(n_blocks: usize, block_size: usize, n_seq_max: usize) -> Result<Self> {
        if !(1..=MAX_SEQUENCES).contains(&n_seq_max) {
            return Err(Error::InvalidArgument(format!(
                "n_seq_max is {n_seq_max}, expected 1 to {MAX_SEQUENCES}"
            )));
        }
        let pool = BlockPool::new(n_blocks, block_size)?;
        let sequences = vec![SequenceTable::new(pool.block_size_u32()); n_seq_max];
        Ok(KvCache { pool, sequences })
    }

    pub fn pool(&self) -> &BlockPool {
        &self.pool
    }

    pub fn n_seq_max(&self) -> usize {
        self.sequences.len()
    }

    /// The block table and live tokens of sequence `seq`.
    pub fn sequence(&self, seq: i32) -> Result<&SequenceTable> {
        Ok(&self.sequences[self.seq_index(seq)?])
    }

    /// The largest position in sequence `seq`, or -1 when it is empty.
    pub fn pos_max(&self, seq: i32) -> Result<i32> {
        Ok(self.sequence(seq)?.pos_max())
    }

    /// Removes the tokens of `seq` at positions `p0..p1` (`p0 < 0`: from the first, `p1 <
    /// 0`: to the last; `p0 >= p1` removes nothing). The remaining tokens keep their
    /// positions. Blocks left empty go back to the pool; a shared one loses a reference.
    pub fn remove(&mut self, seq: i32, p0: i32, p1: i32) -> Result<()> {
        let index = self.seq_index(seq)?;
        self.sequences[index].remove(PositionRange::new(p0, p1), &mut self.pool);
        Ok(())
    }

    /// Makes `dst` hold the tokens of `src` at positions `p0..p1` (same conventions as
    /// [`remove`](Self::remove)), replacing what `dst` held. The blocks are shared, not
    /// copied: the first write into a shared block gives the writer a private copy (see
    /// [`KvWritePlan::block_copies`](super::KvWritePlan::block_copies)). Never needs a free
    /// block, so it cannot fail for lack of room.
    pub fn copy_seq(&mut self, src: i32, dst: i32, p0: i32, p1: i32) -> Result<()> {
        let src_index = self.seq_index(src)?;
        let dst_index = self.seq_index(dst)?;
        if src_index == dst_index {
            return Ok(());
        }
        let everything = PositionRange::new(-1, -1);
        self.sequences[dst_index].remove(everything, &mut self.pool);
        let (src_table, dst_table) = pair_mut(&mut self.sequences, src_index, dst_index);
        src_table.share_into(dst_table, PositionRange::new(p0, p1), &mut self.pool);
        Ok(())
    }

    pub(super) fn seq_index(&self, seq: i32) -> Result<usize> {
        usize::try_from(seq)
            .ok()
            .filter(|&index| index < self.sequences.len())
            .ok_or_else(|| {
                Error::InvalidArgument(format!(
                    "sequence id {seq} is outside 0..{}",
                    self.sequences.len()
                ))
            })
    }
}

/// Shared access to `tables[read]` and mutable access to `tables[write]`.
///
/// Precondition: `read != write`.
fn pair_mut(
    tables: &mut [SequenceTable],
    read: usize,
    write: usize,
) -> (&SequenceTable, &mut SequenceTable) {
    if read < write {
        let (head, tail) = tables.split_at_mut(write);
        (&head[read], &mut tail[0])
    } else {
        let (head, tail) = tables.split_at_mut(read);
        (&tail[0], &mut head[write])
    }
}
