//! Unicode character classes as llama.cpp's pre-tokenizers see them: one general-category
//! class per code point (letter, number, punctuation, ...) plus a whitespace bit, and the
//! one-to-one lowercase and NFD maps of WordPiece's normalizer.
//!
//! Token-exact parity needs the same Unicode version as the reference: llama.cpp's tables
//! are Unicode 15.1. The category crate is pinned to its Unicode 15.0 release and the
//! three ranges that 15.1 assigned are added here.

use unicode_general_category::{GeneralCategory as G, get_general_category};

/// The classes of one code point. `NONE` (all bits clear) stands for "outside the text",
/// which the scanners use as their end-of-chunk sentinel: every real code point has a
/// category bit set, unassigned ones included.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Flags(u8);

impl Flags {
    pub const NONE: Flags = Flags(0);
    const UNDEFINED: u8 = 1 << 0;
    const NUMBER: u8 = 1 << 1;
    const LETTER: u8 = 1 << 2;
    const SEPARATOR: u8 = 1 << 3;
    const MARK: u8 = 1 << 4;
    const PUNCTUATION: u8 = 1 << 5;
    const SYMBOL: u8 = 1 << 6;
    const CONTROL: u8 = 1 << 7;
    /// Every category bit; a code point inside the text has exactly one of them.
    const CATEGORY_BITS: u8 = 0xff;

    pub fn is_letter(self) -> bool {
        self.0 & Self::LETTER != 0
    }

    pub fn is_mark(self) -> bool {
        self.0 & Self::MARK != 0
    }

    pub fn is_number(self) -> bool {
        self.0 & Self::NUMBER != 0
    }

    pub fn is_punctuation(self) -> bool {
        self.0 & Self::PUNCTUATION != 0
    }

    pub fn is_symbol(self) -> bool {
        self.0 & Self::SYMBOL != 0
    }

    pub fn is_control(self) -> bool {
        self.0 & Self::CONTROL != 0
    }

    pub fn is_present(self) -> bool {
        self.0 & Self::CATEGORY_BITS != 0
    }
}

/// A code point's classes together with its whitespace bit.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CharClass {
    pub flags: Flags,
    pub whitespace: bool,
}

impl CharClass {
    /// The class of a position past the end of the current chunk.
    pub const OUTSIDE: CharClass = CharClass {
        flags: Flags::NONE,
        whitespace: false,
    };

    pub fn is_letter(self) -> bool {
        self.flags.is_letter()
    }

    pub fn is_number(self) -> bool {
        self.flags.is_number()
    }

    pub fn is_whitespace(self) -> bool {
        self.whitespace
    }

    /// Inside the chunk (the scanners' `flags.as_uint() != 0`).
    pub fn is_present(self) -> bool {
        self.flags.is_present()
    }

    /// `[^\s\p{L}\p{N}]` for a position inside the chunk.
    pub fn is_other(self) -> bool {
        self.is_present() && !self.whitespace && !self.is_letter() && !self.is_number()
    }
}

/// The class of `c`. ASCII comes from a table; the rest from the category tables.
#[inline]
pub fn class_of(c: char) -> CharClass {
    let cp = c as u32;
    if cp < 128 {
        return ASCII_CLASSES[cp as usize];
    }
    CharClass {
        flags: Flags(category_bits(c)),
        whitespace: is_unicode_whitespace(cp),
    }
}

/// The White_Space code points, the set llama.cpp treats as `\s`.
fn is_unicode_whitespace(cp: u32) -> bool {
    matches!(
        cp,
        0x09..=0x0D
            | 0x20
            | 0x85
            | 0xA0
            | 0x1680
            | 0x2000..=0x200A
            | 0x2028
            | 0x2029
            | 0x202F
            | 0x205F
            | 0x3000
    )
}

