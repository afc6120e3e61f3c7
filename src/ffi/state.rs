//! Saving and restoring one sequence's state (its tokens, positions and K/V) into a caller
//! buffer or a file, and back into any sequence of a context of the same model.

use std::ffi::c_char;
use std::path::Path;

use super::args::{BUF_AND_LEN, bytes, out, reference, text, write_bytes};
use super::boundary::{Failure, call};
use super::context::rf_context;
use super::status::rf_status;

/// The size in bytes of `rf_state_seq_save`'s blob for `seq` as it is now.
///
/// # Safety
/// `ctx` must be live; `out_size` writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn rf_state_seq_size(
    ctx: *mut rf_context,
    seq: i32,
    out_size: *mut usize,
) -> rf_status {
    call(|| {
        // SAFETY: the caller's contract.
        let (ctx, out_size) = unsafe { (reference(ctx, "ctx")?, out(out_size, "out_size")?) };
        *out_size = ctx.enter()?.state_seq_size(seq)?;
        Ok(())
    })
}

/// Writes `seq`'s state into `buf`: a versioned, checksummed blob that names the model it
/// came from. When `cap` is too small, `*out_len` gets the size needed and the call fails
/// with `RF_ERR_BUFFER_TOO_SMALL` (`buf` may be NULL when `cap` is 0). The cache is not
/// changed.
///
/// # Safety
/// `ctx` must be live; `buf` `cap` writable bytes (or NULL when `cap` is 0); `out_len`
/// writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn rf_state_seq_save(
    ctx: *mut rf_context,
    seq: i32,
    buf: *mut u8,
    cap: usize,
    out_len: *mut usize,
) -> rf_status {
    call(|| {
        // SAFETY: the caller's contract.
        let ctx = unsafe { reference(ctx, "ctx")? };
        // Only a zero-length buffer may be NULL.
        if buf.is_null() && cap > 0 {
            return Err(Failure::null("buf"));
        }
        let mut context = ctx.enter()?;
        let needed = context.state_seq_size(seq)?;
        if needed > cap {
            // SAFETY: the caller's contract for `out_len`.
            *unsafe { out(out_len, "out_len")? } = needed;
            return Err(Failure::new(
                rf_status::RF_ERR_BUFFER_TOO_SMALL,
                format!("the state needs {needed} bytes, the buffer holds {cap}"),
            ));
        }
        let mut blob = Vec::new();
        context.state_seq_save(seq, &mut blob)?;
        // SAFETY: the caller's contract for `buf`, `cap` and `out_len`.
        unsafe { write_bytes(&blob, buf, cap, out_len, BUF_AND_LEN) }
    })
}

/// Replaces `seq`'s contents with a blob `rf_state_seq_save` wrote from a context of the
/// same model, then recomputes its last token's logits, so `rf_get_logits` and sampling
/// continue where the saved sequence stood. A blob from another model, of another format
/// version, truncated or with any byte changed is `RF_ERR_INVALID_ARGUMENT`; a state the
/// context has no room for is `RF_ERR_CONTEXT_FULL`; either way the context is unchanged.
/// For a model with sliding-window layers the blob holds those layers' K/V of the
/// positions the saving context kept; one that lacks part of its last token's window
/// (saved after a long rollback) is `RF_ERR_INVALID_ARGUMENT` too. A device error while
/// the K/V are written leaves the sequence empty. A cancel or a device error while the
/// last token's logits are recomputed leaves the state loaded without logits: sample
/// only after a decode (or an `rf_generate` with an empty prompt, which recomputes
/// them).
///
/// # Safety
/// `ctx` must be live; `data` `len` readable bytes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn rf_state_seq_load(
    ctx: *mut rf_context,
    seq: i32,
    data: *const u8,
    len: usize,
) -> rf_status {
    call(|| {
        // SAFETY: the caller's contract.
        let (ctx, blob) = unsafe {
            (
                reference(ctx, "ctx")?,
                bytes(data.cast::<c_char>(), len, "data")?,
            )
        };
        let mut context = ctx.enter()?;
        // The load runs a step (the last token's logits), which a cancel stops.
        ctx.drop_stale_cancel();
        Ok(context.state_seq_load(seq, blob)?)
    })
}

/// `rf_state_seq_save` into the file at `path` (`path_len` bytes of UTF-8), created or
/// replaced.
///
/// # Safety
/// `ctx` must be live; `path` `path_len` readable bytes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn rf_state_seq_save_file(
    ctx: *mut rf_context,
    seq: i32,
    path: *const c_char,
    path_len: usize,
) -> rf_status {
    call(|| {
        // SAFETY: the caller's contract.
        let (ctx, path) = unsafe { (reference(ctx, "ctx")?, text(path, path_len, "path")?) };
        Ok(ctx.enter()?.state_seq_save_file(seq, Path::new(path))?)
    })
}

/// `rf_state_seq_load` from the file at `path` (`path_len` bytes of UTF-8).
///
/// # Safety
/// `ctx` must be live; `path` `path_len` readable bytes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn rf_state_seq_load_file(
    ctx: *mut rf_context,
    seq: i32,
    path: *const c_char,
    path_len: usize,
) -> rf_status {
    call(|| {
        // SAFETY: the caller's contract.
        let (ctx, path) = unsafe { (reference(ctx, "ctx")?, text(path, path_len, "path")?) };
        let mut context = ctx.enter()?;
        // As in `rf_state_seq_load`: the load runs a step, which a cancel stops.
        ctx.drop_stale_cancel();
        Ok(context.state_seq_load_file(seq, Path::new(path))?)
    })
}
