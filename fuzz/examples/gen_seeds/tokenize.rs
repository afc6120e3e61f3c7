//! Tokenize seeds: for every vocabulary, texts that take its merges, multi-byte
//! characters, special tokens (parsed and not), bytes it lacks, and ids to detokenize.

use rocmforge_fuzz::tokenize_input::{Flags, TokenizeInput, encode};
use rocmforge_fuzz::vocabularies;

use super::Seeds;

/// Texts without the byte 0xFF, which ends the text of an input.
const TEXTS: [(&str, &[u8]); 6] = [
    (
        "words",
        b"the thing in the ring, 12 121 at the end.  Then  ",
    ),
    (
        "unicode",
        "caf\u{e9} \u{65e5}\u{672c} \u{1f642} na\u{ef}ve\n\nx".as_bytes(),
    ),
    (
        "specials",
        b"<|im_start|>user\nhi<|im_end|><start_of_turn>a<mask> b<tool_call>",
    ),
    ("control-bytes", b"a\x04b\x00c\x7f \t\r\n"),
    ("invalid-utf8", b"ab\xc3(\xfe\xe2\x82"),
    ("empty", b""),
];

pub fn seeds() -> Seeds {
    let mut seeds = Seeds::new();
    for (v, vocab) in vocabularies::all().iter().enumerate() {
        for (t, &(name, text)) in TEXTS.iter().enumerate() {
            // Vary the flags over the texts; keep `lossy` off for the invalid text once.
            let bits = (v + t) as u8;
            let flags = Flags {
                add_special: bits & 1 != 0,
                parse_special: name == "specials" || bits & 2 != 0,
                remove_special: bits & 4 != 0,
                render_special: t % 2 == 0,
                lossy: name != "invalid-utf8" && bits & 8 != 0,
            };
            // Ids: the start of the vocabulary, its end, and one past it.
            let n = vocab.n_tokens;
            let ids = if t < 3 {
                vec![0, 1, 2, 3, n / 2, n - 2, n - 1]
            } else {
                vec![n - 1, n, 5]
            };
            let input = TokenizeInput {
                vocabulary: v,
                flags,
                text,
                ids,
            };
            seeds.push((format!("{v:02}-{name}"), encode(&input)));
        }
    }
    seeds
}
