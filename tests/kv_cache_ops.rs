//! The KV cache bookkeeping, one operation at a time: append, copy-on-write forks,
//! removals (suffix, middle, whole sequence), and all-or-nothing failures.

use rocmforge::Error;
use rocmforge::kv_cache::{EMPTY_SLOT, KvCache, KvWritePlan, MAX_SEQUENCES, PoolStats};

/// (position, slot) of every live token of `seq`.
fn tokens(cache: &KvCache, seq: i32) -> Vec<(i32, u32)> {
    let table = cache.sequence(seq).expect("valid sequence");
    table.live_tokens().map(|t| (t.position, t.slot)).collect()
}

fn block_indices(cache: &KvCache, seq: i32) -> Vec<usize> {
    let table = cache.sequence(seq).expect("valid sequence");
    table.block_table().iter().map(|b| b.index()).collect()
}

fn positions(range: std::ops::Range<i32>) -> Vec<i32> {
    range.collect()
}

#[test]
fn append_takes_blocks_in_order_and_reports_slots() {
    let mut cache = KvCache::new(4, 4, 2).expect("valid cache");
    let mut plan = KvWritePlan::new();
    cache.append(0, &positions(0..6), &mut plan).expect("room");
    assert_eq!(plan.slots(), &[0, 1, 2, 3, 4, 5]);
    assert!(plan.block_copies().is_empty());
    assert_eq!(cache.pos_max(0).expect("valid"), 5);
    assert_eq!(cache.pos_max(1).expect("valid"), -1);
    assert_eq!(cache.pool().blocks_used(), 2);

    cache.append(1, &[0, 1], &mut plan).expect("room");
    assert_eq!(plan.slots(), &[8, 9], "sequence 1 gets its own block");
    cache.append(0, &[6, 7, 8], &mut plan).expect("room");
    assert_eq!(
        plan.slots(),
        &[6, 7, 12],
        "fills the tail block, then takes a new one"
    );
    assert_eq!(
        tokens(&cache, 0),
        vec![
            (0, 0),
            (1, 1),
            (2, 2),
            (3, 3),
            (4, 4),
            (5, 5),
            (6, 6),
            (7, 7),
            (8, 12)
        ]
    );
    assert_eq!(cache.sequence(0).expect("valid").n_tokens(), 9);
}

#[test]
fn positions_may_skip_but_must_increase() {
    let mut cache = KvCache::new(4, 4, 2).expect("valid cache");
    let mut plan = KvWritePlan::new();
    cache
        .append(0, &[0, 5, 9], &mut plan)
        .expect("gaps are allowed");
    let before = cache.clone();
    for bad in [[10, 10], [8, 11], [-1, 12], [11, EMPTY_SLOT]] {
        let err = cache
            .append(0, &bad, &mut plan)
            .expect_err("not increasing");
        assert!(matches!(err, Error::InvalidArgument(_)), "{err}");
        assert_eq!(cache, before);
        assert!(plan.slots().is_empty());
    }
    for seq in [-1, 2] {
        let err = cache
            .append(seq, &[0], &mut plan)
            .expect_err("no such sequence");
        assert!(matches!(err, Error::InvalidArgument(_)), "{err}");
    }
    let err = cache
        .append_batch(&[0], &[10, 11], &mut plan)
        .expect_err("lengths differ");
    assert!(matches!(err, Error::InvalidArgument(_)), "{err}");
    assert_eq!(cache, before);
}

#[test]
fn failed_append_leaves_the_cache_identical() {
    let mut cache = KvCache::new(3, 4, 3).expect("valid cache");
    let mut plan = KvWritePlan::new();
    cache.append(0, &positions(0..6), &mut plan).expect("room");
    cache.copy_seq(0, 1, -1, -1).expect("valid");
    let before = cache.clone();

    // Sequence 2 fits in the one free block, sequence 0 then needs a copy of its shared
    // tail block: two blocks for one free.
    let err = cache
        .append_batch(&[2, 2, 0], &[0, 1, 6], &mut plan)
        .expect_err("pool exhausted");
    assert!(matches!(err, Error::ContextFull(_)), "{err}");
    assert_eq!(cache, before, "state identical after a refused append");
    assert!(plan.slots().is_empty() && plan.block_copies().is_empty());

    let err = cache
        .append(2, &positions(0..5), &mut plan)
        .expect_err("two blocks needed");
    assert!(matches!(err, Error::ContextFull(_)), "{err}");
    assert_eq!(cache, before);

    cache
        .append(2, &positions(0..4), &mut plan)
        .expect("exactly one block");
    assert_eq!(cache.pool().blocks_free(), 0);
}

