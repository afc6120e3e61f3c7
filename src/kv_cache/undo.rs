//! Taking back an accepted append, for a step whose forward pass failed (cancelled, device
//! error) after the cache had handed out its slots: the exact inverse of the append, so
//! that the failed step leaves no trace and the decode path needs no snapshot.

use super::cache::KvCache;
use super::write_plan::KvWritePlan;

impl KvCache {
    /// Undoes the append that filled `plan` and empties `plan`. The cache is then equal
    /// to what it was before that append: block tables, slot positions, token counts,
    /// reference counts and the free list's order (so a retried append hands out the
    /// same slots), with every copy-on-write swap reverted. On an empty plan (a refused
    /// append, or one already undone) this does nothing.
    ///
    /// Precondition: that append was the last change to the cache. Undoing a stale plan
    /// would free blocks that other tokens use, so a plan whose slots are not the
    /// sequences' last ones panics.
    pub fn undo_append(&mut self, plan: &mut KvWritePlan) {
        // The reverse of the append's order: each token is taken back from the state
        // right after its push, and each block returns to the free list's end in the
        // reverse of the order it left.
        for (placed, &slot) in plan.placed.iter().zip(&plan.slots).rev() {
            let table = &mut self.sequences[placed.seq_index];
            assert_eq!(
                table.last_slot(),
                Some(slot),
                "KV cache: undo of an append that is not the cache's last change \
                 (sequence {})",
                placed.seq_index
            );
            table.pop_token(placed.placement, &mut self.pool);
        }
        plan.clear();
    }
}
