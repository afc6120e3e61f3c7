//! A long word (a hostile text's run of letters) whose merge needs more memory than the
//! host gives is an out-of-memory error, not an abort of the host process: the BPE and
//! SentencePiece merges grow their buffers fallibly. While armed, this test binary's
//! allocator refuses any one allocation over `LIMIT` bytes, as a host under `ulimit -v`
//! would; before the merges' buffers grew fallibly, the refusal aborted the process.
//!
//! The word's symbols are `N` letters: every buffer sized by the text (the token vector,
//! the code points, the merge's links) stays under `LIMIT`, and only the merge's heap of
//! candidate pairs (16 or 32 bytes a pair) goes over it.

use std::alloc::{GlobalAlloc, Layout, System};
use std::ptr::null_mut;
use std::sync::atomic::{AtomicBool, Ordering};

use rocmforge::Error;
use rocmforge::gguf::{GgufFile, GgufWriter, OwnedValue};
use rocmforge::tokenizer::Tokenizer;

const LIMIT: usize = 48 << 20;
const N: usize = 4 << 20;

static ARMED: AtomicBool = AtomicBool::new(false);

/// The system allocator, refusing allocations over `LIMIT` bytes while `ARMED`.
struct RefuseLarge;

fn refused(size: usize) -> bool {
    size > LIMIT && ARMED.load(Ordering::Relaxed)
}

// SAFETY: every call is passed on to the system allocator unchanged, or refused with a
// null pointer, which GlobalAlloc allows.
unsafe impl GlobalAlloc for RefuseLarge {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if refused(layout.size()) {
            return null_mut();
        }
        // SAFETY: the caller's layout, as GlobalAlloc::alloc requires.
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        if refused(layout.size()) {
            return null_mut();
        }
        // SAFETY: as alloc.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if refused(new_size) {
            return null_mut();
        }
        // SAFETY: the caller's block, layout and size, as GlobalAlloc::realloc requires.
        unsafe { System.realloc(ptr, layout, new_size) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: a block this allocator gave out, with its layout.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static ALLOCATOR: RefuseLarge = RefuseLarge;

/// A vocabulary written as GGUF metadata and read back.
fn build(kv: Vec<(&str, OwnedValue)>) -> Tokenizer {
    let mut w = GgufWriter::new();
    for (k, v) in kv {
        w.add_metadata(k, v).expect("metadata is well-formed");
    }
    let bytes = w.to_bytes();
    let file = GgufFile::parse(&bytes).expect("file parses");
    Tokenizer::from_gguf(&file).expect("tokenizer builds")
}

/// Byte-level BPE over "a": "a a" merges to "aa" (id 1), "aa aa" to "aaaa" (id 2).
fn bpe() -> Tokenizer {
    build(vec![
        ("tokenizer.ggml.model", OwnedValue::String("gpt2".into())),
        ("tokenizer.ggml.pre", OwnedValue::String("gpt-2".into())),
        (
            "tokenizer.ggml.tokens",
            OwnedValue::string_array(["a", "aa", "aaaa"]),
        ),
        (
            "tokenizer.ggml.merges",
            OwnedValue::string_array(["a a", "aa aa"]),
        ),
    ])
}

/// SentencePiece over "a": the pieces "a", "aa" (id 4) and "aaaa" (id 5).
fn spm() -> Tokenizer {
    build(vec![
        ("tokenizer.ggml.model", OwnedValue::String("llama".into())),
        (
            "tokenizer.ggml.tokens",
            OwnedValue::string_array(["<unk>", "<s>", "</s>", "a", "aa", "aaaa", "▁"]),
        ),
        (
            "tokenizer.ggml.scores",
            OwnedValue::f32_array([0.0, 0.0, 0.0, -1.0, -2.0, -3.0, -1.0]),
        ),
        (
            "tokenizer.ggml.token_type",
            OwnedValue::i32_array([2, 3, 3, 1, 1, 1, 1]),
        ),
        ("tokenizer.ggml.add_space_prefix", OwnedValue::Bool(false)),
    ])
}

/// Tokenizes `N` letters with large allocations refused (an out-of-memory error), then
/// with them allowed (every four letters one token, `four`), then a short text.
fn check(name: &str, tokenizer: &Tokenizer, four: u32) {
    let word = "a".repeat(N);
    ARMED.store(true, Ordering::Relaxed);
    let refused = tokenizer.tokenize(&word, false, false);
    ARMED.store(false, Ordering::Relaxed);
    match refused {
        Err(Error::OutOfMemory(message)) => {
            assert!(message.contains("merge"), "{name}: {message}");
        }
        other => {
            panic!("{name}: {N} letters with allocations over {LIMIT} bytes refused gave {other:?}")
        }
    }
    let ids = tokenizer.tokenize(&word, false, false).expect("tokenizes");
    assert_eq!(ids.len(), N / 4, "{name}");
    assert!(ids.iter().all(|&id| id == four), "{name}");
    let short = tokenizer
        .tokenize("aaaaaa", false, false)
        .expect("tokenizes");
    assert_eq!(short.first(), Some(&four), "{name}: {short:?}");
}

#[test]
fn a_word_too_long_for_memory_is_an_error() {
    // One test: the allocator's switch is the process's.
    check("BPE", &bpe(), 2);
    check("SentencePiece", &spm(), 5);
}