#[test]
fn forking_a_long_prompt_copies_nothing_until_a_shared_block_is_written() {
    let block_size = 16;
    let mut cache = KvCache::new(1024, block_size, 4).expect("valid cache");
    let mut plan = KvWritePlan::new();
    cache
        .append(0, &positions(0..4095), &mut plan)
        .expect("room");
    let prompt_blocks = cache.pool().blocks_used();
    assert_eq!(prompt_blocks, 256);
    for dst in 1..4 {
        cache.copy_seq(0, dst, -1, -1).expect("valid");
    }
    assert_eq!(
        cache.pool().blocks_used(),
        prompt_blocks,
        "no block taken by a fork"
    );
    let tail = *cache
        .sequence(0)
        .expect("valid")
        .block_table()
        .last()
        .expect("tail");
    assert_eq!(cache.pool().ref_count(tail), 4);

    // Sequence 3 writes into the shared, partly filled tail block: it gets a copy.
    cache.append(3, &[4095], &mut plan).expect("room");
    let copy = plan.block_copies();
    assert_eq!(copy.len(), 1);
    assert_eq!(copy[0].src, tail);
    let private = *cache
        .sequence(3)
        .expect("valid")
        .block_table()
        .last()
        .expect("tail");
    assert_eq!(copy[0].dst, private);
    assert_eq!(plan.slots(), &[private.index() as u32 * 16 + 15]);
    assert_eq!(cache.pool().ref_count(tail), 3);

    // The next token of sequence 3 starts a block of its own: no copy.
    cache.append(3, &[4096], &mut plan).expect("room");
    assert!(plan.block_copies().is_empty());

    // Only the first 255 blocks stay shared by all four.
    let first = cache.sequence(0).expect("valid").block_table()[0];
    assert_eq!(cache.pool().ref_count(first), 4);
    assert_eq!(cache.pool().blocks_used(), prompt_blocks + 2);
}

#[test]
fn parallel_decode_copies_a_shared_tail_for_all_writers_but_the_last() {
    // A 6-token prompt in a block of 8, shared by four sequences; three free blocks.
    let mut cache = KvCache::new(4, 8, 4).expect("valid cache");
    let mut plan = KvWritePlan::new();
    cache.append(0, &positions(0..6), &mut plan).expect("room");
    for dst in 1..4 {
        cache.copy_seq(0, dst, -1, -1).expect("valid");
    }
    let shared = cache.sequence(0).expect("valid").block_table()[0];

    // All four sequences write one token: three private copies, and the last writer
    // holds the shared block alone by then, so the three free blocks are exactly enough.
    cache
        .append_batch(&[0, 1, 2, 3], &[6, 6, 6, 6], &mut plan)
        .expect("exactly enough blocks");
    assert_eq!(cache.pool().blocks_free(), 0);
    assert_eq!(plan.block_copies().len(), 3);
    assert!(plan.block_copies().iter().all(|c| c.src == shared));
    assert_eq!(block_indices(&cache, 3), vec![shared.index()]);
    assert_eq!(cache.pool().ref_count(shared), 1);
    let mut written: Vec<u32> = plan.slots().to_vec();
    written.sort_unstable();
    written.dedup();
    assert_eq!(written.len(), 4, "four distinct slots");
}

#[test]
fn rollback_frees_the_suffix_and_reuses_its_slots() {
    let mut cache = KvCache::new(4, 4, 1).expect("valid cache");
    let mut plan = KvWritePlan::new();
    cache.append(0, &positions(0..10), &mut plan).expect("room");
    assert_eq!(cache.pool().blocks_used(), 3);

    cache.remove(0, 6, -1).expect("valid");
    assert_eq!(cache.pos_max(0).expect("valid"), 5);
    assert_eq!(
        cache.pool().blocks_used(),
        2,
        "the block of positions 8 and 9 is free"
    );

    cache.append(0, &[6, 7], &mut plan).expect("room");
    assert_eq!(plan.slots(), &[6, 7], "rolled-back slots are reused");
}

#[test]
fn removing_a_middle_range_leaves_holes_and_keeps_positions() {
    let mut cache = KvCache::new(4, 4, 1).expect("valid cache");
    let mut plan = KvWritePlan::new();
    cache.append(0, &positions(0..12), &mut plan).expect("room");

    cache.remove(0, 2, 8).expect("valid");
    assert_eq!(
        cache.pool().blocks_used(),
        2,
        "block of positions 4..8 is free"
    );
    assert_eq!(
        tokens(&cache, 0),
        vec![(0, 0), (1, 1), (8, 8), (9, 9), (10, 10), (11, 11)]
    );
    let table = cache.sequence(0).expect("valid");
    assert_eq!(block_indices(&cache, 0), vec![0, 2]);
    assert_eq!(
        table.slot_positions(),
        &[0, 1, EMPTY_SLOT, EMPTY_SLOT, 8, 9, 10, 11]
    );
    assert_eq!(table.n_tokens(), 6);
    assert_eq!(cache.pos_max(0).expect("valid"), 11);

    cache.append(0, &[12], &mut plan).expect("room");
    assert_eq!(
        plan.slots(),
        &[4],
        "holes are not refilled; a fresh block follows"
    );

    cache.remove(0, 5, 3).expect("an empty range is allowed");
    assert_eq!(cache.sequence(0).expect("valid").n_tokens(), 7);
}

