//! The pool of fixed-size KV blocks: a free list and one reference count per block.
//!
//! Pure bookkeeping: the K/V bytes live in the backend's storage (one allocation per
//! layer, sized `n_blocks * block_size` token slots), indexed by the slots handed out
//! here. Nothing is allocated or freed per block, so a block returned to the pool can
//! never keep memory alive.

use crate::error::{Error, Result};
use crate::host_memory::{filled_vec, reserve};

/// One block of the pool. Its token slots are
/// `block * block_size .. (block + 1) * block_size` in the storage's slot numbering.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct BlockId(u32);

impl BlockId {
    /// The block's number, `0..n_blocks`.
    pub fn index(self) -> usize {
        self.0 as usize
    }

    /// The flat slot index of `offset` within this block.
    pub(super) fn slot(self, block_size: u32, offset: u32) -> u32 {
        // `BlockPool::new` checks that `n_blocks * block_size` fits in u32.
        self.0 * block_size + offset
    }
}

/// Occupancy of the pool, for memory reports (`rf_context_memory`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PoolStats {
    /// Token slots per block.
    pub block_size: usize,
    pub blocks_total: usize,
    pub blocks_used: usize,
    pub blocks_free: usize,
    /// `blocks_total * bytes_per_block`, saturating.
    pub bytes_total: u64,
    /// `blocks_used * bytes_per_block`, saturating.
    pub bytes_used: u64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlockPool {
    block_size: u32,
    /// [n_blocks] number of block-table entries naming each block; 0 = free.
    ref_counts: Vec<u32>,
    /// Free blocks, taken from the end: the block freed last is reused first, while its
    /// storage is most likely still in cache.
    free_list: Vec<BlockId>,
}

impl BlockPool {
    /// A pool of `n_blocks` free blocks of `block_size` token slots each. The total slot
    /// count must fit in u32, the type of the slot indices handed to attention kernels.
    pub fn new(n_blocks: usize, block_size: usize) -> Result<Self> {
        if n_blocks == 0 || block_size == 0 {
            return Err(Error::InvalidArgument(format!(
                "KV pool needs at least one block of at least one slot, got {n_blocks} blocks of {block_size}"
            )));
        }
        let total_slots = n_blocks.checked_mul(block_size);
        if total_slots.is_none_or(|slots| u32::try_from(slots).is_err()) {
            return Err(Error::InvalidArgument(format!(
                "KV pool of {n_blocks} blocks of {block_size} slots exceeds {} slots",
                u32::MAX
            )));
        }
        // Both factors are at most their product, which fits in u32.
        let what = format!("the KV block pool ({n_blocks} blocks)");
        let mut free_list = Vec::new();
        reserve(&mut free_list, n_blocks, &what)?;
        free_list.extend((0..n_blocks as u32).rev().map(BlockId));
        Ok(BlockPool {
            block_size: block_size as u32,
            ref_counts: filled_vec(n_blocks, 0, &what)?,
            free_list,
        })
    }

    /// Token slots per block.
    pub fn block_size(&self) -> usize {
        self.block_size as usize
    }

    pub fn blocks_total(&self) -> usize {
        self.ref_counts.len()
    }

    pub fn blocks_free(&self) -> usize {
        self.free_list.len()
    }

    pub fn blocks_used(&self) -> usize {
        self.blocks_total() - self.blocks_free()
    }

    /// How many block-table entries name `block` (0 when free or not of this pool).
    pub fn ref_count(&self, block: BlockId) -> u32 {
        self.ref_counts.get(block.index()).copied().unwrap_or(0)
    }

    pub fn stats(&self, bytes_per_block: u64) -> PoolStats {
        let bytes = |blocks: usize| (blocks as u64).saturating_mul(bytes_per_block);
        PoolStats {
            block_size: self.block_size(),
            blocks_total: self.blocks_total(),
            blocks_used: self.blocks_used(),
            blocks_free: self.blocks_free(),
            bytes_total: bytes(self.blocks_total()),
            bytes_used: bytes(self.blocks_used()),
        }
    }

