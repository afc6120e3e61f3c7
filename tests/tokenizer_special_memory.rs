//! A vocabulary of many long user-defined tokens costs memory in proportion to its
//! bytes when the tokenizer is built: the special-token matcher must not multiply them.
//! (A trie with a node and a vector per byte of the texts took some eighty bytes a byte:
//! a hostile file with 100 MB of such tokens took 8 GB.) Alone in its test binary, so that
//! the process's peak resident memory is this test's.

use rocmforge::gguf::{GgufFile, GgufWriter, OwnedValue};
use rocmforge::tokenizer::Tokenizer;

/// The process's peak resident memory in bytes (Linux's VmHWM).
#[cfg(target_os = "linux")]
fn peak_resident() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status");
    let kib: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .expect("a VmHWM line");
    kib * 1024
}

#[cfg(target_os = "linux")]
#[test]
fn long_user_defined_tokens_cost_memory_in_proportion() {
    const TOKENS: usize = 100_000;
    const LEN: usize = 100;
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    let mut letter = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        char::from(b'a' + (state % 26) as u8)
    };
    let mut tokens: Vec<String> = (0..=255u8).map(|b| format!("<0x{b:02X}>")).collect();
    let mut types = vec![6; 256];
    for _ in 0..TOKENS {
        tokens.push((0..LEN).map(|_| letter()).collect());
        types.push(4);
    }
    let text_bytes = (TOKENS * LEN) as u64;
    let mut w = GgufWriter::new();
    let kv = [
        ("tokenizer.ggml.model", OwnedValue::String("llama".into())),
        ("tokenizer.ggml.tokens", OwnedValue::string_array(tokens)),
        ("tokenizer.ggml.token_type", OwnedValue::i32_array(types)),
    ];
    for (k, v) in kv {
        w.add_metadata(k, v).expect("metadata is well-formed");
    }
    let bytes = w.to_bytes();
    let file = GgufFile::parse(&bytes).expect("file parses");
    let before = peak_resident();
    let tokenizer = Tokenizer::from_gguf(&file).expect("tokenizer builds");
    let grown = peak_resident().saturating_sub(before);
    // The vocabulary keeps a few copies of the texts (token list, pieces, matcher).
    assert!(
        grown < 16 * text_bytes,
        "building took {} MB for {} MB of token text",
        grown >> 20,
        text_bytes >> 20
    );
    // And the tokens are still found in text.
    let last = tokenizer.n_tokens() as u32 - 1;
    let text = format!("x{}y", tokenizer.vocab().text(last).expect("a token"));
    let ids = tokenizer.tokenize(&text, false, false).expect("tokenizes");
    assert!(ids.contains(&last), "{ids:?}");
}
