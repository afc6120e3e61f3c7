//! Tokenize and detokenize on every vocabulary kind (byte-level BPE with several
//! pre-tokenizers, SentencePiece with and without byte fallback and space prefix), from
//! the library's API and through the C ABI, on any text and any token ids.
//!
//! Checks: ids are in the vocabulary; they detokenize; text the vocabulary can write and
//! that has no special tokens parsed comes back as it went in; the incremental decoder
//! writes what the pieces say; the C ABI gives the crate's answers, sizes buffers right
//! and refuses what the crate refuses.
#![no_main]

use std::ffi::c_char;
use std::ptr;
use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use rocmforge::Error;
use rocmforge::ffi::*;
use rocmforge::gguf::GgufFile;
use rocmforge::tokenizer::{Tokenizer, TokenizerKind};
use rocmforge_fuzz::host::{abort_on_panic, assert_no_panic, last_error, leak, load_model};
use rocmforge_fuzz::models::vocabulary_file;
use rocmforge_fuzz::tokenize_input::{self, Flags};
use rocmforge_fuzz::vocabularies::{self, Vocabulary};

/// A vocabulary as the crate's tokenizer and as a vocabulary-only model of the C ABI.
struct Loaded {
    vocab: Vocabulary,
    tokenizer: Tokenizer,
    model: *mut rf_model,
}

// SAFETY: an `rf_model` is immutable and may be shared by any number of threads (the C
// API's promise); these are never freed.
unsafe impl Sync for Loaded {}
// SAFETY: as above.
unsafe impl Send for Loaded {}

fn loaded() -> &'static [Loaded] {
    static LOADED: OnceLock<Vec<Loaded>> = OnceLock::new();
    LOADED.get_or_init(|| {
        abort_on_panic();
        vocabularies::all()
            .into_iter()
            .map(|vocab| {
                let writer = vocabulary_file(&vocab).expect("vocabulary metadata");
                let bytes = leak(writer.to_bytes());
                let file = GgufFile::parse(bytes).expect("the vocabulary parses");
                let tokenizer =
                    Tokenizer::from_gguf(&file).unwrap_or_else(|e| panic!("{}: {e}", vocab.name));
                let model = load_model(bytes, true)
                    .unwrap_or_else(|(s, e)| panic!("{}: {s:?} {e}", vocab.name));
                Loaded {
                    vocab,
                    tokenizer,
                    model,
                }
            })
            .collect()
    })
}

/// The library's status for a crate error, as the C ABI maps it.
fn status_of(e: &Error) -> rf_status {
    rf_status::from(e)
}

/// `rf_tokenize`: first with no room (to learn the count), then with exactly that room.
fn ffi_tokenize(model: *const rf_model, text: &[u8], f: Flags) -> Result<Vec<i32>, rf_status> {
    let mut needed = 0usize;
    // SAFETY: `model` is live; `text` readable; NULL buffer of capacity 0.
    let status = unsafe {
        rf_tokenize(
            model,
            text.as_ptr().cast(),
            text.len(),
            f.add_special,
            f.parse_special,
            ptr::null_mut(),
            0,
            &mut needed,
        )
    };
    assert_no_panic(status, "rf_tokenize");
    match status {
        rf_status::RF_OK => {
            assert_eq!(needed, 0, "RF_OK with no room means no tokens");
            return Ok(Vec::new());
        }
        rf_status::RF_ERR_BUFFER_TOO_SMALL => {}
        other => return Err(other),
    }
    let mut ids = vec![0i32; needed];
    let mut n = 0usize;
    // SAFETY: as above, with `ids` writable for `needed` ids.
    let status = unsafe {
        rf_tokenize(
            model,
            text.as_ptr().cast(),
            text.len(),
            f.add_special,
            f.parse_special,
            ids.as_mut_ptr(),
            needed,
            &mut n,
        )
    };
    assert_eq!(
        status,
        rf_status::RF_OK,
        "with the room asked for: {}",
        last_error()
    );
    assert_eq!(n, needed);
    Ok(ids)
}

/// Bytes out of a `(buf, cap, out_len)` call: asked with no room first, then exactly.
fn ffi_bytes(
    call: impl Fn(*mut c_char, usize, *mut usize) -> rf_status,
) -> Result<Vec<u8>, rf_status> {
    let mut needed = 0usize;
    let status = call(ptr::null_mut(), 0, &mut needed);
    assert_no_panic(status, "an rf_ call writing bytes");
    match status {
        rf_status::RF_OK => return Ok(Vec::new()),
        rf_status::RF_ERR_BUFFER_TOO_SMALL => {}
        other => return Err(other),
    }
    let mut buf = vec![0u8; needed];
    let mut n = 0usize;
    let status = call(buf.as_mut_ptr().cast(), needed, &mut n);
    assert_eq!(
        status,
        rf_status::RF_OK,
        "with the room asked for: {}",
        last_error()
    );
    assert_eq!(n, needed);
    Ok(buf)
}

fn ffi_detokenize(model: *const rf_model, ids: &[i32], render: bool) -> Result<Vec<u8>, rf_status> {
    // SAFETY: `model` is live; `ids` readable; the buffer as `ffi_bytes` passes it.
    ffi_bytes(|buf, cap, out| unsafe {
        rf_detokenize(model, ids.as_ptr(), ids.len(), render, buf, cap, out)
    })
}

