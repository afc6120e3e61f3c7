//! Every token's text in one string, and the index from a text to its id.
//!
//! A vocabulary has tens or hundreds of thousands of short texts. Kept as one allocation
//! each, with a map that owned a second copy of each as its key, loading a model made two
//! small allocations per token, and where the map's table landed among them decided
//! whether a host that loads and frees models in a loop saw its resident size settle
//! (issue 18: c_examples' test_cycles). Here the texts share one allocation and the index
//! holds only ids, comparing against the text an id points to.

use std::hash::BuildHasher;

use hashbrown::HashTable;
use hashbrown::hash_table::Entry;
use rustc_hash::FxBuildHasher;

use super::vocab::TokenId;
use crate::error::{Error, Result};
use crate::host_memory;

#[derive(Debug, Clone, Default)]
pub struct TokenTexts {
    all: String,
    /// Token i's text ends at `ends[i]` in `all` and starts where token i - 1's ends.
    ends: Vec<usize>,
    /// Every id, found by the hash of its text.
    index: HashTable<TokenId>,
}

fn hash(text: &[u8]) -> u64 {
    FxBuildHasher.hash_one(text)
}

/// Token `id`'s text among `all` and `ends` (a function of the fields rather than a
/// method, so that the index's callbacks can read them while the index is borrowed).
fn text_of<'a>(all: &'a str, ends: &[usize], id: TokenId) -> Option<&'a str> {
    let i = id as usize;
    let end = *ends.get(i)?;
    let start = if i == 0 { 0 } else { ends[i - 1] };
    all.get(start..end)
}

/// The hash of token `id`'s text, for the index to place the id again when it grows.
fn rehash(all: &str, ends: &[usize], id: TokenId) -> u64 {
    hash(text_of(all, ends, id).unwrap_or_default().as_bytes())
}

impl TokenTexts {
    /// Room for `tokens` texts of `bytes` bytes in all.
    pub fn with_capacity(tokens: usize, bytes: usize) -> Result<TokenTexts> {
        let mut texts = TokenTexts::default();
        host_memory::reserve_text(&mut texts.all, bytes, "the vocabulary's token texts")?;
        host_memory::reserve(&mut texts.ends, tokens, "the vocabulary's token offsets")?;
        let (all, ends) = (&texts.all, &texts.ends);
        texts
            .index
            .try_reserve(tokens, |&id| rehash(all, ends, id))
            .map_err(|_| {
                Error::OutOfMemory(format!("the vocabulary's index of {tokens} tokens"))
            })?;
        Ok(texts)
    }

    /// Gives `text` the next id (the number of texts so far, which the caller keeps
    /// within `TokenId`). When a token already has that text nothing is added and its id
    /// is returned.
    pub fn push(&mut self, text: &str) -> Option<TokenId> {
        let (all, ends) = (&self.all, &self.ends);
        let entry = self.index.entry(
            hash(text.as_bytes()),
            |&id| text_of(all, ends, id) == Some(text),
            |&id| rehash(all, ends, id),
        );
        match entry {
            Entry::Occupied(first) => Some(*first.get()),
            Entry::Vacant(slot) => {
                slot.insert(self.ends.len() as TokenId);
                self.all.push_str(text);
                self.ends.push(self.all.len());
                None
            }
        }
    }

    pub fn len(&self) -> usize {
        self.ends.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ends.is_empty()
    }

    /// The text of `id`.
    pub fn get(&self, id: TokenId) -> Option<&str> {
        text_of(&self.all, &self.ends, id)
    }

    /// The token whose text is exactly `text`.
    #[inline]
    pub fn id_of(&self, text: &[u8]) -> Option<TokenId> {
        self.index
            .find(hash(text), |&id| {
                self.get(id).is_some_and(|t| t.as_bytes() == text)
            })
            .copied()
    }

    /// Every text, in id order.
    pub fn iter(&self) -> impl Iterator<Item = &str> + '_ {
        let mut start = 0;
        self.ends.iter().map(move |&end| {
            let text = self.all.get(start..end).unwrap_or_default();
            start = end;
            text
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn texts_and_ids_round_trip() {
        let mut texts = TokenTexts::with_capacity(2, 4).expect("room for two texts");
        // More texts than reserved: the index grows, rehashing from the stored texts.
        for (i, t) in ["a", "bc", "", "é", "bca", "ab"].iter().enumerate() {
            assert_eq!(texts.push(t), None);
            assert_eq!(texts.id_of(t.as_bytes()), Some(i as TokenId));
        }
        assert_eq!(texts.push("bc"), Some(1));
        assert_eq!(texts.len(), 6);
        assert_eq!(texts.get(3), Some("é"));
        assert_eq!(texts.get(6), None);
        assert_eq!(texts.id_of(b"b"), None);
        let all: Vec<&str> = texts.iter().collect();
        assert_eq!(all, ["a", "bc", "", "é", "bca", "ab"]);
    }
}
