//! The sliding-window layers' cache beside the full cache (`KvCaches`), bookkeeping only:
//! what a step keeps (the window and a margin), what a longer rollback, a copy, a shift or
//! a load leaves, and that every refusal changes nothing.

use rocmforge::Error;
use rocmforge::kv_cache::{KvCache, KvCaches, KvWritePlans, WindowCache};

const BLOCK: usize = 4;
const WINDOW: usize = 8;
const MARGIN: usize = 4;
/// Positions kept behind a sequence's last after a step.
const KEPT: i32 = (WINDOW + MARGIN) as i32;

fn caches(n_seq: usize, window_blocks: usize) -> KvCaches {
    let full = KvCache::new(64, BLOCK, n_seq).unwrap();
    let window = WindowCache::new(window_blocks, BLOCK, n_seq, WINDOW, MARGIN).unwrap();
    KvCaches::new(full, Some(window)).unwrap()
}

/// A step's bookkeeping: append, then prune as the context does once the step ran.
fn step(caches: &mut KvCaches, seq: i32, positions: &[i32]) -> Result<(), Error> {
    let mut plans = KvWritePlans::default();
    let seq_ids = vec![seq; positions.len()];
    caches.append_batch(&seq_ids, positions, &mut plans)?;
    caches.prune(&seq_ids);
    Ok(())
}

fn window_positions(caches: &KvCaches, seq: i32) -> Vec<i32> {
    let window = caches.window().unwrap().cache();
    let table = window.sequence(seq).unwrap();
    table.live_tokens().map(|t| t.position).collect()
}

fn full_positions(caches: &KvCaches, seq: i32) -> Vec<i32> {
    let table = caches.full().sequence(seq).unwrap();
    table.live_tokens().map(|t| t.position).collect()
}

fn pruned_max(caches: &KvCaches, seq: i32) -> i32 {
    caches.window().unwrap().pruned_max(seq).unwrap()
}

/// Positions `start..end`.
fn span(start: i32, end: i32) -> Vec<i32> {
    (start..end).collect()
}

/// Decoding token by token and in batches of three, the window cache holds exactly the
/// last `window + margin` positions after each step, in at most the blocks they span;
/// the full cache holds every position.
#[test]
fn a_step_keeps_the_window_and_the_margin_in_a_bounded_number_of_blocks() {
    let mut caches = caches(1, 8);
    let most_blocks = (KEPT as usize + BLOCK - 1).div_ceil(BLOCK);
    let mut next = 0;
    while next < 100 {
        let n = if next < 50 { 1 } else { 3 };
        step(&mut caches, 0, &span(next, next + n)).unwrap();
        next += n;
        let oldest = (next - KEPT).max(0);
        assert_eq!(
            window_positions(&caches, 0),
            span(oldest, next),
            "at {next}"
        );
        assert_eq!(pruned_max(&caches, 0), oldest - 1, "at {next}");
        let used = caches.window().unwrap().cache().pool().blocks_used();
        assert!(used <= most_blocks, "{used} blocks at {next}");
    }
    assert_eq!(full_positions(&caches, 0), span(0, next));
}

/// A rollback of up to `margin + 1` positions decodes on (the next token's window is
/// whole); a longer one is refused with both caches unchanged, and the sequence goes on
/// once it is cleared. The last token's logits can be recomputed after a rollback of up
/// to `margin`.
#[test]
fn a_rollback_past_the_margin_is_refused_until_the_sequence_is_cleared() {
    let mut caches = caches(1, 16);
    step(&mut caches, 0, &span(0, 40)).unwrap();
    assert_eq!(pruned_max(&caches, 0), 39 - KEPT);

    let mut within = caches.clone();
    within.remove(0, 40 - MARGIN as i32, -1).unwrap();
    within.check_last_token_sees(0).unwrap();
    within.remove(0, 39 - MARGIN as i32, -1).unwrap();
    assert!(within.check_last_token_sees(0).is_err());
    step(&mut within, 0, &[39 - MARGIN as i32]).unwrap();

    caches.remove(0, 38 - MARGIN as i32, -1).unwrap();
    let before = caches.clone();
    let mut plans = KvWritePlans::default();
    let error = caches
        .append_batch(&[0], &[38 - MARGIN as i32], &mut plans)
        .unwrap_err();
    assert!(
        matches!(&error, Error::InvalidArgument(m) if m.contains("no longer hold")),
        "{error}"
    );
    assert_eq!(caches, before, "a refused step changes nothing");
    assert!(plans.full.slots().is_empty() && plans.window.slots().is_empty());

    caches.remove(0, -1, -1).unwrap();
    assert_eq!(pruned_max(&caches, 0), -1);
    step(&mut caches, 0, &span(0, 3)).unwrap();
    assert_eq!(window_positions(&caches, 0), span(0, 3));
}

