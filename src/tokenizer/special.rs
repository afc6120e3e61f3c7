//! Finding special tokens written in the text, before any splitting. llama.cpp takes the
//! special tokens longest first, and cuts every occurrence of each (left to right, never
//! overlapping text already cut) out of the remaining text. Here the occurrences come
//! from one pass over a byte trie, and the cuts are made in that same priority order.

use std::ops::Range;

use rustc_hash::FxHashMap;

use super::strip::{Strip, is_c_space};
use super::token_type::TokenType;
use super::vocab::{TokenId, Vocab};

/// Which control tokens written in a text become their ids (user-defined tokens always
/// do, as in llama.cpp).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ControlText<'a> {
    /// None: the text is read as written.
    Plain,
    /// Every one.
    Parsed,
    /// Every one that overlaps none of these byte ranges (sorted, disjoint): the text is
    /// markup around stretches somebody else wrote, which stay plain.
    ParsedOutside(&'a [Range<usize>]),
}

impl ControlText<'_> {
    /// Whether a control token written at `at` becomes its id.
    fn parses(&self, at: Range<usize>) -> bool {
        match self {
            ControlText::Plain => false,
            ControlText::Parsed => true,
            ControlText::ParsedOutside(plain) => {
                let first_after = plain.partition_point(|r| r.end <= at.start);
                plain.get(first_after).is_none_or(|r| r.start >= at.end)
            }
        }
    }
}

/// A piece of the input: raw text, or a special token found in it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fragment {
    Text { start: usize, end: usize },
    Token(TokenId),
}

/// A special token; entries are numbered in llama.cpp's order: longer texts first, then
/// lower ids.
#[derive(Debug, Clone)]
struct Entry {
    id: TokenId,
    text: Box<[u8]>,
    /// Matched only with special parsing (control and unknown tokens).
    needs_parse_special: bool,
}

#[derive(Debug, Clone, Default)]
struct Node {
    /// Sorted by byte.
    children: Vec<(u8, u32)>,
    entry: Option<u32>,
}

/// All special token texts in a trie.
#[derive(Debug, Clone)]
pub struct SpecialMatcher {
    nodes: Vec<Node>,
    entries: Vec<Entry>,
    /// Which first bytes start some special token (a fast way past ordinary text).
    first_bytes: [bool; 256],
    /// The longest special token's length in bytes.
    longest: usize,
    /// The tokens that drop the whitespace beside them (most vocabularies have none).
    strips: FxHashMap<TokenId, Strip>,
}

impl SpecialMatcher {
    pub fn new(vocab: &Vocab, strips: FxHashMap<TokenId, Strip>) -> SpecialMatcher {
        let mut specials: Vec<(TokenId, &str, TokenType)> = vocab
            .iter()
            .filter(|(_, _, ty)| ty.is_matched_in_text())
            .collect();
        specials.sort_by(|a, b| b.1.len().cmp(&a.1.len()).then(a.0.cmp(&b.0)));
        let mut matcher = SpecialMatcher {
            nodes: vec![Node::default()],
            entries: Vec::with_capacity(specials.len()),
            first_bytes: [false; 256],
            longest: specials.first().map_or(0, |s| s.1.len()),
            strips,
        };
        for (id, text, ty) in specials {
            let entry = matcher.entries.len() as u32;
            matcher.entries.push(Entry {
                id,
                text: text.as_bytes().into(),
                needs_parse_special: ty != TokenType::UserDefined,
            });
            matcher.insert(text.as_bytes(), entry);
        }
        matcher
    }

    fn insert(&mut self, text: &[u8], entry: u32) {
        let Some(&first) = text.first() else {
            return;
        };
        self.first_bytes[usize::from(first)] = true;
        let mut node = 0usize;
        for &b in text {
            node = match self.nodes[node].children.binary_search_by_key(&b, |c| c.0) {
                Ok(i) => self.nodes[node].children[i].1 as usize,
                Err(i) => {
                    let child = self.nodes.len();
                    self.nodes.push(Node::default());
                    self.nodes[node].children.insert(i, (b, child as u32));
                    child
                }
            };
        }
        self.nodes[node].entry = Some(entry);
    }

    /// Whether some control token written in `text` starts before byte `at` and ends
    /// after it: cutting the text at `at` would split it.
    pub fn control_text_crosses(&self, text: &[u8], at: usize) -> bool {
        let first = at.saturating_sub(self.longest.saturating_sub(1));
        (first..at.min(text.len())).any(|start| {
            let mut node = 0;
            for (depth, &b) in text[start..].iter().enumerate() {
                let Some(next) = self.child(node, b) else {
                    return false;
                };
                node = next;
                let ends_after = start + depth + 1 > at;
                if ends_after
                    && self.nodes[node]
                        .entry
                        .is_some_and(|e| self.entries[e as usize].needs_parse_special)
                {
                    return true;
                }
            }
            false
        })
    }

    fn child(&self, node: usize, b: u8) -> Option<usize> {
        let children = &self.nodes[node].children;
        children
            .binary_search_by_key(&b, |c| c.0)
            .ok()
            .map(|i| children[i].1 as usize)
    }

