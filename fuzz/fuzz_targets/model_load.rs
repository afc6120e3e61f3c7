//! A whole model load from memory (`rf_model_load_from_memory`) on any bytes: the seeds
//! are tiny models the library's writer makes, so mutations reach the hyperparameter,
//! tensor and tokenizer checks behind the header. A load either fails with a status that
//! names a bad model, or gives a model that describes itself, makes a context and
//! decodes a token. A vocabulary-only load of the same bytes succeeds whenever the full
//! one does.
#![no_main]

use std::ptr;

use libfuzzer_sys::fuzz_target;
use rocmforge::ffi::*;
use rocmforge_fuzz::host::{abort_on_panic, assert_no_panic, free_model, last_error, load_model};

/// The statuses a failed load may give: the bytes are the model, so a defect in them is
/// the model's, never the caller's argument's.
const LOAD_FAILURES: [rf_status; 3] = [
    rf_status::RF_ERR_INVALID_MODEL,
    rf_status::RF_ERR_UNSUPPORTED,
    rf_status::RF_ERR_OUT_OF_MEMORY,
];

fn describe(model: *const rf_model) -> rf_model_description {
    // SAFETY: all-zero is a valid value of this plain C struct.
    let mut info: rf_model_description = unsafe { std::mem::zeroed() };
    info.struct_size = size_of::<rf_model_description>() as u32;
    // SAFETY: `model` is live; `info` is writable for its `struct_size`.
    let status = unsafe { rf_model_info(model, &mut info) };
    assert_eq!(status, rf_status::RF_OK, "rf_model_info: {}", last_error());
    info
}

/// Renders a one-message chat with the model's template; any status but a panic will do
/// (a fuzzed template may be refused), and the text fits what the call said it needs.
fn render_chat(model: *const rf_model) {
    let (role, content) = ("user", "Hi");
    let message = rf_chat_message {
        role: role.as_ptr().cast(),
        role_len: role.len(),
        content: content.as_ptr().cast(),
        content_len: content.len(),
    };
    let mut needed = 0usize;
    // SAFETY: `model` is live; one readable message; a NULL buffer of capacity 0.
    let status = unsafe {
        rf_chat_apply_template(model, &message, 1, true, ptr::null_mut(), 0, &mut needed)
    };
    assert_no_panic(status, "rf_chat_apply_template");
    if status != rf_status::RF_ERR_BUFFER_TOO_SMALL {
        return;
    }
    let mut buf = vec![0u8; needed];
    let mut written = 0usize;
    // SAFETY: as above, with `buf` writable for `needed` bytes.
    let status = unsafe {
        rf_chat_apply_template(
            model,
            &message,
            1,
            true,
            buf.as_mut_ptr().cast(),
            needed,
            &mut written,
        )
    };
    assert_eq!(
        status,
        rf_status::RF_OK,
        "with the size asked for: {}",
        last_error()
    );
    assert_eq!(written, needed);
}

/// A small context and one decode step of the text's tokens (or token 0).
fn decode_something(model: *const rf_model, n_vocab: u32) {
    let params = rf_context_params {
        n_ctx: 32,
        n_batch: 8,
        n_threads: 1,
        ..rf_context_default_params()
    };
    let mut ctx = ptr::null_mut();
    // SAFETY: `model` is live; `params` and `ctx` are valid.
    let status = unsafe { rf_context_new(model, &params, &mut ctx) };
    assert_no_panic(status, "rf_context_new");
    if status != rf_status::RF_OK {
        return;
    }
    let text = "Hi there";
    let mut tokens = [0i32; 8];
    let mut n = 0usize;
    // SAFETY: `model` is live; `text` readable; `tokens` writable for its length.
    let status = unsafe {
        rf_tokenize(
            model,
            text.as_ptr().cast(),
            text.len(),
            true,
            false,
            tokens.as_mut_ptr(),
            tokens.len(),
            &mut n,
        )
    };
    assert_no_panic(status, "rf_tokenize");
    let n = if status == rf_status::RF_OK {
        n.max(1)
    } else {
        1
    };
    let batch = rf_batch {
        n_tokens: n,
        tokens: tokens.as_ptr(),
        positions: ptr::null(),
        seq_ids: ptr::null(),
        want_logits: ptr::null(),
    };
    // SAFETY: `ctx` is live; `tokens` holds `n` ids.
    let status = unsafe { rf_decode(ctx, &batch) };
    assert_no_panic(status, "rf_decode");
    if status == rf_status::RF_OK {
        let (mut logits, mut len) = (ptr::null(), 0usize);
        // SAFETY: `ctx` is live; `logits` and `len` are writable.
        let status = unsafe { rf_get_logits(ctx, -1, &mut logits, &mut len) };
        assert_eq!(
            status,
            rf_status::RF_OK,
            "logits after a decode: {}",
            last_error()
        );
        assert_eq!(len, n_vocab as usize, "a logit per token of the vocabulary");
    }
    // SAFETY: `ctx` came from `rf_context_new` and is freed once.
    unsafe { rf_context_free(ctx) };
}

fuzz_target!(|data: &[u8]| {
    abort_on_panic();
    let vocab_only = load_model(data, true);
    match load_model(data, false) {
        Ok(model) => {
            let info = describe(model);
            render_chat(model);
            decode_something(model, info.n_vocab);
            // SAFETY: loaded above, freed once.
            unsafe { free_model(model) };
            let vocab = vocab_only.unwrap_or_else(|(s, e)| {
                panic!("the full load succeeded, the vocabulary-only load gave {s:?}: {e}")
            });
            // SAFETY: loaded above, freed once.
            unsafe { free_model(vocab) };
        }
        Err((status, message)) => {
            assert!(
                LOAD_FAILURES.contains(&status),
                "a load failed with {status:?}: {message}"
            );
            if let Ok(vocab) = vocab_only {
                // SAFETY: loaded above, freed once.
                unsafe { free_model(vocab) };
            }
        }
    }
});