fn category_bits(c: char) -> u8 {
    // Assigned in Unicode 15.1: CJK Extension I and five ideographic description
    // characters.
    match c as u32 {
        0x2EBF0..=0x2EE5D => return Flags::LETTER,
        0x2FFC..=0x2FFF | 0x31EF => return Flags::SYMBOL,
        _ => {}
    }
    match get_general_category(c) {
        G::Unassigned => Flags::UNDEFINED,
        G::Control | G::Format | G::PrivateUse | G::Surrogate => Flags::CONTROL,
        G::LowercaseLetter
        | G::ModifierLetter
        | G::OtherLetter
        | G::TitlecaseLetter
        | G::UppercaseLetter => Flags::LETTER,
        G::SpacingMark | G::EnclosingMark | G::NonspacingMark => Flags::MARK,
        G::DecimalNumber | G::LetterNumber | G::OtherNumber => Flags::NUMBER,
        G::ConnectorPunctuation
        | G::DashPunctuation
        | G::ClosePunctuation
        | G::FinalPunctuation
        | G::InitialPunctuation
        | G::OtherPunctuation
        | G::OpenPunctuation => Flags::PUNCTUATION,
        G::CurrencySymbol | G::ModifierSymbol | G::MathSymbol | G::OtherSymbol => Flags::SYMBOL,
        G::LineSeparator | G::ParagraphSeparator | G::SpaceSeparator => Flags::SEPARATOR,
    }
}

/// llama.cpp's `unicode_tolower`: UnicodeData's simple lowercase mapping, one code point
/// to one. std knows a newer Unicode than llama.cpp's 15.1 tables, so what those leave
/// unassigned keeps its case; for the rest std agrees, except that its full mapping
/// writes U+0130 as "i\u{307}", which starts with the simple mapping.
pub fn to_lower(c: char) -> char {
    if c.is_ascii() {
        return c.to_ascii_lowercase();
    }
    if category_bits(c) == Flags::UNDEFINED {
        return c;
    }
    c.to_lowercase().next().unwrap_or(c)
}

/// llama.cpp's NFD, which maps each code point to one: the first code point of its
/// canonical decomposition (so "é" becomes "e" and its accent is gone, and a Hangul
/// syllable becomes its leading consonant). Only what Unicode 15.1 assigns decomposes;
/// decompositions of assigned characters never change between versions.
pub fn nfd_first(c: char) -> char {
    if c.is_ascii() || category_bits(c) == Flags::UNDEFINED {
        return c;
    }
    let mut first = None;
    unicode_normalization::char::decompose_canonical(c, |d| {
        first.get_or_insert(d);
    });
    first.unwrap_or(c)
}

const fn ascii_class(b: u8) -> CharClass {
    let flags = match b {
        b'0'..=b'9' => Flags::NUMBER,
        b'A'..=b'Z' | b'a'..=b'z' => Flags::LETTER,
        b' ' => Flags::SEPARATOR,
        b'$' | b'+' | b'<' | b'=' | b'>' | b'^' | b'`' | b'|' | b'~' => Flags::SYMBOL,
        0..=0x1f | 0x7f => Flags::CONTROL,
        _ => Flags::PUNCTUATION,
    };
    CharClass {
        flags: Flags(flags),
        whitespace: matches!(b, 0x09..=0x0D | 0x20),
    }
}

const ASCII_CLASSES: [CharClass; 128] = {
    let mut table = [CharClass::OUTSIDE; 128];
    let mut i = 0;
    while i < 128 {
        table[i] = ascii_class(i as u8);
        i += 1;
    }
    table
};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ascii_table_agrees_with_the_category_tables() {
        for b in 0u8..128 {
            let c = char::from(b);
            assert_eq!(
                ASCII_CLASSES[b as usize].flags,
                Flags(category_bits(c)),
                "{b:#x}"
            );
        }
    }

    #[test]
    fn classes() {
        assert!(class_of('é').is_letter());
        assert!(class_of('²').is_number());
        assert!(class_of('\u{3000}').is_whitespace());
        assert!(class_of('\u{85}').is_whitespace());
        assert!(!class_of('\u{200B}').is_whitespace());
        assert!(class_of('—').is_other());
        assert!(class_of('\u{2EBF0}').is_letter());
        assert!(class_of('\u{378}').is_present());
        assert!(!CharClass::OUTSIDE.is_present());
    }

    #[test]
    fn one_to_one_case_and_decomposition() {
        assert_eq!(to_lower('Ä'), 'ä');
        assert_eq!(to_lower('\u{130}'), 'i');
        assert_eq!(to_lower('Σ'), 'σ');
        // Unicode 16 gave U+1C89 a lowercase; llama.cpp's 15.1 tables do not have it.
        assert_eq!(to_lower('\u{1C89}'), '\u{1C89}');
        assert_eq!(nfd_first('é'), 'e');
        assert_eq!(nfd_first('\u{212B}'), 'A');
        assert_eq!(nfd_first('\u{AC00}'), '\u{1100}');
        assert_eq!(nfd_first('\u{1E09}'), 'c');
        assert_eq!(nfd_first('x'), 'x');
    }
}