fn ffi_piece(model: *const rf_model, id: i32, render: bool) -> Result<Vec<u8>, rf_status> {
    // SAFETY: `model` is live; the buffer as `ffi_bytes` passes it.
    ffi_bytes(|buf, cap, out| unsafe { rf_token_to_piece(model, id, render, buf, cap, out) })
}

/// Tokenizes `text` both ways and checks what comes back.
fn check_text(l: &Loaded, text: &[u8], f: Flags) {
    let crate_ids = l
        .tokenizer
        .tokenize_bytes(text, f.add_special, f.parse_special);
    let ffi_ids = ffi_tokenize(l.model, text, f);
    let ids = match crate_ids {
        Ok(ids) => ids,
        Err(e) => {
            assert_eq!(
                ffi_ids,
                Err(status_of(&e)),
                "{}: the C ABI and the crate disagree on {e}",
                l.vocab.name
            );
            return;
        }
    };
    let as_i32: Vec<i32> = ids.iter().map(|&id| id as i32).collect();
    assert_eq!(
        ffi_ids.as_deref(),
        Ok(&as_i32[..]),
        "{}: the C ABI's ids",
        l.vocab.name
    );
    let n_tokens = l.tokenizer.n_tokens();
    assert!(
        ids.iter().all(|&id| (id as usize) < n_tokens),
        "{}: an id past the vocabulary",
        l.vocab.name
    );
    let back = l
        .tokenizer
        .detokenize(&ids, f.remove_special, f.render_special)
        .unwrap_or_else(|e| panic!("{}: tokenize's ids do not detokenize: {e}", l.vocab.name));
    // SentencePiece writes spaces as `▁`, so a `▁` in the text comes back as a space;
    // and with a space prefix it puts one after every token matched in the text (a
    // user-defined one, here), as llama.cpp does, so such text comes back with more.
    let spm = l.tokenizer.kind() == TokenizerKind::SentencePiece;
    let space_mark_in_text = spm && String::from_utf8_lossy(text).contains('▁');
    let vocab = l.tokenizer.vocab();
    let prefix_after_token = spm
        && l.tokenizer.add_space_prefix()
        && ids
            .iter()
            .any(|&id| vocab.token_type(id).is_some_and(|t| t.is_matched_in_text()));
    if l.vocab.round_trips
        && !space_mark_in_text
        && !prefix_after_token
        && !f.add_special
        && !f.parse_special
        && f.render_special
    {
        assert_eq!(
            String::from_utf8_lossy(&back),
            String::from_utf8_lossy(text),
            "{}: text does not come back from {ids:?}",
            l.vocab.name
        );
    }
}

/// Detokenizes `ids` both ways, whole and token by token.
fn check_ids(l: &Loaded, ids: &[u32], f: Flags) {
    let crate_text = l
        .tokenizer
        .detokenize(ids, f.remove_special, f.render_special);
    let as_i32: Vec<i32> = ids.iter().map(|&id| id as i32).collect();
    let in_range = ids.iter().all(|&id| (id as usize) < l.tokenizer.n_tokens());
    assert_eq!(
        crate_text.is_ok(),
        in_range,
        "{}: detokenize {ids:?}",
        l.vocab.name
    );
    let mut decoder = l.tokenizer.decoder(f.render_special);
    let mut pieces = Vec::new();
    let mut streamed = String::new();
    for &id in ids {
        let piece = l.tokenizer.token_to_piece(id, f.render_special);
        let ffi_piece = ffi_piece(l.model, id as i32, f.render_special);
        let pushed = decoder.push(id);
        match piece {
            Ok(piece) => {
                assert_eq!(
                    ffi_piece.as_deref(),
                    Ok(piece),
                    "{}: piece of {id}",
                    l.vocab.name
                );
                pieces.extend_from_slice(piece);
                streamed += &pushed.unwrap_or_else(|e| panic!("push {id}: {e}"));
            }
            Err(e) => {
                assert_eq!(
                    ffi_piece,
                    Err(status_of(&e)),
                    "{}: piece of {id}",
                    l.vocab.name
                );
                assert!(pushed.is_err(), "{}: the decoder took {id}", l.vocab.name);
            }
        }
    }
    streamed += &decoder.finish();
    assert_eq!(
        streamed,
        String::from_utf8_lossy(&pieces),
        "{}: the incremental decoder and the pieces of {ids:?}",
        l.vocab.name
    );
    if !f.remove_special {
        let ffi_text = ffi_detokenize(l.model, &as_i32, f.render_special);
        match crate_text {
            Ok(text) => assert_eq!(ffi_text, Ok(text), "{}: rf_detokenize", l.vocab.name),
            Err(e) => assert_eq!(
                ffi_text,
                Err(status_of(&e)),
                "{}: rf_detokenize",
                l.vocab.name
            ),
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let all = loaded();
    let input = tokenize_input::parse(data, all.len());
    let l = &all[input.vocabulary];
    let lossy;
    let text = if input.flags.lossy {
        lossy = String::from_utf8_lossy(input.text).into_owned();
        lossy.as_bytes()
    } else {
        input.text
    };
    check_text(l, text, input.flags);
    check_ids(l, &input.ids, input.flags);
});
