//! BPE merging: within one word, repeatedly merge the adjacent pair with the lowest merge
//! rank (the leftmost among equals), as llama.cpp's priority queue does. A heap of
//! candidate pairs with lazy invalidation makes a word of n symbols O(n log n). Byte-level
//! BPE starts from one symbol per byte; Gemma 4 from one per character.

use std::cmp::Reverse;
use std::collections::BinaryHeap;

use rustc_hash::FxHashMap;

use super::byte_level::byte_to_char;
use super::byte_tokens::ByteTokens;
use super::vocab::Vocab;
use crate::error::{Error, Result};
use crate::host_memory;

/// The merge list as a map from a pair of token ids to its rank and result.
#[derive(Debug, Clone)]
pub struct MergeRanks {
    pairs: FxHashMap<u64, Merge>,
}

/// Byte-level BPE: the merges, and the token of each raw byte (the byte-level character
/// that stands for it) that merging starts from.
#[derive(Debug, Clone)]
pub struct MergeTable {
    ranks: MergeRanks,
    byte_tokens: ByteTokens,
}

#[derive(Debug, Clone, Copy)]
struct Merge {
    rank: u32,
    result: u32,
}

fn pair_key(left: u32, right: u32) -> u64 {
    (u64::from(left) << 32) | u64::from(right)
}

impl MergeRanks {
    /// Reads `"left right"` merges. Every merge must name two tokens whose concatenation
    /// is a token too; a repeated pair keeps its first (best) rank, as llama.cpp does.
    pub fn new(vocab: &Vocab, merges: &[String]) -> Result<MergeRanks> {
        let mut pairs = FxHashMap::default();
        pairs.reserve(merges.len());
        // The two texts joined, in one buffer for every merge rather than a string each.
        let mut joined = String::new();
        for (rank, merge) in merges.iter().enumerate() {
            let bad = |why: &str| Error::InvalidVocab(format!("merge {rank} ({merge:?}): {why}"));
            // The separator is the first space after the first character, so a pair may
            // start with a space (vocabularies that keep raw spaces).
            let split = merge
                .char_indices()
                .skip(1)
                .find(|&(_, c)| c == ' ')
                .map(|(i, _)| i)
                .ok_or_else(|| bad("no space separates the two tokens"))?;
            let (left, right) = (&merge[..split], &merge[split + 1..]);
            let id = |text: &str| {
                vocab
                    .id_of(text.as_bytes())
                    .ok_or_else(|| bad(&format!("{text:?} is not a token")))
            };
            let (l, r) = (id(left)?, id(right)?);
            joined.clear();
            joined.push_str(left);
            joined.push_str(right);
            let result = id(&joined)?;
            let rank = u32::try_from(rank).map_err(|_| bad("too many merges"))?;
            pairs
                .entry(pair_key(l, r))
                .or_insert(Merge { rank, result });
        }
        Ok(MergeRanks { pairs })
    }

    fn merge(&self, left: u32, right: u32) -> Option<Merge> {
        self.pairs.get(&pair_key(left, right)).copied()
    }
}

impl MergeTable {
    pub fn new(vocab: &Vocab, merges: &[String]) -> Result<MergeTable> {
        let byte_tokens = ByteTokens::new(|b| {
            let mut buf = [0u8; 4];
            vocab.id_of(byte_to_char(b).encode_utf8(&mut buf).as_bytes())
        });
        Ok(MergeTable {
            ranks: MergeRanks::new(vocab, merges)?,
            byte_tokens,
        })
    }
}

/// Reusable buffers for merging one word after another.
#[derive(Debug, Default)]
pub struct BpeScratch {
    ids: Vec<u32>,
    /// Index of the next live symbol; `usize::MAX` past the end.
    next: Vec<usize>,
    prev: Vec<usize>,
    alive: Vec<bool>,
    heap: BinaryHeap<Reverse<Candidate>>,
}

/// A pair that may be merged: ordered by rank, then by the left symbol's position.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct Candidate {
    rank: u32,
    left: usize,
    right: usize,
    left_id: u32,
    right_id: u32,
    result: u32,
}

