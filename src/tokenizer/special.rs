//! Finding special tokens written in the text, before any splitting. llama.cpp takes the
//! special tokens longest first, and cuts every occurrence of each (left to right, never
//! overlapping text already cut) out of the remaining text. Here the occurrences come
//! from one pass that walks their sorted texts as a trie, and the cuts are made in that
//! same priority order.

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

/// All special token texts, found in a text by walking them as a trie.
#[derive(Debug, Clone)]
pub struct SpecialMatcher {
    entries: Vec<Entry>,
    /// The entries sorted by text, bytewise. The texts that start with a given prefix are
    /// a range of this list, so reading the text byte by byte narrows a range as walking
    /// down a trie would, in memory linear in the number of tokens and their bytes: a
    /// trie of nodes took some eighty bytes for each byte of the texts, gigabytes for a
    /// vocabulary of long user-defined tokens.
    sorted: Vec<Sorted>,
    /// The texts in `sorted`'s order, one after another (close together for the walk).
    sorted_texts: Vec<u8>,
    /// `sorted[by_first[b]..by_first[b + 1]]` are the texts that start with byte `b`.
    by_first: Vec<u32>,
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
            entries: Vec::with_capacity(specials.len()),
            sorted: Vec::with_capacity(specials.len()),
            sorted_texts: Vec::new(),
            by_first: Vec::new(),
            first_bytes: [false; 256],
            longest: specials.first().map_or(0, |s| s.1.len()),
            strips,
        };
        for (id, text, ty) in specials {
            // The vocabulary renames empty texts, so every text has a first byte.
            let Some(&first) = text.as_bytes().first() else {
                continue;
            };
            matcher.first_bytes[usize::from(first)] = true;
            matcher.entries.push(Entry {
                id,
                text: text.as_bytes().into(),
                needs_parse_special: ty != TokenType::UserDefined,
            });
        }
        let entries = &matcher.entries;
        let mut order: Vec<u32> = (0..entries.len() as u32).collect();
        order.sort_unstable_by(|&a, &b| entries[a as usize].text.cmp(&entries[b as usize].text));
        for e in order {
            let text = &entries[e as usize].text;
            matcher.sorted.push(Sorted {
                start: matcher.sorted_texts.len(),
                len: text.len(),
                entry: e,
            });
            matcher.sorted_texts.extend_from_slice(text);
        }
        matcher.by_first = (0..=256)
            .map(|b| {
                let texts = &matcher.sorted_texts;
                let starts_below = |s: &Sorted| usize::from(texts[s.start]) < b;
                matcher.sorted.partition_point(starts_below) as u32
            })
            .collect();
        matcher
    }

    /// Where a walk starts: every text, none of it read.
    fn root(&self) -> Walk {
        Walk {
            lo: 0,
            hi: self.sorted.len(),
            depth: 0,
        }
    }

    /// Reads `b`: false (the walk left as it was) where no text goes on with it. Always
    /// inlined into the scans: as a call per byte read it made a run of spaces in Gemma 3's
    /// vocabulary (a token for each run length) twice as slow.
    #[inline(always)]
    fn step(&self, walk: &mut Walk, b: u8) -> bool {
        let (lo, hi) = if walk.depth == 0 {
            let b = usize::from(b);
            (self.by_first[b] as usize, self.by_first[b + 1] as usize)
        } else {
            self.narrow(*walk, b)
        };
        if lo >= hi {
            return false;
        }
        *walk = Walk {
            lo,
            hi,
            depth: walk.depth + 1,
        };
        true
    }

    /// The part of the walk's range whose next byte is `b`. The texts in the range share
    /// the bytes read; a text that ends there sorts first (`None` is less than any byte),
    /// the others in the order of their next byte. Mostly at most one text ends and the
    /// rest go on alike (a run of spaces), which the checks at the ends find at once.
    #[inline(always)]
    fn narrow(&self, walk: Walk, b: u8) -> (usize, usize) {
        let range = &self.sorted[walk.lo..walk.hi];
        let d = walk.depth;
        let next = |s: &Sorted| (d < s.len).then(|| self.sorted_texts[s.start + d]);
        if let [only] = range {
            return match next(only) == Some(b) {
                true => (walk.lo, walk.hi),
                false => (walk.lo, walk.lo),
            };
        }
        let below = |s: &Sorted| next(s) < Some(b);
        let lo = match range {
            [first, ..] if !below(first) => 0,
            [_, second, ..] if !below(second) => 1,
            _ => range.partition_point(below),
        };
        let hi = match range.last() {
            Some(last) if next(last) == Some(b) => range.len(),
            _ => lo + range[lo..].partition_point(|s| next(s) == Some(b)),
        };
        (walk.lo + lo, walk.lo + hi)
    }

    /// The entry whose whole text the walk has read, if any: it sorts first in the range.
    #[inline]
    fn ended(&self, walk: Walk) -> Option<u32> {
        let first = self.sorted[walk.lo..walk.hi].first()?;
        (first.len == walk.depth).then_some(first.entry)
    }

    /// Whether some control token written in `text` starts before byte `at` and ends
    /// after it: cutting the text at `at` would split it.
    pub fn control_text_crosses(&self, text: &[u8], at: usize) -> bool {
        let first = at.saturating_sub(self.longest.saturating_sub(1));
        (first..at.min(text.len())).any(|start| {
            let mut walk = self.root();
            for (depth, &b) in text[start..].iter().enumerate() {
                if !self.step(&mut walk, b) {
                    return false;
                }
                let ends_after = start + depth + 1 > at;
                if ends_after
                    && self
                        .ended(walk)
                        .is_some_and(|e| self.entries[e as usize].needs_parse_special)
                {
                    return true;
                }
            }
            false
        })
    }

    /// Cuts `text` into raw-text fragments and special tokens, in order.
    ///
    /// Occurrences are found by walking the sorted texts and grouped into segments that no
    /// occurrence crosses; segments are independent, so each is cut on its own: for each
    /// token found in it (in priority order), left to right, every occurrence that
    /// overlaps nothing taken yet. Work and memory stay proportional to the segment, even where every
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
            let mut walk = self.root();
            if self.first_bytes[usize::from(text[start])] {
                for (depth, &b) in text[start..].iter().enumerate() {
                    if !self.step(&mut walk, b) {
                        break;
                    }
                    let Some(e) = self.ended(walk) else {
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

/// A text in the sorted list: `sorted_texts[start..start + len]`, of entry `entry`.
#[derive(Clone, Copy, Debug)]
struct Sorted {
    start: usize,
    len: usize,
    entry: u32,
}

/// A walk down the sorted texts: `sorted[lo..hi]` are the entries whose texts start with
/// the `depth` bytes read.
#[derive(Clone, Copy, Debug)]
struct Walk {
    lo: usize,
    hi: usize,
    depth: usize,
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
