//! A text fragment decoded once into code points, their classes and byte offsets, so the
//! scanners can look ahead by code point and report splits as byte ranges.

use crate::error::Result;
use crate::host_memory::reserve;
use crate::tokenizer::unicode::{CharClass, class_of};

/// A run of code points `start..end` (indices into [`CodepointText`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Span {
    pub start: usize,
    pub end: usize,
}

impl Span {
    pub fn new(start: usize, end: usize) -> Span {
        Span { start, end }
    }

    pub fn is_empty(self) -> bool {
        self.start >= self.end
    }
}

/// The code points of one fragment. Reused between calls to keep its buffers.
#[derive(Debug, Default)]
pub struct CodepointText {
    chars: Vec<char>,
    classes: Vec<CharClass>,
    /// Byte offset of each code point, plus the text length at the end.
    offsets: Vec<usize>,
}

impl CodepointText {
    /// Decodes `text`, replacing what was loaded. Its buffers take 17 bytes a code point,
    /// allocated fallibly: a long text on a host short of memory is an `OutOfMemory`
    /// error, not an abort.
    pub fn load(&mut self, text: &str) -> Result<()> {
        self.chars.clear();
        self.classes.clear();
        self.offsets.clear();
        let n = text.chars().count();
        reserve(&mut self.chars, n, "the text's code points")?;
        reserve(&mut self.classes, n, "the text's character classes")?;
        reserve(&mut self.offsets, n + 1, "the text's code point offsets")?;
        for (offset, c) in text.char_indices() {
            self.chars.push(c);
            self.classes.push(class_of(c));
            self.offsets.push(offset);
        }
        self.offsets.push(text.len());
        Ok(())
    }

    pub fn len(&self) -> usize {
        self.chars.len()
    }

    pub fn is_empty(&self) -> bool {
        self.chars.is_empty()
    }

    /// The code point at `i`, or `None` when `i` is not inside `chunk`.
    #[inline]
    pub fn get_char(&self, i: usize, chunk: Span) -> Option<char> {
        (i < chunk.end && i >= chunk.start).then(|| self.chars[i])
    }

    /// The class at `i`, or [`CharClass::OUTSIDE`] when `i` is not inside `chunk`.
    #[inline]
    pub fn class_in(&self, i: usize, chunk: Span) -> CharClass {
        if i < chunk.end && i >= chunk.start {
            self.classes[i]
        } else {
            CharClass::OUTSIDE
        }
    }

    /// The byte range of `span` in the loaded text.
    pub fn byte_range(&self, span: Span) -> std::ops::Range<usize> {
        self.offsets[span.start]..self.offsets[span.end]
    }

    pub fn whole(&self) -> Span {
        Span::new(0, self.len())
    }
}
