//! GPT-2's byte-level alphabet: every byte is written as one printable character so that a
//! vocabulary of strings can hold arbitrary bytes. Printable Latin-1 bytes stand for
//! themselves; the other 68 take the code points from U+0100 up, in byte order.

/// The character that stands for `byte` in a byte-level vocabulary.
pub fn byte_to_char(byte: u8) -> char {
    BYTE_TO_CHAR[usize::from(byte)]
}

/// The byte that `c` stands for, or `None` when `c` is not in the alphabet.
pub fn char_to_byte(c: char) -> Option<u8> {
    let cp = c as u32;
    if cp < 256 && is_self_mapped(cp as u8) {
        return Some(cp as u8);
    }
    let n = cp.checked_sub(256)?;
    SHIFTED_BYTES.get(usize::try_from(n).ok()?).copied()
}

/// The bytes that are not self-mapped, in byte order: `SHIFTED_BYTES[n]` is written as
/// U+0100 + n.
const SHIFTED_BYTES: [u8; 68] = {
    let mut table = [0u8; 68];
    let mut n = 0;
    let mut b = 0usize;
    while b < 256 {
        if !is_self_mapped(b as u8) {
            table[n] = b as u8;
            n += 1;
        }
        b += 1;
    }
    table
};

/// Bytes that are printable Latin-1 characters (`!`..`~`, `¡`..`¬`, `®`..`ÿ`).
const fn is_self_mapped(b: u8) -> bool {
    matches!(b, 0x21..=0x7E | 0xA1..=0xAC | 0xAE..=0xFF)
}

const BYTE_TO_CHAR: [char; 256] = {
    let mut table = ['\0'; 256];
    let mut next_free = 256u32;
    let mut b = 0usize;
    while b < 256 {
        let cp = if is_self_mapped(b as u8) {
            b as u32
        } else {
            next_free += 1;
            next_free - 1
        };
        // Every value is at most 256 + 68, a valid scalar value.
        table[b] = match char::from_u32(cp) {
            Some(c) => c,
            None => '\0',
        };
        b += 1;
    }
    table
};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_characters() {
        assert_eq!(byte_to_char(b' '), 'Ġ');
        assert_eq!(byte_to_char(b'\n'), 'Ċ');
        assert_eq!(byte_to_char(b'a'), 'a');
        assert_eq!(byte_to_char(0xAD), 'Ń');
    }

    #[test]
    fn round_trip_every_byte() {
        for b in 0u8..=255 {
            assert_eq!(char_to_byte(byte_to_char(b)), Some(b));
        }
        assert_eq!(char_to_byte('€'), None);
    }
}
