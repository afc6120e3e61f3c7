//! What an append asks of the K/V storage, and how each token was placed so that the
//! append can be undone, in buffers reused from one call to the next so that a decode
//! step allocates nothing.

use super::block_pool::BlockId;

/// Copy all `block_size` slots of block `src` into block `dst`, in every layer's K and V.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BlockCopy {
    pub src: BlockId,
    pub dst: BlockId,
}

/// Filled by [`KvCache::append`](super::KvCache::append): perform every block copy
/// first, then write appended token `i`'s K and V into flat slot `slots()[i]`. The copies
/// come first because a copy's source may be a slot that this same append then
/// overwrites for another sequence.
///
/// The plan also records how each token was placed, so that
/// [`KvCache::undo_append`](super::KvCache::undo_append) can take the append back when
/// the forward pass that should have written it fails.
#[derive(Debug, Default)]
pub struct KvWritePlan {
    pub(super) slots: Vec<u32>,
    pub(super) block_copies: Vec<BlockCopy>,
    /// [n appended tokens] the sequence index and placement of each token, for the undo.
    pub(super) placed: Vec<PlacedToken>,
    /// Scratch for the capacity check, indexed by sequence id.
    pub(super) pending: Vec<Option<PendingAppend>>,
    /// Scratch for the capacity check: each existing tail block written by this append
    /// and how many sequences write into it.
    pub(super) tail_writers: Vec<(BlockId, u32)>,
}

impl KvWritePlan {
    pub fn new() -> Self {
        Self::default()
    }

    /// [n appended tokens] the flat slot (`block * block_size + offset`) of each token.
    pub fn slots(&self) -> &[u32] {
        &self.slots
    }

    /// The block copies to perform before writing any appended token.
    pub fn block_copies(&self) -> &[BlockCopy] {
        &self.block_copies
    }

    pub(super) fn clear(&mut self) {
        self.slots.clear();
        self.block_copies.clear();
        self.placed.clear();
        self.tail_writers.clear();
        self.pending.clear();
    }
}

/// A sequence as it will be once the tokens seen so far in an append are placed.
#[derive(Debug, Clone, Copy)]
pub(super) struct PendingAppend {
    pub pos_max: i32,
    /// Logical slots in use.
    pub len: usize,
    /// Whether the tail block is this sequence's alone (fresh, or already copied).
    pub tail_is_private: bool,
}

/// Where `SequenceTable::push_token` put a token: what taking it back must reverse.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Placement {
    /// Into the tail block, which the sequence held alone.
    InTail,
    /// Into a block taken from the pool for it, now the sequence's tail block.
    NewBlock,
    /// Into `copy.dst`, a private block swapped in for the shared tail block `copy.src`.
    CopiedTail(BlockCopy),
}

/// One appended token: the index of its sequence and how it was placed.
#[derive(Debug, Clone, Copy)]
pub(super) struct PlacedToken {
    pub seq_index: usize,
    pub placement: Placement,
}
