//! Random sequences of KV cache operations (appends, batches over several sequences,
//! copy-on-write forks, range and whole-sequence removals) checked against a model after
//! every step. A simulated K/V storage, which performs each append's block copies and
//! then its writes, proves that sharing never lets one sequence see another's tokens.
//! Appends are at random undone (a failed step), which must restore the cache exactly.

use std::collections::{BTreeMap, HashMap};

use proptest::prelude::*;
use rocmforge::Error;
use rocmforge::kv_cache::{BlockId, EMPTY_SLOT, KvCache, KvWritePlan};

const N_SEQ: usize = 3;

#[derive(Debug, Clone)]
enum Op {
    /// `n` tokens at consecutive positions, starting `gap` after the sequence's last;
    /// `undo`: the step fails and the append is taken back.
    Append {
        seq: usize,
        n: usize,
        gap: i32,
        undo: bool,
    },
    /// One token per entry, to that sequence at its next position.
    Batch {
        seqs: Vec<usize>,
        undo: bool,
    },
    Copy {
        src: usize,
        dst: usize,
        p0: i32,
        p1: i32,
    },
    Remove {
        seq: usize,
        p0: i32,
        p1: i32,
    },
    RemoveSeq {
        seq: usize,
    },
}

fn op() -> impl Strategy<Value = Op> {
    let seq = 0..N_SEQ;
    let bound = -1..48i32;
    // End bounds are often -1 ("to the end"): the rollback case.
    let end = prop_oneof![Just(-1i32), -1..48i32];
    prop_oneof![
        4 => (seq.clone(), 1..10usize, 0..3i32, any::<bool>())
            .prop_map(|(seq, n, gap, undo)| Op::Append { seq, n, gap, undo }),
        2 => (prop::collection::vec(seq.clone(), 1..8), any::<bool>())
            .prop_map(|(seqs, undo)| Op::Batch { seqs, undo }),
        2 => (seq.clone(), seq.clone(), bound.clone(), end.clone())
            .prop_map(|(src, dst, p0, p1)| Op::Copy { src, dst, p0, p1 }),
        2 => (seq.clone(), bound, end).prop_map(|(seq, p0, p1)| Op::Remove { seq, p0, p1 }),
        1 => seq.prop_map(|seq| Op::RemoveSeq { seq }),
    ]
}

/// What each sequence should hold (position → the value written for that token) and
/// what the simulated storage holds in each slot.
struct Model {
    sequences: Vec<BTreeMap<i32, u64>>,
    storage: Vec<u64>,
    block_size: usize,
    next_value: u64,
}

impl Model {
    fn pos_max(&self, seq: usize) -> i32 {
        self.sequences[seq]
            .keys()
            .next_back()
            .copied()
            .unwrap_or(-1)
    }

    fn in_range(position: i32, p0: i32, p1: i32) -> bool {
        position >= p0.max(0) && (p1 < 0 || position < p1)
    }

    /// Performs an accepted append on the storage and the model.
    fn write(&mut self, plan: &KvWritePlan, tokens: &[(usize, i32)]) {
        for copy in plan.block_copies() {
            let src = copy.src.index() * self.block_size;
            let dst = copy.dst.index() * self.block_size;
            self.storage.copy_within(src..src + self.block_size, dst);
        }
        assert_eq!(plan.slots().len(), tokens.len());
        for (&slot, &(seq, position)) in plan.slots().iter().zip(tokens) {
            self.next_value += 1;
            self.storage[slot as usize] = self.next_value;
            self.sequences[seq].insert(position, self.next_value);
        }
    }
}

/// Applies `op` to the cache and the model; a refused or undone append must leave the
/// cache exactly as it was.
fn apply(cache: &mut KvCache, model: &mut Model, plan: &mut KvWritePlan, op: &Op) {
    let (tokens, undo): (Vec<(usize, i32)>, bool) = match op {
        Op::Append { seq, n, gap, undo } => {
            let first = model.pos_max(*seq) + 1 + gap;
            ((0..*n as i32).map(|i| (*seq, first + i)).collect(), *undo)
        }
        Op::Batch { seqs, undo } => {
            let mut next: Vec<i32> = (0..N_SEQ).map(|s| model.pos_max(s) + 1).collect();
            let tokens = seqs
                .iter()
                .map(|&seq| {
                    next[seq] += 1;
                    (seq, next[seq] - 1)
                })
                .collect();
            (tokens, *undo)
        }
        Op::Copy { src, dst, p0, p1 } => {
            cache
                .copy_seq(*src as i32, *dst as i32, *p0, *p1)
                .expect("valid copy");
            if src != dst {
                let copied = model.sequences[*src]
                    .iter()
                    .filter(|&(&pos, _)| Model::in_range(pos, *p0, *p1))
                    .map(|(&pos, &value)| (pos, value))
                    .collect();
                model.sequences[*dst] = copied;
            }
            return;
        }
        Op::Remove { seq, p0, p1 } => {
            cache.remove(*seq as i32, *p0, *p1).expect("valid remove");
            model.sequences[*seq].retain(|&pos, _| !Model::in_range(pos, *p0, *p1));
            return;
        }
        Op::RemoveSeq { seq } => {
            cache.remove(*seq as i32, -1, -1).expect("valid remove");
            model.sequences[*seq].clear();
            return;
        }
    };
    // The oracle for the capacity check: the batch must succeed exactly when appending its
    // tokens one at a time would, and end in the same state.
    let mut one_at_a_time = cache.clone();
    let mut single_plan = KvWritePlan::new();
    let fits = tokens.iter().all(|&(seq, pos)| {
        one_at_a_time
            .append(seq as i32, &[pos], &mut single_plan)
            .is_ok()
    });

    let seq_ids: Vec<i32> = tokens.iter().map(|&(seq, _)| seq as i32).collect();
    let positions: Vec<i32> = tokens.iter().map(|&(_, pos)| pos).collect();
    let before = cache.clone();
    match cache.append_batch(&seq_ids, &positions, plan) {
        Ok(()) => {
            assert!(
                fits,
                "batch accepted, but one token at a time runs out of blocks"
            );
            assert_eq!(
                *cache, one_at_a_time,
                "batch and one-at-a-time appends differ"
            );
            if undo {
                undo_and_retry(cache, plan, &before, &seq_ids, &positions);
            } else {
                model.write(plan, &tokens);
            }
        }
        Err(Error::ContextFull(_)) => {
            assert!(!fits, "batch refused, but one token at a time fits");
            assert_eq!(*cache, before, "refused append changed the cache");
            assert!(plan.slots().is_empty() && plan.block_copies().is_empty());
        }
        Err(other) => panic!("unexpected error {other}"),
    }
}