    /// Cuts `text` into raw-text fragments and special tokens, in order.
    ///
    /// Occurrences are found with the trie and grouped into segments that no occurrence
    /// crosses; segments are independent, so each is cut on its own: for each token found
    /// in it (in priority order), left to right, every occurrence that overlaps nothing
    /// taken yet. Work and memory stay proportional to the segment, even where every
    /// position starts many matches (a long run of spaces in a vocabulary with a token
    /// for every run length).
    pub fn partition(&self, text: &[u8], control: ControlText<'_>, out: &mut Vec<Fragment>) {
        out.clear();
        let mut seg = Segment::default();
        // The segment (by its start) in which each entry was last recorded.
        let mut seen = vec![usize::MAX; self.entries.len()];
        let mut text_start = 0;
        let mut start = 0;
        while start < text.len() {
            let mut node = 0;
            if self.first_bytes[usize::from(text[start])] {
                for (depth, &b) in text[start..].iter().enumerate() {
                    let Some(next) = self.child(node, b) else {
                        break;
                    };
                    node = next;
                    let Some(e) = self.nodes[node].entry else {
                        continue;
                    };
                    let at = start..start + depth + 1;
                    if self.entries[e as usize].needs_parse_special && !control.parses(at) {
                        continue;
                    }
                    if seg.entries.is_empty() {
                        seg.start = start;
                    }
                    seg.end = seg.end.max(start + depth + 1);
                    if seen[e as usize] != seg.start {
                        seen[e as usize] = seg.start;
                        seg.entries.push(e);
                    }
                }
            }
            start += 1;
            if !seg.entries.is_empty() && start >= seg.end {
                text_start = self.cut_segment(text, control, &mut seg, text_start, out);
            }
        }
        if text_start < text.len() {
            out.push(Fragment::Text {
                start: text_start,
                end: text.len(),
            });
        }
    }

    /// Drops the whitespace beside the tokens of `out`, a [`partition`](Self::partition)
    /// of `text`, that strip it, and the text left empty (an empty stretch would still get
    /// SentencePiece's space prefix). llama.cpp strips as it cuts each token out, in
    /// priority order; stripping afterwards gives the same unless a special token of
    /// lower priority starts or ends with whitespace.
    pub fn strip_beside_tokens(&self, text: &[u8], out: &mut Vec<Fragment>) {
        if self.strips.is_empty() {
            return;
        }
        for i in 0..out.len() {
            let Fragment::Token(id) = out[i] else {
                continue;
            };
            let Some(strip) = self.strips.get(&id) else {
                continue;
            };
            if let (true, Some(Fragment::Text { start, end })) =
                (strip.left, i.checked_sub(1).and_then(|j| out.get_mut(j)))
            {
                while *end > *start && is_c_space(text[*end - 1]) {
                    *end -= 1;
                }
            }
            if let (true, Some(Fragment::Text { start, end })) = (strip.right, out.get_mut(i + 1)) {
                while *start < *end && is_c_space(text[*start]) {
                    *start += 1;
                }
            }
        }
        out.retain(|f| !matches!(f, Fragment::Text { start, end } if start == end));
    }

    /// Cuts one segment; returns where the raw text after it starts.
    fn cut_segment(
        &self,
        text: &[u8],
        control: ControlText<'_>,
        seg: &mut Segment,
        text_start: usize,
        out: &mut Vec<Fragment>,
    ) -> usize {
        // Entries are numbered in priority order.
        seg.entries.sort_unstable();
        let span = seg.start..seg.end;
        seg.taken.clear();
        seg.taken.resize(span.len(), false);
        seg.accepted.clear();
        for &e in &seg.entries {
            let entry = &self.entries[e as usize];
            let mut i = span.start;
            while i + entry.text.len() <= span.end {
                let local = i - span.start;
                let here = local..local + entry.text.len();
                if !seg.taken[local]
                    && text[i..].starts_with(&entry.text)
                    && !seg.taken[here.clone()].contains(&true)
                    && (!entry.needs_parse_special || control.parses(i..i + entry.text.len()))
                {
                    seg.taken[here].fill(true);
                    seg.accepted.push((i, entry.text.len(), entry.id));
                    i += entry.text.len();
                } else {
                    i += 1;
                }
            }
        }
        seg.accepted.sort_unstable_by_key(|a| a.0);
        let mut pos = text_start;
        for &(start, len, id) in &seg.accepted {
            if start > pos {
                out.push(Fragment::Text {
                    start: pos,
                    end: start,
                });
            }
            out.push(Fragment::Token(id));
            pos = start + len;
        }
        seg.entries.clear();
        seg.end = 0;
        pos
    }
}

/// Occurrences that overlap one another, directly or through others.
#[derive(Debug, Default)]
struct Segment {
    start: usize,
    end: usize,
    /// The entries that occur in the segment, each once.
    entries: Vec<u32>,
    taken: Vec<bool>,
    accepted: Vec<(usize, usize, TokenId)>,
}
