//! The Llama 3 split (also Qwen 2's, which takes digits one at a time), hand-written as
//! llama.cpp does it:
//!
//! `(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+`
//!
//! Qwen 3.5's has `[\p{L}\p{M}]+` for the letter run and `[^\s\p{L}\p{M}\p{N}]+` for the
//! other run: combining marks join letters.

use super::gpt2::{Emitter, skip_while};
use super::text::{CodepointText, Span};
use crate::tokenizer::unicode::CharClass;

/// Splits `chunk`; numbers go in groups of at most `digit_group` digits (3 for Llama 3,
/// 1 for Qwen 2 and 3.5), combining marks count as letters with `marks_are_letters`.
pub fn split(
    text: &CodepointText,
    chunk: Span,
    digit_group: usize,
    marks_are_letters: bool,
    emit: &mut dyn FnMut(Span),
) {
    let letter = |k: CharClass| k.is_letter() || (marks_are_letters && k.flags.is_mark());
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

        // `[^\r\n\p{L}\p{N}]?\p{L}+`: one optional non-letter, non-number prefix.
        let newline = matches!(c, Some('\r' | '\n'));
        if !newline && !class.is_number() {
            let next_is_letter = letter(text.class_in(pos + 1, chunk));
            if letter(class) || next_is_letter {
                pos = skip_while(text, pos + 1, chunk, letter);
                words.cut(pos);
                continue;
            }
        }

        // `\p{N}{1,3}`: a number run cut every `digit_group` digits.
        if class.is_number() {
            let end = skip_while(text, pos, chunk, |k| k.is_number());
            while pos < end {
                pos = (pos + digit_group).min(end);
                words.cut(pos);
            }
            continue;
        }

        // ` ?[^\s\p{L}\p{N}]+[\r\n]*`. The lead class may lie past the chunk end (a lone
        // trailing space), which the reference also takes as a match.
        let space = c == Some(' ');
        let lead = if space {
            text.class_in(pos + 1, chunk)
        } else {
            class
        };
        if !lead.is_whitespace() && !letter(lead) && !lead.is_number() {
            let other = |k: CharClass| k.is_other() && !letter(k);
            pos = skip_while(text, pos + usize::from(space), chunk, other);
            while matches!(text.get_char(pos, chunk), Some('\r' | '\n')) {
                pos += 1;
            }
            words.cut(pos);
            continue;
        }

        // Whitespace: up to and including its last newline (`\s*[\r\n]+`), else all but
        // the last character when text follows (`\s+(?!\S)`), else all of it.
        let spaces_end = skip_while(text, pos, chunk, |k| k.is_whitespace());
        let last_newline = (pos..spaces_end)
            .rev()
            .find(|&i| matches!(text.get_char(i, chunk), Some('\r' | '\n')));
        if let Some(i) = last_newline {
            pos = i + 1;
            words.cut(pos);
            continue;
        }
        let spaces = spaces_end - pos;
        if spaces > 1 && spaces_end < chunk.end {
            pos += spaces - 1;
            words.cut(pos);
            continue;
        }
        if spaces > 0 {
            pos = spaces_end;
            words.cut(pos);
            continue;
        }
        pos += 1;
        words.cut(pos);
    }
}

/// `(?i:'s|'t|'re|'ve|'m|'ll|'d)` at `pos` (the apostrophe): its length. Only ASCII
/// letters lower-case to these, so ASCII case folding is exact.
fn contraction(text: &CodepointText, pos: usize, chunk: Span) -> Option<usize> {
    let next = text.get_char(pos + 1, chunk)?.to_ascii_lowercase();
    if matches!(next, 's' | 't' | 'm' | 'd') {
        return Some(2);
    }
    let after = text.get_char(pos + 2, chunk)?.to_ascii_lowercase();
    matches!((next, after), ('r', 'e') | ('v', 'e') | ('l', 'l')).then_some(3)
}