/// Undoes the append that filled `plan`, which must restore `before` exactly (free-list
/// order included), so that retrying the append hands out the same slots and copies and
/// ends in the same state; then undoes the retry too.
fn undo_and_retry(
    cache: &mut KvCache,
    plan: &mut KvWritePlan,
    before: &KvCache,
    seq_ids: &[i32],
    positions: &[i32],
) {
    let after = cache.clone();
    let slots = plan.slots().to_vec();
    let copies = plan.block_copies().to_vec();
    cache.undo_append(plan);
    assert_eq!(cache, before, "undo did not restore the cache");
    cache
        .append_batch(seq_ids, positions, plan)
        .expect("the retried append fits as the first did");
    assert_eq!(*cache, after, "the retried append ends elsewhere");
    assert_eq!(
        plan.slots(),
        slots,
        "the retried append hands out other slots"
    );
    assert_eq!(plan.block_copies(), copies);
    cache.undo_append(plan);
    assert_eq!(cache, before, "undo of the retry did not restore the cache");
}

fn check_invariants(cache: &KvCache, model: &Model) {
    let pool = cache.pool();
    let block_size = pool.block_size();
    assert_eq!(pool.blocks_free() + pool.blocks_used(), pool.blocks_total());

    let mut references: HashMap<BlockId, u32> = HashMap::new();
    let mut slot_holders: HashMap<u32, Vec<usize>> = HashMap::new();
    for (seq, expected) in model.sequences.iter().enumerate() {
        let table = cache.sequence(seq as i32).expect("valid sequence");
        let live: Vec<(i32, u32)> = table.live_tokens().map(|t| (t.position, t.slot)).collect();
        let positions: Vec<i32> = live.iter().map(|&(pos, _)| pos).collect();
        let expected_positions: Vec<i32> = expected.keys().copied().collect();
        assert_eq!(
            positions, expected_positions,
            "sequence {seq}: live positions"
        );
        for &(pos, slot) in &live {
            assert_eq!(
                model.storage[slot as usize], expected[&pos],
                "sequence {seq}: position {pos} reads another token's K/V from slot {slot}"
            );
            slot_holders.entry(slot).or_default().push(seq);
        }
        assert_eq!(table.live_tokens().len(), expected.len());
        assert_eq!(table.n_tokens(), expected.len());
        assert_eq!(
            cache.pos_max(seq as i32).expect("valid"),
            model.pos_max(seq)
        );

        let blocks = table.block_table();
        assert_eq!(table.slot_positions().len(), blocks.len() * block_size);
        for (index, &block) in blocks.iter().enumerate() {
            *references.entry(block).or_default() += 1;
            let slots = &table.slot_positions()[index * block_size..(index + 1) * block_size];
            assert!(
                slots.iter().any(|&p| p != EMPTY_SLOT),
                "sequence {seq} keeps block {} without a live token",
                block.index()
            );
        }
        let mut distinct = blocks.to_vec();
        distinct.sort_unstable();
        distinct.dedup();
        assert_eq!(
            distinct.len(),
            blocks.len(),
            "sequence {seq} names a block twice"
        );
    }

    assert_eq!(
        references.len(),
        pool.blocks_used(),
        "used blocks are exactly those named"
    );
    for (&block, &count) in &references {
        assert_eq!(pool.ref_count(block), count, "block {}", block.index());
    }
    for (slot, holders) in slot_holders {
        if holders.len() > 1 {
            let block = cache
                .sequence(holders[0] as i32)
                .expect("valid")
                .block_table()
                .iter()
                .copied()
                .find(|b| b.index() == slot as usize / block_size)
                .expect("holder names the slot's block");
            assert!(
                pool.ref_count(block) > 1,
                "slot {slot} is live in sequences {holders:?} but its block is not shared"
            );
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1000))]

    #[test]
    fn random_operations_keep_the_bookkeeping_consistent(
        n_blocks in 2..14usize,
        block_size in prop::sample::select(vec![1usize, 2, 3, 4, 8]),
        ops in prop::collection::vec(op(), 1..80),
    ) {
        let mut cache = KvCache::new(n_blocks, block_size, N_SEQ).expect("valid cache");
        let start = cache.pool().stats(64);
        let mut model = Model {
            sequences: vec![BTreeMap::new(); N_SEQ],
            storage: vec![0; n_blocks * block_size],
            block_size,
            next_value: 0,
        };
        let mut plan = KvWritePlan::new();
        for op in &ops {
            apply(&mut cache, &mut model, &mut plan, op);
            check_invariants(&cache, &model);
        }
        for seq in 0..N_SEQ as i32 {
            cache.remove(seq, -1, -1).expect("valid remove");
        }
        prop_assert_eq!(cache.pool().stats(64), start);
    }
}
