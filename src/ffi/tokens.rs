//! Text to tokens and back.

use std::ffi::c_char;

use super::args::{bytes, reference, slice, write_bytes, write_text};
use super::boundary::{Failure, call, call_value};
use super::model::rf_model;
use super::status::rf_status;
use crate::tokenizer::SpecialTokens;

/// Tokenizes `len` bytes of UTF-8. `add_special` adds BOS/EOS as the model says;
/// `parse_special` turns control tokens written in the text into their ids. When `cap`
/// is too small, `*n_tokens` receives the count needed and the call returns
/// `RF_ERR_BUFFER_TOO_SMALL`.
///
/// Text the vocabulary cannot write is refused, never shortened: a byte with no token of
/// its own (some byte-level BPE vocabularies lack a few, SmolLM2's U+0004 among them) or,
/// for SentencePiece, a character that is no token and lacks a byte-fallback token,
/// returns `RF_ERR_INVALID_ARGUMENT` with a message naming the first such byte, its offset
/// in `text` and its character: "text byte 0x04 at offset 17 (in U+0004) has no token in
/// this vocabulary". (llama.cpp drops such bytes in byte-level BPE.) A SentencePiece
/// vocabulary that can write neither its space mark `▁` nor that mark's bytes fails with
/// `RF_ERR_INVALID_MODEL` on text with a space (on any text, when the model adds a space
/// prefix). Text that is not UTF-8 is `RF_ERR_INVALID_ARGUMENT`.
///
/// # Safety
/// `model` live; `text` `len` readable bytes; `tokens` `cap` writable ids (or NULL when
/// `cap` is 0); `n_tokens` writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn rf_tokenize(
    model: *const rf_model,
    text: *const c_char,
    len: usize,
    add_special: bool,
    parse_special: bool,
    tokens: *mut i32,
    cap: usize,
    n_tokens: *mut usize,
) -> rf_status {
    call(|| {
        // SAFETY: the caller's contract.
        let (model, text) = unsafe { (reference(model, "model")?, bytes(text, len, "text")?) };
        let ids = model
            .shared
            .tokenizer
            .tokenize_bytes(text, add_special, parse_special)?;
        let ids: Vec<i32> = ids.into_iter().map(|id| id as i32).collect();
        // SAFETY: the caller's contract for `tokens`, `cap` and `n_tokens`.
        unsafe { write_bytes(&ids, tokens, cap, n_tokens, ["tokens", "n_tokens"]) }
    })
}

fn token_id(model: &rf_model, token: i32) -> Result<u32, Failure> {
    u32::try_from(token)
        .ok()
        .filter(|&id| (id as usize) < model.shared.tokenizer.n_tokens())
        .ok_or_else(|| {
            Failure::new(
                rf_status::RF_ERR_INVALID_ARGUMENT,
                format!(
                    "token {token} is outside the vocabulary of {}",
                    model.shared.tokenizer.n_tokens()
                ),
            )
        })
}

/// The raw bytes of one token (possibly part of a UTF-8 character). Control tokens give
/// their text only with `render_special`.
///
/// # Safety
/// `model` live; `buf` `cap` writable bytes (or NULL when `cap` is 0); `out_len` writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn rf_token_to_piece(
    model: *const rf_model,
    token: i32,
    render_special: bool,
    buf: *mut c_char,
    cap: usize,
    out_len: *mut usize,
) -> rf_status {
    call(|| {
        // SAFETY: the caller's contract.
        let model = unsafe { reference(model, "model")? };
        let piece = model
            .shared
            .tokenizer
            .token_to_piece(token_id(model, token)?, render_special)?;
        // SAFETY: the caller's contract for `buf`, `cap` and `out_len`.
        unsafe { write_text(piece, buf, cap, out_len) }
    })
}

/// The bytes of a token sequence (may end inside a UTF-8 character).
///
/// # Safety
/// `model` live; `tokens` `n` readable ids; `buf` `cap` writable bytes (or NULL when `cap`
/// is 0); `out_len` writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn rf_detokenize(
    model: *const rf_model,
    tokens: *const i32,
    n: usize,
    render_special: bool,
    buf: *mut c_char,
    cap: usize,
    out_len: *mut usize,
) -> rf_status {
    call(|| {
        // SAFETY: the caller's contract.
        let (model, tokens) = unsafe { (reference(model, "model")?, slice(tokens, n, "tokens")?) };
        let ids = tokens
            .iter()
            .map(|&t| token_id(model, t))
            .collect::<Result<Vec<_>, _>>()?;
        let text = model
            .shared
            .tokenizer
            .detokenize(&ids, false, render_special)?;
        // SAFETY: the caller's contract for `buf`, `cap` and `out_len`.
        unsafe { write_text(&text, buf, cap, out_len) }
    })
}

fn special_or_none(model: *const rf_model, pick: fn(&SpecialTokens) -> Option<u32>) -> i32 {
    call_value(None, || {
        // SAFETY: `model` is NULL or live by the caller's contract.
        let model = unsafe { model.as_ref() }?;
        pick(model.shared.tokenizer.specials()).map(|id| id as i32)
    })
    .unwrap_or(-1)
}

/// The beginning-of-sequence token, or -1 when the model has none (or `model` is NULL).
///
/// # Safety
/// `model` must be NULL or live.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn rf_token_bos(model: *const rf_model) -> i32 {
    special_or_none(model, |s| s.bos)
}

/// The end-of-sequence token, or -1 when the model has none (or `model` is NULL).
///
/// # Safety
/// `model` must be NULL or live.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn rf_token_eos(model: *const rf_model) -> i32 {
    special_or_none(model, |s| s.eos)
}

/// Whether `token` ends a generation (EOS, end-of-turn and the like). False for NULL.
///
/// # Safety
/// `model` must be NULL or live.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn rf_token_is_eog(model: *const rf_model, token: i32) -> bool {
    call_value(false, || {
        // SAFETY: `model` is NULL or live by the caller's contract.
        unsafe { model.as_ref() }.is_some_and(|model| {
            u32::try_from(token).is_ok_and(|id| model.shared.tokenizer.is_end_of_generation(id))
        })
    })
}