/// A copy takes what the source dropped within its range: the whole sequence copies its
/// window and its mark; a range the window cache dropped entirely leaves a copy that can
/// only be cleared; a range inside the window leaves one that goes on.
#[test]
fn a_copy_lacks_what_the_source_dropped_in_its_range() {
    let mut caches = caches(3, 16);
    step(&mut caches, 0, &span(0, 40)).unwrap();

    caches.copy_seq(0, 1, -1, -1).unwrap();
    assert_eq!(window_positions(&caches, 1), window_positions(&caches, 0));
    assert_eq!(pruned_max(&caches, 1), pruned_max(&caches, 0));
    step(&mut caches, 1, &[40]).unwrap();

    caches.copy_seq(0, 2, 0, 20).unwrap();
    assert!(window_positions(&caches, 2).is_empty());
    assert_eq!(pruned_max(&caches, 2), 19);
    assert!(step(&mut caches, 2, &[20]).is_err());

    caches.copy_seq(0, 2, 30, 40).unwrap();
    assert_eq!(window_positions(&caches, 2), span(30, 40));
    assert_eq!(pruned_max(&caches, 2), -1);
    step(&mut caches, 2, &[40]).unwrap();
}

/// A context shift (drop a range, move the rest down) moves the window cache's positions
/// and its mark with the full cache's: dropping old positions goes on; dropping positions
/// just behind the window brings dropped positions back into the next token's window,
/// and the next step is refused.
#[test]
fn a_shift_moves_the_window_and_what_it_dropped() {
    let mut caches = caches(1, 16);
    step(&mut caches, 0, &span(0, 40)).unwrap();
    let mut dropped_old = caches.clone();
    dropped_old.remove(0, 4, 24).unwrap();
    let moved = dropped_old.tokens_to_shift(0, 24, -1, -20).unwrap();
    assert_eq!(moved.full.len(), 16);
    assert_eq!(moved.window.len(), window_positions(&caches, 0).len());
    dropped_old.shift(0, 24, -1, -20).unwrap();
    assert_eq!(pruned_max(&dropped_old, 0), 39 - KEPT - 20);
    assert_eq!(window_positions(&dropped_old, 0), span(40 - KEPT - 20, 20));
    step(&mut dropped_old, 0, &[20]).unwrap();

    // Positions 26..36 go; 25 and the positions before it, dropped from the window
    // cache, are now within 8 of the next position, 30.
    caches.remove(0, 26, 36).unwrap();
    caches.shift(0, 36, -1, -10).unwrap();
    assert_eq!(pruned_max(&caches, 0), 25);
    assert!(step(&mut caches, 0, &[30]).is_err());
}

/// An append the window cache has no room for is refused, and the full cache's part of
/// it is taken back; an accepted append is undone in both.
#[test]
fn an_append_refused_by_either_cache_or_undone_changes_nothing() {
    let mut caches = caches(1, 2);
    let before = caches.clone();
    let mut plans = KvWritePlans::default();
    let error = caches
        .append_batch(&[0; 9], &span(0, 9), &mut plans)
        .unwrap_err();
    assert!(matches!(error, Error::ContextFull(_)), "{error}");
    assert_eq!(caches, before);
    assert!(plans.full.slots().is_empty() && plans.window.slots().is_empty());

    step(&mut caches, 0, &span(0, 5)).unwrap();
    let before = caches.clone();
    caches
        .append_batch(&[0; 3], &span(5, 8), &mut plans)
        .unwrap();
    assert_eq!(plans.window.slots().len(), 3);
    caches.undo_append(&mut plans);
    assert_eq!(caches, before);
}

/// A load places every token in the full cache and, of those with window-layer rows,
/// the ones a step would keep; one whose rows miss part of the last token's window is
/// refused with the sequence unchanged.
#[test]
fn a_load_keeps_what_a_step_would_and_needs_the_last_window() {
    let mut caches = caches(1, 8);
    step(&mut caches, 0, &span(0, 5)).unwrap();
    let mut plans = KvWritePlans::default();
    let positions = span(0, 30);

    let first = caches.load(0, &positions, 30, &mut plans).unwrap();
    assert_eq!(first, 30 - KEPT as usize);
    assert_eq!(plans.full.slots().len(), 30);
    assert_eq!(plans.window.slots().len(), KEPT as usize);
    assert_eq!(window_positions(&caches, 0), span(30 - KEPT, 30));
    assert_eq!(pruned_max(&caches, 0), 29 - KEPT);

    let first = caches.load(0, &positions, WINDOW, &mut plans).unwrap();
    assert_eq!(first, 30 - WINDOW);
    assert_eq!(window_positions(&caches, 0), span(30 - WINDOW as i32, 30));
    caches.check_last_token_sees(0).unwrap();

    let before = caches.clone();
    let error = caches
        .load(0, &positions, WINDOW - 1, &mut plans)
        .unwrap_err();
    assert!(matches!(error, Error::InvalidArgument(_)), "{error}");
    assert_eq!(caches, before);
}
