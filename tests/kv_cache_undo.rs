//! `KvCache::undo_append`: a failed step's append taken back exactly. Each test clones the
//! cache before an append, undoes it, and compares the whole bookkeeping (block tables,
//! slot positions, counts, reference counts, the free list's order) with the clone; the
//! retried append must then hand out the same slots and block copies.

use rocmforge::Error;
use rocmforge::kv_cache::{BlockCopy, BlockId, KvCache, KvWritePlan};

/// The cache right after an append, and what the append handed out.
struct Appended {
    cache: KvCache,
    slots: Vec<u32>,
    copies: Vec<BlockCopy>,
}

/// Appends, undoes, checks the cache is back to what it was, then retries the same append
/// and checks it ends in the same state with the same slots and copies, and undoes that.
fn append_undo_retry(cache: &mut KvCache, seq_ids: &[i32], positions: &[i32]) -> Appended {
    let before = cache.clone();
    let mut plan = KvWritePlan::new();
    cache
        .append_batch(seq_ids, positions, &mut plan)
        .expect("append fits");
    let appended = Appended {
        cache: cache.clone(),
        slots: plan.slots().to_vec(),
        copies: plan.block_copies().to_vec(),
    };

    cache.undo_append(&mut plan);
    assert_eq!(*cache, before, "undo left the cache changed");
    assert!(plan.slots().is_empty() && plan.block_copies().is_empty());

    cache
        .append_batch(seq_ids, positions, &mut plan)
        .expect("retry fits");
    assert_eq!(*cache, appended.cache, "the retried append ends elsewhere");
    assert_eq!(
        plan.slots(),
        appended.slots,
        "the retry hands out other slots"
    );
    assert_eq!(plan.block_copies(), appended.copies);
    cache.undo_append(&mut plan);
    assert_eq!(*cache, before);
    appended
}

fn blocks(cache: &KvCache, seq: i32) -> Vec<BlockId> {
    cache.sequence(seq).expect("valid").block_table().to_vec()
}

#[test]
fn undo_of_an_append_that_started_a_new_block() {
    let mut cache = KvCache::new(4, 4, 1).expect("valid cache");
    let mut plan = KvWritePlan::new();
    cache.append(0, &[0, 1, 2], &mut plan).expect("fits");

    // Position 3 fills the first block, 4 and 5 start the second.
    let appended = append_undo_retry(&mut cache, &[0, 0, 0], &[3, 4, 5]);

    let new_block = blocks(&appended.cache, 0)[1];
    assert_eq!(appended.cache.pool().ref_count(new_block), 1);
    assert!(appended.copies.is_empty());
    assert_eq!(
        cache.pool().ref_count(new_block),
        0,
        "the new block is free"
    );
    assert_eq!(cache.pool().blocks_free(), 3);
    let table = cache.sequence(0).expect("valid");
    assert_eq!(table.block_table().len(), 1);
    assert_eq!(table.slot_positions(), [0, 1, 2, i32::MAX]);
    assert_eq!((table.n_tokens(), table.pos_max()), (3, 2));
}

#[test]
fn undo_of_an_append_that_copied_a_shared_tail_block() {
    let mut cache = KvCache::new(4, 4, 2).expect("valid cache");
    let mut plan = KvWritePlan::new();
    cache
        .append(0, &[0, 1, 2, 3, 4, 5], &mut plan)
        .expect("fits");
    cache.copy_seq(0, 1, -1, -1).expect("valid copy");
    let shared = blocks(&cache, 0);
    assert_eq!(cache.pool().ref_count(shared[1]), 2);

    // Sequence 1 writes into the shared, partly filled tail block: copy-on-write.
    let appended = append_undo_retry(&mut cache, &[1], &[6]);

    let private = blocks(&appended.cache, 1)[1];
    assert_ne!(private, shared[1]);
    assert_eq!(
        appended.copies,
        [BlockCopy {
            src: shared[1],
            dst: private
        }]
    );
    assert_eq!(appended.cache.pool().ref_count(shared[1]), 1);
    assert_eq!(blocks(&cache, 1), shared, "the shared tail block is back");
    assert_eq!(cache.pool().ref_count(shared[1]), 2);
    assert_eq!(cache.pool().ref_count(shared[0]), 2);
    assert_eq!(
        cache.pool().ref_count(private),
        0,
        "the private copy is free"
    );
    assert_eq!(cache.pool().blocks_free(), 2);
}

#[test]
fn undo_of_an_append_over_several_sequences() {
    let mut cache = KvCache::new(9, 2, 4).expect("valid cache");
    let mut plan = KvWritePlan::new();
    cache.append(0, &[0, 1, 2], &mut plan).expect("fits");
    // Sequences 1 and 2 share sequence 0's blocks, the tail block half full.
    cache.copy_seq(0, 1, -1, -1).expect("valid copy");
    cache.copy_seq(0, 2, -1, -1).expect("valid copy");
    cache.append(3, &[10], &mut plan).expect("fits");
    let tail = blocks(&cache, 0)[1];
    assert_eq!(cache.pool().ref_count(tail), 3);

    // Interleaved: sequences 1 and 0 copy the shared tail, sequence 2 (its last holder
    // by then) writes into it in place; every sequence then starts new blocks, and
    // sequence 3 fills its own tail in place first.
    let seq_ids = [1, 3, 0, 2, 1, 3, 0, 2, 1, 3];
    let positions = [3, 11, 3, 3, 4, 12, 4, 4, 5, 13];
    let appended = append_undo_retry(&mut cache, &seq_ids, &positions);

    assert_eq!(appended.copies.len(), 2, "two copy-on-write swaps");
    assert!(appended.copies.iter().all(|copy| copy.src == tail));
    assert_eq!(
        blocks(&appended.cache, 2)[1],
        tail,
        "the last holder wrote in place"
    );
    assert_eq!(appended.cache.pool().blocks_free(), 0);
    for seq in 0..3 {
        assert_eq!(blocks(&cache, seq)[1], tail);
    }
    assert_eq!(cache.pool().ref_count(tail), 3);
    assert_eq!(cache.pool().blocks_free(), 6);
}

#[test]
fn undo_after_a_refused_append_or_a_second_time_changes_nothing() {
    let mut cache = KvCache::new(2, 2, 1).expect("valid cache");
    let mut plan = KvWritePlan::new();
    cache.append(0, &[0, 1, 2], &mut plan).expect("fits");
    let appended = cache.clone();

    cache.undo_append(&mut plan);
    let before = cache.clone();
    cache.undo_append(&mut plan);
    assert_eq!(cache, before, "a second undo takes back nothing more");

    cache.append(0, &[0, 1, 2], &mut plan).expect("fits");
    assert_eq!(cache, appended);
    let refused = cache.append(0, &[3, 4, 5], &mut plan);
    assert!(matches!(refused, Err(Error::ContextFull(_))));
    cache.undo_append(&mut plan);
    assert_eq!(
        cache, appended,
        "undo of a refused append takes back nothing"
    );
}

#[test]
#[should_panic(expected = "not the cache's last change")]
fn undo_of_a_stale_plan_is_caught() {
    let mut cache = KvCache::new(4, 2, 1).expect("valid cache");
    let mut plan = KvWritePlan::new();
    cache.append(0, &[0, 1, 2], &mut plan).expect("fits");
    cache.remove(0, 2, -1).expect("valid remove");
    cache.undo_append(&mut plan);
}
