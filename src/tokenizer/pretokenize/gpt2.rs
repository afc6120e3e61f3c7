//! The GPT-2 split, hand-written as llama.cpp does it:
//!
//! `'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+`
//!
//! Contractions are case-sensitive; a whitespace run followed by more text leaves its last
//! character to start the next word (so `"a  b"` splits as `"a"`, `" "`, `" b"`).

use super::text::{CodepointText, Span};

/// Splits `chunk` into GPT-2 words, passing each to `emit`.
pub fn split(text: &CodepointText, chunk: Span, emit: &mut dyn FnMut(Span)) {
    let mut words = Emitter::new(chunk.start, emit);
    let mut pos = chunk.start;
    while pos < chunk.end {
        let c = text.get_char(pos, chunk);
        let class = text.class_in(pos, chunk);

        if c == Some('\'') {
            if let Some(len) = contraction(text, pos, chunk) {
                pos += len;
                words.cut(pos);
                continue;
            }
        }

        // An optional single leading space before a letter, number or other run.
        let space = c == Some(' ');
        let lead = if space {
            text.class_in(pos + 1, chunk)
        } else {
            class
        };
        if lead.is_letter() {
            pos = skip_while(text, pos + usize::from(space), chunk, |k| k.is_letter());
            words.cut(pos);
            continue;
        }
        if lead.is_number() {
            pos = skip_while(text, pos + usize::from(space), chunk, |k| k.is_number());
            words.cut(pos);
            continue;
        }
        if lead.is_other() {
            pos = skip_while(text, pos + usize::from(space), chunk, |k| k.is_other());
            words.cut(pos);
            continue;
        }

        let spaces = skip_while(text, pos, chunk, |k| k.is_whitespace()) - pos;
        // `\s+(?!\S)`: when text follows, the last whitespace starts the next word.
        if spaces > 1 && pos + spaces < chunk.end {
            pos += spaces - 1;
            words.cut(pos);
            continue;
        }
        if spaces > 0 {
            pos += spaces;
            words.cut(pos);
            continue;
        }
        pos += 1;
        words.cut(pos);
    }
}

/// `'s|'t|'re|'ve|'m|'ll|'d` at `pos` (which holds the apostrophe): its length.
fn contraction(text: &CodepointText, pos: usize, chunk: Span) -> Option<usize> {
    let next = text.get_char(pos + 1, chunk)?;
    if matches!(next, 's' | 't' | 'm' | 'd') {
        return Some(2);
    }
    let after = text.get_char(pos + 2, chunk)?;
    matches!((next, after), ('r', 'e') | ('v', 'e') | ('l', 'l')).then_some(3)
}

/// The first position at or after `pos` whose class fails `keep` (or the chunk end).
pub fn skip_while(
    text: &CodepointText,
    mut pos: usize,
    chunk: Span,
    keep: impl Fn(crate::tokenizer::unicode::CharClass) -> bool,
) -> usize {
    while pos < chunk.end && keep(text.class_in(pos, chunk)) {
        pos += 1;
    }
    pos
}

/// Emits words that tile the chunk: each cut ends the word begun at the previous one.
pub struct Emitter<'e> {
    prev: usize,
    emit: &'e mut dyn FnMut(Span),
}

impl<'e> Emitter<'e> {
    pub fn new(start: usize, emit: &'e mut dyn FnMut(Span)) -> Emitter<'e> {
        Emitter { prev: start, emit }
    }

    pub fn cut(&mut self, end: usize) {
        if end > self.prev {
            (self.emit)(Span::new(self.prev, end));
            self.prev = end;
        }
    }
}