#[test]
fn removing_a_sequence_returns_its_blocks_and_drops_shared_references() {
    let mut cache = KvCache::new(8, 4, 2).expect("valid cache");
    let mut plan = KvWritePlan::new();
    cache.append(0, &positions(0..8), &mut plan).expect("room");
    cache.copy_seq(0, 1, -1, -1).expect("valid");
    cache.append(1, &[8], &mut plan).expect("room");
    assert_eq!(cache.pool().blocks_used(), 3);

    cache.remove(1, -1, -1).expect("valid");
    assert!(cache.sequence(1).expect("valid").is_empty());
    assert_eq!(
        cache.pool().blocks_used(),
        2,
        "shared blocks stay with sequence 0"
    );
    for &block in cache.sequence(0).expect("valid").block_table() {
        assert_eq!(cache.pool().ref_count(block), 1);
    }
    cache.remove(0, -1, -1).expect("valid");
    assert_eq!(cache.pool().blocks_free(), 8);
}

#[test]
fn partial_copy_shares_only_the_blocks_of_the_range() {
    let mut cache = KvCache::new(8, 4, 2).expect("valid cache");
    let mut plan = KvWritePlan::new();
    cache.append(0, &positions(0..12), &mut plan).expect("room");

    cache.copy_seq(0, 1, 2, 6).expect("valid");
    assert_eq!(tokens(&cache, 1), vec![(2, 2), (3, 3), (4, 4), (5, 5)]);
    assert_eq!(block_indices(&cache, 1), vec![0, 1]);
    assert_eq!(cache.pos_max(1).expect("valid"), 5);
    assert_eq!(
        cache
            .pool()
            .ref_count(cache.sequence(0).expect("valid").block_table()[2]),
        1
    );

    // Sequence 1's next token lands in shared block 1 at offset 2: copy first.
    cache.append(1, &[6], &mut plan).expect("room");
    let copy = plan.block_copies()[0];
    assert_eq!(copy.src.index(), 1);
    assert_eq!(plan.slots(), &[copy.dst.index() as u32 * 4 + 2]);
    assert_eq!(tokens(&cache, 0).len(), 12, "the source is untouched");
}

#[test]
fn copy_replaces_the_destination_and_checks_ids() {
    let mut cache = KvCache::new(8, 4, 2).expect("valid cache");
    let mut plan = KvWritePlan::new();
    cache.append(0, &positions(0..3), &mut plan).expect("room");
    cache.append(1, &positions(0..9), &mut plan).expect("room");
    assert_eq!(cache.pool().blocks_used(), 4);

    cache.copy_seq(0, 1, -1, -1).expect("valid");
    assert_eq!(tokens(&cache, 1), tokens(&cache, 0));
    assert_eq!(cache.pool().blocks_used(), 1);

    let before = cache.clone();
    cache
        .copy_seq(0, 0, -1, -1)
        .expect("copy onto itself does nothing");
    assert_eq!(cache, before);
    assert!(matches!(
        cache.copy_seq(0, 2, -1, -1),
        Err(Error::InvalidArgument(_))
    ));
    assert!(matches!(
        cache.copy_seq(-1, 1, -1, -1),
        Err(Error::InvalidArgument(_))
    ));
    assert!(matches!(
        cache.remove(5, -1, -1),
        Err(Error::InvalidArgument(_))
    ));
    assert!(matches!(cache.pos_max(2), Err(Error::InvalidArgument(_))));
    assert_eq!(cache, before);
}

#[test]
fn slot_positions_mark_unwritten_slots_empty() {
    let mut cache = KvCache::new(2, 4, 1).expect("valid cache");
    let mut plan = KvWritePlan::new();
    cache.append(0, &[3, 4], &mut plan).expect("room");
    let table = cache.sequence(0).expect("valid");
    assert_eq!(table.slot_positions(), &[3, 4, EMPTY_SLOT, EMPTY_SLOT]);
    // The causal test alone excludes empty slots.
    let query_position = 4;
    let visible = table
        .slot_positions()
        .iter()
        .filter(|&&p| p <= query_position)
        .count();
    assert_eq!(visible, 2);
}

#[test]
fn stats_and_constructor_limits() {
    let mut cache = KvCache::new(10, 16, 1).expect("valid cache");
    let mut plan = KvWritePlan::new();
    cache.append(0, &positions(0..17), &mut plan).expect("room");
    assert_eq!(
        cache.pool().stats(2048),
        PoolStats {
            block_size: 16,
            blocks_total: 10,
            blocks_used: 2,
            blocks_free: 8,
            bytes_total: 20480,
            bytes_used: 4096,
        }
    );
    assert!(KvCache::new(10, 16, 0).is_err());
    assert!(KvCache::new(10, 16, MAX_SEQUENCES).is_ok());
    assert!(KvCache::new(10, 16, MAX_SEQUENCES + 1).is_err());
    assert!(KvCache::new(0, 16, 1).is_err());
    assert!(KvCache::new(1 << 20, 1 << 20, 1).is_err());
}
