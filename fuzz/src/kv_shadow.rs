//! What the KV cache must hold after each operation, worked out independently of the
//! library: per sequence, the positions it holds, each with a fingerprint of what its K/V
//! was computed from (its token, its position, and the fingerprints of the entries its
//! sequence held when it was decoded, which it attended to).
//!
//! Two entries with equal fingerprints were computed from the same inputs, so the logits
//! decoded at them must agree: a fork decoding the token its source decoded, or a
//! rollback decoding again what it removed, must give the logits the first decode gave.

use std::collections::BTreeMap;
use std::hash::{DefaultHasher, Hash, Hasher};

/// Positions must stay below this (the library's empty-slot marker).
const POSITION_LIMIT: i64 = i32::MAX as i64;

/// One token of an accepted batch: its sequence, position and fingerprint.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Placed {
    pub seq: usize,
    pub position: i32,
    pub fingerprint: u64,
}

#[derive(Clone, Debug)]
pub struct Shadow {
    /// Per sequence: position -> fingerprint.
    seqs: Vec<BTreeMap<i32, u64>>,
}

impl Shadow {
    pub fn new(n_seq_max: usize) -> Shadow {
        Shadow {
            seqs: vec![BTreeMap::new(); n_seq_max],
        }
    }

    pub fn n_seq_max(&self) -> usize {
        self.seqs.len()
    }

    /// The highest position `seq` holds, or -1.
    pub fn pos_max(&self, seq: usize) -> i32 {
        self.seqs[seq].keys().next_back().copied().unwrap_or(-1)
    }

    pub fn len(&self, seq: usize) -> usize {
        self.seqs[seq].len()
    }

    pub fn is_empty(&self) -> bool {
        self.seqs.iter().all(BTreeMap::is_empty)
    }

    fn seq_index(&self, seq: i32) -> Option<usize> {
        usize::try_from(seq).ok().filter(|&s| s < self.seqs.len())
    }

    /// Where a batch's tokens go, or why the cache must refuse it: a sequence id outside
    /// `0..n_seq_max`, or a position that is not above its sequence's last one (in the
    /// cache or earlier in the batch) or not below the empty-slot marker. `positions`
    /// `None`: each after its sequence's last. Token ids are not the cache's business (see
    /// [`bad_token`]).
    pub fn place(
        &self,
        tokens: &[i32],
        seq_ids: &[i32],
        positions: Option<&[i32]>,
    ) -> Result<Vec<Placed>, String> {
        let mut last: Vec<i64> = (0..self.seqs.len())
            .map(|s| i64::from(self.pos_max(s)))
            .collect();
        let mut held = self.seqs.clone();
        let mut placed = Vec::with_capacity(tokens.len());
        for (i, (&token, &seq_id)) in tokens.iter().zip(seq_ids).enumerate() {
            let seq = self
                .seq_index(seq_id)
                .ok_or_else(|| format!("token {i}: sequence id {seq_id} is out of range"))?;
            let position = match positions {
                Some(p) => i64::from(p[i]),
                None => last[seq] + 1,
            };
            if position <= last[seq] || position >= POSITION_LIMIT {
                return Err(format!(
                    "token {i}: position {position} of sequence {seq} is not in {}..{POSITION_LIMIT}",
                    last[seq] + 1
                ));
            }
            last[seq] = position;
            let position = position as i32;
            let fingerprint = fingerprint(token, position, &held[seq]);
            held[seq].insert(position, fingerprint);
            placed.push(Placed {
                seq,
                position,
                fingerprint,
            });
        }
        Ok(placed)
    }

    /// Records an accepted batch.
    pub fn append(&mut self, placed: &[Placed]) {
        for p in placed {
            self.seqs[p.seq].insert(p.position, p.fingerprint);
        }
    }

    /// `rf_seq_remove`'s effect; false when the library must refuse the sequence id.
    pub fn remove(&mut self, seq: i32, p0: i32, p1: i32) -> bool {
        let Some(seq) = self.seq_index(seq) else {
            return false;
        };
        let (start, end) = range(p0, p1);
        self.seqs[seq].retain(|&p, _| !(start..end).contains(&p));
        true
    }

    /// `rf_seq_copy`'s effect: `dst` holds exactly `src`'s entries in the range (nothing
    /// changes when they are the same sequence); false when an id must be refused.
    pub fn copy(&mut self, src: i32, dst: i32, p0: i32, p1: i32) -> bool {
        let (Some(src), Some(dst)) = (self.seq_index(src), self.seq_index(dst)) else {
            return false;
        };
        if src != dst {
            let (start, end) = range(p0, p1);
            self.seqs[dst] = self.seqs[src]
                .iter()
                .filter(|(p, _)| (start..end).contains(*p))
                .map(|(&p, &f)| (p, f))
                .collect();
        }
        true
    }
}

/// The first token id outside `0..n_vocab`, described. The library finds it only after the
/// cache has taken the batch (and then takes it back), so a batch with such a token may
/// also be refused for want of room.
pub fn bad_token(tokens: &[i32], n_vocab: usize) -> Option<String> {
    let (i, token) = tokens
        .iter()
        .enumerate()
        .find(|(_, t)| usize::try_from(**t).map_or(true, |t| t >= n_vocab))?;
    Some(format!(
        "token {i}: id {token} is outside the vocabulary of {n_vocab}"
    ))
}

/// llama.cpp's range convention: `p0 < 0` from the first position, `p1 < 0` to the last.
fn range(p0: i32, p1: i32) -> (i32, i32) {
    (p0.max(0), if p1 < 0 { i32::MAX } else { p1 })
}

fn fingerprint(token: i32, position: i32, context: &BTreeMap<i32, u64>) -> u64 {
    let mut h = DefaultHasher::new();
    (token, position).hash(&mut h);
    for entry in context {
        entry.hash(&mut h);
    }
    h.finish()
}