const NONE: usize = usize::MAX;

impl BpeScratch {
    /// Empties the merge's buffers and makes room, fallibly, for a word of `n` symbols: a
    /// long word (a hostile text's run of letters) fails as out of memory, not an abort.
    /// The heap of candidates grows fallibly as they are pushed (`push_candidate`).
    fn reserve_merge(&mut self, n: usize) -> Result<()> {
        const WHAT: &str = "a word's BPE merge";
        self.next.clear();
        self.prev.clear();
        self.alive.clear();
        self.heap.clear();
        host_memory::reserve(&mut self.next, n, WHAT)?;
        host_memory::reserve(&mut self.prev, n, WHAT)?;
        host_memory::reserve(&mut self.alive, n, WHAT)
    }
}

impl MergeTable {
    /// Appends the tokens of `word`, which starts at `offset` in the caller's text, to
    /// `out`. A byte whose byte-level character is not a token is an error (llama.cpp
    /// drops it).
    pub fn encode_word(
        &self,
        word: &str,
        offset: usize,
        scratch: &mut BpeScratch,
        out: &mut Vec<u32>,
    ) -> Result<()> {
        scratch.ids.clear();
        // A character's symbols are at most its bytes.
        host_memory::reserve(&mut scratch.ids, word.len(), "a word's BPE symbols")?;
        for (start, c) in word.char_indices() {
            let ids = &mut scratch.ids;
            self.byte_tokens
                .each_of(c, |id| ids.push(id))
                .map_err(|missing| missing.in_text(c, offset + start))?;
        }
        self.ranks.merge_loaded(scratch, out)
    }
}

impl MergeRanks {
    /// Appends to `out` the tokens that merging the symbols `ids` gives.
    pub fn merge_symbols(
        &self,
        ids: &[u32],
        scratch: &mut BpeScratch,
        out: &mut Vec<u32>,
    ) -> Result<()> {
        scratch.ids.clear();
        host_memory::reserve(&mut scratch.ids, ids.len(), "a word's BPE symbols")?;
        scratch.ids.extend_from_slice(ids);
        self.merge_loaded(scratch, out)
    }

    fn merge_loaded(&self, s: &mut BpeScratch, out: &mut Vec<u32>) -> Result<()> {
        if let [id] = s.ids[..] {
            out.push(id);
            return Ok(());
        }
        let n = s.ids.len();
        s.reserve_merge(n)?;
        for i in 0..n {
            s.prev.push(if i == 0 { NONE } else { i - 1 });
            s.next.push(if i + 1 == n { NONE } else { i + 1 });
            s.alive.push(true);
        }
        for i in 1..n {
            self.push_candidate(s, i - 1, i)?;
        }
        while let Some(Reverse(c)) = s.heap.pop() {
            let stale = !s.alive[c.left]
                || !s.alive[c.right]
                || s.next[c.left] != c.right
                || s.ids[c.left] != c.left_id
                || s.ids[c.right] != c.right_id;
            if stale {
                continue;
            }
            s.ids[c.left] = c.result;
            s.alive[c.right] = false;
            let after = s.next[c.right];
            s.next[c.left] = after;
            if after != NONE {
                s.prev[after] = c.left;
            }
            if s.prev[c.left] != NONE {
                self.push_candidate(s, s.prev[c.left], c.left)?;
            }
            if after != NONE {
                self.push_candidate(s, c.left, after)?;
            }
        }
        let mut i = if n == 0 { NONE } else { 0 };
        while i != NONE {
            out.push(s.ids[i]);
            i = s.next[i];
        }
        Ok(())
    }

    fn push_candidate(&self, s: &mut BpeScratch, left: usize, right: usize) -> Result<()> {
        let (left_id, right_id) = (s.ids[left], s.ids[right]);
        let Some(m) = self.merge(left_id, right_id) else {
            return Ok(());
        };
        let candidate = Reverse(Candidate {
            rank: m.rank,
            left,
            right,
            left_id,
            right_id,
            result: m.result,
        });
        host_memory::push_heap(&mut s.heap, candidate, "a word's BPE merge")
    }
}
