//! The simple splits that llama.cpp runs through `std::regex`: each regex match becomes a
//! piece of its own, and so does the text between two matches. Written here as scanners
//! that find the leftmost match, the way the regex engine searches.

use super::text::{CodepointText, Span};
use crate::tokenizer::unicode::CharClass;

/// A regex that these scanners stand in for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Pattern {
    /// `\p{N}`: every number character alone.
    EachNumber,
    /// `\p{N}+`.
    NumberRun,
    /// `[0-9][0-9][0-9]`: ASCII digits in threes, from the left.
    AsciiDigitTriple,
    /// `[\p{P}\$\+<=>\^~\|]+` (with a backtick too for Falcon).
    PunctuationRun { backtick: bool },
    /// `[\r\n]`.
    EachNewline,
    /// `\s?[class]+` for a class given by code point ranges.
    SpaceThenRun(&'static [(u32, u32)]),
    /// `\s?\p{L}+`.
    SpaceThenLetters,
    /// `\s?\p{P}+`.
    SpaceThenPunctuation,
    /// `\s+$`: whitespace that ends the piece.
    TrailingWhitespace,
    /// `[class]+` for a class given by code point ranges.
    Run(&'static [(u32, u32)]),
}

/// Splits `chunk` at the matches of `pattern`.
pub fn split(text: &CodepointText, chunk: Span, pattern: Pattern, emit: &mut dyn FnMut(Span)) {
    let mut from = chunk.start;
    let mut gap_start = chunk.start;
    while let Some(m) = find(text, chunk, from, pattern) {
        if m.start > gap_start {
            emit(Span::new(gap_start, m.start));
        }
        emit(m);
        gap_start = m.end;
        from = m.end;
    }
    if chunk.end > gap_start {
        emit(Span::new(gap_start, chunk.end));
    }
}

/// The leftmost match of `pattern` in `chunk` starting at or after `from`.
fn find(text: &CodepointText, chunk: Span, from: usize, pattern: Pattern) -> Option<Span> {
    match pattern {
        Pattern::EachNumber => single(text, chunk, from, |_, k| k.is_number()),
        Pattern::EachNewline => single(text, chunk, from, |c, _| matches!(c, '\r' | '\n')),
        Pattern::NumberRun => run(text, chunk, from, |_, k| k.is_number()),
        Pattern::PunctuationRun { backtick } => run(text, chunk, from, |c, k| {
            k.flags.is_punctuation()
                || matches!(c, '$' | '+' | '<' | '=' | '>' | '^' | '~' | '|')
                || (backtick && c == '`')
        }),
        Pattern::Run(ranges) => run(text, chunk, from, |c, k| in_ranges(c, k, ranges)),
        Pattern::AsciiDigitTriple => (from..chunk.end.saturating_sub(2))
            .find(|&i| {
                (i..i + 3).all(|j| text.get_char(j, chunk).is_some_and(|c| c.is_ascii_digit()))
            })
            .map(|i| Span::new(i, i + 3)),
        Pattern::SpaceThenRun(ranges) => {
            space_then_run(text, chunk, from, |c, k| in_ranges(c, k, ranges))
        }
        Pattern::SpaceThenLetters => space_then_run(text, chunk, from, |_, k| k.is_letter()),
        Pattern::SpaceThenPunctuation => {
            space_then_run(text, chunk, from, |_, k| k.flags.is_punctuation())
        }
        Pattern::TrailingWhitespace => {
            let mut start = chunk.end;
            while start > from && text.class_in(start - 1, chunk).is_whitespace() {
                start -= 1;
            }
            (start < chunk.end).then(|| Span::new(start, chunk.end))
        }
    }
}

/// The first match at or after `from` of `\s?` and a maximal run of characters that
/// `is_match`: a whitespace character joins the run that follows it.
fn space_then_run(
    text: &CodepointText,
    chunk: Span,
    from: usize,
    is_match: impl Fn(char, CharClass) -> bool,
) -> Option<Span> {
    let member = membership(text, chunk, is_match);
    (from..chunk.end)
        .find_map(|i| {
            if text.class_in(i, chunk).is_whitespace() && member(i + 1) {
                Some((i, i + 1))
            } else if member(i) {
                Some((i, i))
            } else {
                None
            }
        })
        .map(|(start, run_start)| Span::new(start, run_end(&member, run_start)))
}

/// Whether the character at a position of `chunk` (none past its end) `is_match`.
fn membership(
    text: &CodepointText,
    chunk: Span,
    is_match: impl Fn(char, CharClass) -> bool,
) -> impl Fn(usize) -> bool {
    move |i: usize| {
        text.get_char(i, chunk)
            .is_some_and(|c| is_match(c, text.class_in(i, chunk)))
    }
}

/// The end of the run of members that starts at `start`.
fn run_end(member: impl Fn(usize) -> bool, start: usize) -> usize {
    let mut end = start;
    while member(end) {
        end += 1;
    }
    end
}

/// The first single character at or after `from` that `is_match`.
fn single(
    text: &CodepointText,
    chunk: Span,
    from: usize,
    is_match: impl Fn(char, CharClass) -> bool,
) -> Option<Span> {
    let member = membership(text, chunk, is_match);
    (from..chunk.end)
        .find(|&i| member(i))
        .map(|i| Span::new(i, i + 1))
}

/// The first maximal run at or after `from` of characters that `is_match`.
fn run(
    text: &CodepointText,
    chunk: Span,
    from: usize,
    is_match: impl Fn(char, CharClass) -> bool,
) -> Option<Span> {
    let member = membership(text, chunk, is_match);
    let start = (from..chunk.end).find(|&i| member(i))?;
    Some(Span::new(start, run_end(&member, start)))
}

/// Membership in a class of code point ranges as `std::wregex` sees the text: llama.cpp
/// first replaces non-ASCII whitespace by U+000B, so such characters never match a range.
fn in_ranges(c: char, class: CharClass, ranges: &[(u32, u32)]) -> bool {
    let cp = c as u32;
    if cp > 0x7F && class.is_whitespace() {
        return false;
    }
    ranges.iter().any(|&(lo, hi)| lo <= cp && cp <= hi)
}