    /// The slot-index width the storage must use: `block_size` as stored.
    pub(super) fn block_size_u32(&self) -> u32 {
        self.block_size
    }

    /// Takes a free block with reference count 1.
    ///
    /// Precondition: a block is free. Callers count the blocks they need before changing
    /// anything (all-or-nothing), so an empty pool here is a bookkeeping bug, and going on
    /// would hand one slot to two owners.
    pub(super) fn allocate(&mut self) -> BlockId {
        let Some(block) = self.free_list.pop() else {
            panic!("KV block pool: allocate with no free block (capacity was not checked)");
        };
        self.ref_counts[block.index()] = 1;
        block
    }

    /// Puts back a block that `allocate` handed out and nobody shared since, at the end
    /// of the free list where `allocate` took it from: undoing allocations in reverse
    /// order restores the free list exactly, so the next allocations hand out the same
    /// blocks.
    ///
    /// Precondition: `block` has exactly one reference.
    pub(super) fn undo_allocate(&mut self, block: BlockId) {
        let count = &mut self.ref_counts[block.index()];
        assert!(
            *count == 1,
            "KV block pool: undo of the allocation of block {} with {} references",
            block.0,
            *count
        );
        *count = 0;
        self.free_list.push(block);
    }

    /// Adds a reference to a block in use (a block table now shares it).
    ///
    /// Precondition: `block` is in use.
    pub(super) fn retain(&mut self, block: BlockId) {
        let count = &mut self.ref_counts[block.index()];
        assert!(
            *count > 0,
            "KV block pool: retain of free block {}",
            block.0
        );
        *count += 1;
    }

    /// Drops a reference; the block returns to the free list when none remain.
    ///
    /// Precondition: `block` is in use.
    pub(super) fn release(&mut self, block: BlockId) {
        let count = &mut self.ref_counts[block.index()];
        assert!(
            *count > 0,
            "KV block pool: release of free block {}",
            block.0
        );
        *count -= 1;
        if *count == 0 {
            self.free_list.push(block);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rejects_empty_and_oversized_pools() {
        assert!(BlockPool::new(0, 16).is_err());
        assert!(BlockPool::new(16, 0).is_err());
        assert!(BlockPool::new(1 << 16, 1 << 16).is_err());
        assert!(BlockPool::new(usize::MAX, 2).is_err());
        assert!(BlockPool::new((1 << 16) - 1, 1 << 16).is_ok());
    }

    #[test]
    fn allocate_retain_release_round_trip() {
        let mut pool = BlockPool::new(3, 4).expect("valid pool");
        let a = pool.allocate();
        let b = pool.allocate();
        assert_eq!((a.index(), b.index()), (0, 1), "lowest blocks first");
        assert_eq!((pool.blocks_used(), pool.blocks_free()), (2, 1));

        pool.retain(a);
        assert_eq!(pool.ref_count(a), 2);
        pool.release(a);
        assert_eq!(pool.ref_count(a), 1);
        assert_eq!(pool.blocks_free(), 1, "a shared block stays in use");

        pool.release(a);
        pool.release(b);
        assert_eq!((pool.blocks_used(), pool.blocks_free()), (0, 3));
        assert_eq!(pool.allocate(), b, "the block freed last is reused first");
    }

    #[test]
    fn stats_count_bytes() {
        let mut pool = BlockPool::new(4, 16).expect("valid pool");
        pool.allocate();
        let stats = pool.stats(1000);
        assert_eq!(
            stats,
            PoolStats {
                block_size: 16,
                blocks_total: 4,
                blocks_used: 1,
                blocks_free: 3,
                bytes_total: 4000,
                bytes_used: 1000,
            }
        );
        assert_eq!(pool.stats(u64::MAX).bytes_total, u64::MAX);
    }

    #[test]
    #[should_panic(expected = "release of free block")]
    fn release_of_free_block_is_caught() {
        let mut pool = BlockPool::new(1, 1).expect("valid pool");
        pool.release(BlockId(0));
    }
}
