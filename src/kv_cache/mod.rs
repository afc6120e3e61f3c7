//! The paged KV cache's bookkeeping: which storage slot holds each token of each
//! sequence. No tensor data lives here; the backend owns one K/V allocation per layer of
//! `n_blocks * block_size` slots of the cache that layer reads, and reads and writes it
//! at the slots handed out here.
//! (The split follows llama.cpp's `llama-kv-cells.h`: bookkeeping apart from storage,
//! preconditions stated and checked.)
//!
//! - [`BlockPool`]: `n_blocks` blocks of `block_size` token slots, a free list and a
//!   reference count per block. A block shared by several sequences (a forked prompt)
//!   has one reference per block table naming it.
//! - [`KvCache`]: the pool plus a [`SequenceTable`] for each sequence id
//!   `0..n_seq_max`: the sequence's blocks in order and the position held in each slot.
//! - [`WindowCache`]: a second `KvCache` for a model's sliding-window layers (Gemma 3's
//!   local layers), which drops the tokens no later token can see, so that it holds
//!   about `window` plus a margin of tokens a sequence (llama.cpp's SWA cache).
//! - [`KvCaches`]: a context's caches, the full one and the window one where the model
//!   has window layers, changed together by every sequence operation.
//!
//! Design decisions:
//!
//! - Positions. A sequence stores its tokens in append order, and positions must strictly
//!   increase within a sequence (gaps allowed). So slot order is position order: the
//!   ordered (position, slot) list attention needs is one walk over the table
//!   ([`SequenceTable::live_tokens`]), and `pos_max` is the last slot's position. The
//!   three common edits all fit: append at the end; roll back a suffix (`remove(seq, p,
//!   -1)`: the freed slots of the tail block are reused by the next append); fork a prefix
//!   (`copy_seq`). Removing a middle range, as llama.cpp allows, leaves holes: the other
//!   tokens keep their positions and slots, blocks left without a token return to the
//!   pool, and the holes in partly emptied blocks are not refilled.
//! - Empty slots read as position [`EMPTY_SLOT`] (`i32::MAX`), above every real position,
//!   so a kernel that walks `block_table` and `slot_positions` masks holes with the
//!   causal test `key_pos <= query_pos` it already does.
//! - Copy-on-write. `copy_seq` shares blocks (reference count + 1) and copies no K/V.
//!   Tokens are only ever written into a sequence's tail block; when that block is
//!   shared, the writer first swaps in a fresh block and the append's [`KvWritePlan`]
//!   lists the block copy the storage must perform before writing. `copy_seq` replaces
//!   the destination's contents (as llama.cpp does when sequences live in separate
//!   streams), so it never needs a free block and cannot fail for lack of room.
//! - All or nothing. An append checks every token and counts exactly the free blocks it
//!   needs (new blocks and copy-on-write blocks) before changing anything; too few gives
//!   [`Error::ContextFull`](crate::Error::ContextFull) with the cache untouched. A batch
//!   spanning several sequences is one append, as `rf_decode` promises.
//! - Undo instead of snapshots. A step's append happens before its forward pass; when
//!   the pass fails, [`KvCache::undo_append`] takes the append back exactly (free-list
//!   order and copy-on-write swaps included) from what the [`KvWritePlan`] recorded, so
//!   the decode path never clones the bookkeeping.
//! - Caller errors (a sequence id out of range, a position that does not increase) are
//!   `Err` values. The pool's own preconditions (allocate only when a block is free,
//!   release only a block in use) can only fail through a bookkeeping bug; they are
//!   asserted, because going on would give one slot to two sequences and silently mix
//!   their K/V.
//! - Speed of the decode step: appends write into a caller-owned, reused [`KvWritePlan`],
//!   and reading a sequence borrows slices or an iterator; nothing allocates per token.
//! - Sliding windows. A model whose local layers see the last `window` positions keeps
//!   those layers' K/V in a [`WindowCache`] of its own blocks, sized from the window, a
//!   margin for rollbacks (the batch size) and the batch per sequence, not from the
//!   context. Both caches get the same appends, removals, copies and shifts, so they hold
//!   one sequence each; after a step the window cache drops every position up to
//!   `pos_max - window - margin`, which no later token sees, nor one after a rollback of
//!   up to `margin` positions. What it dropped is one number a sequence (see
//!   `window.rs`), and a step whose tokens would see a dropped position (after a longer
//!   rollback) is refused, never attended without those keys. Undo stays exact: pruning
//!   runs only after a step succeeded, so an undone append has pruned nothing.

mod append;
mod block_pool;
mod cache;
mod caches;
mod live_tokens;
mod sequence_table;
mod shift;
mod undo;
mod window;
mod write_plan;

pub use block_pool::{BlockId, BlockPool, PoolStats};
pub use cache::{KvCache, MAX_SEQUENCES};
pub use caches::{KvCaches, KvWritePlans, ShiftTokens};
pub use live_tokens::{LiveTokens, TokenSlot};
pub use sequence_table::{EMPTY_SLOT, SequenceTable};
pub use window::WindowCache;
pub use write_plan::{BlockCopy, KvWritePlan};
