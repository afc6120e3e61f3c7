//! Byte-level BPE merging: within one word, repeatedly merge the adjacent pair with the
//! lowest merge rank (the leftmost among equals), as llama.cpp's priority queue does. A
//! heap of candidate pairs with lazy invalidation makes a word of n bytes O(n log n).

use std::cmp::Reverse;
use std::collections::BinaryHeap;

use rustc_hash::FxHashMap;

use super::byte_level::byte_to_char;
use super::vocab::Vocab;
use crate::error::{Error, Result};

/// The merge list as a map from a pair of token ids to its rank and result.
#[derive(Debug, Clone)]
pub struct MergeTable {
    pairs: FxHashMap<u64, Merge>,
    /// The token for each raw byte: the byte-level character that stands for it.
    byte_tokens: [Option<u32>; 256],
}

#[derive(Debug, Clone, Copy)]
struct Merge {
    rank: u32,
    result: u32,
}

fn pair_key(left: u32, right: u32) -> u64 {
    (u64::from(left) << 32) | u64::from(right)
}

impl MergeTable {
    /// Reads `"left right"` merges. Every merge must name two tokens whose concatenation
    /// is a token too; a repeated pair keeps its first (best) rank, as llama.cpp does.
    pub fn new(vocab: &Vocab, merges: &[String]) -> Result<MergeTable> {
        let mut pairs = FxHashMap::default();
        pairs.reserve(merges.len());
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
            let result = id(&format!("{left}{right}"))?;
            let rank = u32::try_from(rank).map_err(|_| bad("too many merges"))?;
            pairs
                .entry(pair_key(l, r))
                .or_insert(Merge { rank, result });
        }
        let mut byte_tokens = [None; 256];
        for (b, slot) in byte_tokens.iter_mut().enumerate() {
            let mut buf = [0u8; 4];
            let text = byte_to_char(b as u8).encode_utf8(&mut buf);
            *slot = vocab.id_of(text.as_bytes());
        }
        Ok(MergeTable { pairs, byte_tokens })
    }

    fn merge(&self, left: u32, right: u32) -> Option<Merge> {
        self.pairs.get(&pair_key(left, right)).copied()
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

impl MergeTable {
    /// Appends the tokens of `word` (raw bytes) to `out`. Bytes whose byte-level
    /// character is not a token are dropped, as llama.cpp drops them.
    pub fn encode_word(&self, word: &[u8], scratch: &mut BpeScratch, out: &mut Vec<u32>) {
        if let [b] = word {
            out.extend(self.byte_tokens[usize::from(*b)]);
            return;
        }
        let s = scratch;
        s.ids.clear();
        s.next.clear();
        s.prev.clear();
        s.alive.clear();
        s.heap.clear();
        // Symbols without a token cannot take part in a merge: keep them as dead ends so
        // that pairs never form across them.
        for (i, &b) in word.iter().enumerate() {
            s.ids
                .push(self.byte_tokens[usize::from(b)].unwrap_or(u32::MAX));
            s.prev.push(if i == 0 { NONE } else { i - 1 });
            s.next.push(if i + 1 == word.len() { NONE } else { i + 1 });
            s.alive.push(true);
        }
        for i in 1..word.len() {
            self.push_candidate(s, i - 1, i);
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
                self.push_candidate(s, s.prev[c.left], c.left);
            }
            if after != NONE {
                self.push_candidate(s, c.left, after);
            }
        }
        let mut i = 0;
        while i != NONE {
            if s.ids[i] != u32::MAX {
                out.push(s.ids[i]);
            }
            i = s.next[i];
        }
    }

    fn push_candidate(&self, s: &mut BpeScratch, left: usize, right: usize) {
        let (left_id, right_id) = (s.ids[left], s.ids[right]);
        if left_id == u32::MAX || right_id == u32::MAX {
            return;
        }
        if let Some(m) = self.merge(left_id, right_id) {
            s.heap.push(Reverse(Candidate {
                rank: m.rank,
                left,
                right,
                left_id,
                right_id,
                result: m.result,
            }));
        }
    }
}
