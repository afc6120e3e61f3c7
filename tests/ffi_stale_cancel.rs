//! `rf_context_cancel` stops the call running on the context; a request made while no call
//! runs (or left over from a cancelled call) is dropped when the next call starts. A
//! sequence-state load runs a step (it recomputes the last token's logits), so it must
//! drop such a request too, not fail with `RF_ERR_CANCELLED`.

mod common;

use std::ptr;

use common::SMOLLM2;
use common::ffi::{decode_last_logits, last_error, load_model};
use rocmforge::ffi::*;

/// A context of SmolLM2 holding a few tokens on sequence 0, and their saved state.
fn context_and_state(model: *const rf_model) -> (*mut rf_context, Vec<u8>) {
    let mut ctx = ptr::null_mut();
    let params = rf_context_params {
        n_ctx: 128,
        ..rf_context_default_params()
    };
    // SAFETY: a live model, valid params and out-pointer.
    let status = unsafe { rf_context_new(model, &params, &mut ctx) };
    assert_eq!(status, rf_status::RF_OK, "{}", last_error());
    decode_last_logits(ctx, &[1, 2, 3]).expect("a first decode");
    let mut needed = 0usize;
    // SAFETY: a live context; NULL with capacity 0 asks for the size.
    let status = unsafe { rf_state_seq_save(ctx, 0, ptr::null_mut(), 0, &mut needed) };
    assert_eq!(status, rf_status::RF_ERR_BUFFER_TOO_SMALL);
    let mut blob = vec![0u8; needed];
    let mut len = 0usize;
    // SAFETY: `blob` holds `needed` bytes.
    let status = unsafe { rf_state_seq_save(ctx, 0, blob.as_mut_ptr(), blob.len(), &mut len) };
    assert_eq!(status, rf_status::RF_OK, "{}", last_error());
    (ctx, blob)
}

/// The last output's logits are there to read.
fn has_logits(ctx: *mut rf_context) -> bool {
    let (mut logits, mut n_vocab) = (ptr::null(), 0usize);
    // SAFETY: a live context and out-pointers to locals.
    unsafe { rf_get_logits(ctx, -1, &mut logits, &mut n_vocab) == rf_status::RF_OK }
}

#[test]
fn a_stale_cancel_does_not_cancel_a_state_load() {
    let model = load_model(SMOLLM2);
    let (ctx, blob) = context_and_state(model);
    let path = std::env::temp_dir().join(format!("rf-stale-cancel-{}.state", std::process::id()));
    let path = path.to_str().expect("a UTF-8 temporary path").to_owned();
    // SAFETY: a live context and `path.len()` readable bytes.
    let status = unsafe { rf_state_seq_save_file(ctx, 0, path.as_ptr().cast(), path.len()) };
    assert_eq!(status, rf_status::RF_OK, "{}", last_error());

    // SAFETY (each call below): a live context; `blob` and `path` readable for their
    // lengths.
    unsafe {
        assert_eq!(rf_context_cancel(ctx), rf_status::RF_OK);
        let status = rf_state_seq_load(ctx, 0, blob.as_ptr(), blob.len());
        assert_eq!(status, rf_status::RF_OK, "{}", last_error());
        assert!(
            has_logits(ctx),
            "the load recomputed the last token's logits"
        );

        assert_eq!(rf_context_cancel(ctx), rf_status::RF_OK);
        let status = rf_state_seq_load_file(ctx, 0, path.as_ptr().cast(), path.len());
        assert_eq!(status, rf_status::RF_OK, "{}", last_error());
        assert!(
            has_logits(ctx),
            "the load recomputed the last token's logits"
        );
    }
    let _ = std::fs::remove_file(&path);
    // SAFETY: live objects, each freed once.
    unsafe {
        rf_context_free(ctx);
        rf_model_free(model);
    }
}
