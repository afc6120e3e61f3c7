//! Contexts: a model's KV cache and working memory for one or more sequences, the decode
//! step, logits, sequence edits, memory reports and cancellation.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use super::args::{
    out, reference, slice, versioned, versioned_out, versioned_struct, write_bytes, write_versioned,
};
use super::boundary::{Failure, call, exclusive, free_quietly};
use super::log::RF_LOG_INFO;
use super::model::{LoadedModel, rf_model};
use super::status::rf_status;
use crate::backend::KvType;
use crate::context::{Batch, Context, ContextParams, Pooling, WantLogits};

pub const RF_KV_F16: u32 = 0;
pub const RF_KV_F32: u32 = 1;
pub const RF_KV_Q8_0: u32 = 2;

/// `rf_get_embeddings`' pooling: one output's row (its index an output index).
pub const RF_POOLING_NONE: u32 = 0;
/// The mean over a sequence's tokens in the last batch (its index a sequence id).
pub const RF_POOLING_MEAN: u32 = 1;
/// A sequence's first token in the last batch.
pub const RF_POOLING_CLS: u32 = 2;
/// A sequence's last token in the last batch.
pub const RF_POOLING_LAST: u32 = 3;

#[repr(C)]
#[derive(Clone, Copy)]
pub struct rf_context_params {
    /// `sizeof(rf_context_params)`, set by `rf_context_default_params()`.
    pub struct_size: u32,
    /// Token slots across all sequences; 0 = min(training context, 4096). Rounded up to
    /// a whole number of KV blocks (16 slots each); `rf_context_memory` reports the size
    /// in use as `kv_blocks_total * kv_block_tokens`.
    pub n_ctx: u32,
    /// Most sequences the context holds (ids 0 .. n_seq_max-1).
    pub n_seq_max: u32,
    /// Most tokens one `rf_decode` may take; capped at the context's size. For a model
    /// with sliding-window layers (Gemma 3), also how many positions those layers keep
    /// beyond their window: how far `rf_seq_remove` may roll a sequence back for it to
    /// go on (see `rf_seq_remove`).
    pub n_batch: u32,
    /// Threads for CPU work, at most 1024; 0 = the model's setting.
    pub n_threads: u32,
    /// How the KV cache stores K and V: `RF_KV_F16` (default), `RF_KV_F32`, or `RF_KV_Q8_0`
    /// (17/32 of F16's bytes; heads of a multiple of 32 values, else
    /// `RF_ERR_UNSUPPORTED`); another value is `RF_ERR_INVALID_ARGUMENT`. A saved
    /// sequence state loads only into a context of the same type. On a GPU, heads its
    /// one-token attention kernel cannot take are read through f16 tiles whatever the
    /// type.
    pub kv_type: u32,
    /// For a model with sliding-window layers (Gemma 3): false (default), those layers
    /// keep only their window and `n_batch` positions more, a fraction of the memory;
    /// true, they keep every position like the other layers (llama.cpp's `swa_full`), so
    /// a sequence can be rolled back any distance and go on. No effect on other models.
    pub swa_full: bool,
}

versioned_struct!(rf_context_params {
    struct_size,
    n_ctx,
    n_seq_max,
    n_batch,
    n_threads,
    kv_type,
    swa_full
});

/// The context parameters `p` asks for; `n_threads` 0 takes `model_threads`.
pub(super) fn context_params(
    p: &rf_context_params,
    model_threads: usize,
) -> Result<ContextParams, Failure> {
    let kv_type = match p.kv_type {
        RF_KV_F16 => KvType::F16,
        RF_KV_F32 => KvType::F32,
        RF_KV_Q8_0 => KvType::Q8_0,
        other => {
            return Err(Failure::new(
                rf_status::RF_ERR_INVALID_ARGUMENT,
                format!("kv_type is {other}, expected one of RF_KV_F16, RF_KV_F32, RF_KV_Q8_0"),
            ));
        }
    };
    Ok(ContextParams {
        n_ctx: p.n_ctx as usize,
        n_seq_max: p.n_seq_max as usize,
        n_batch: p.n_batch as usize,
        n_threads: match p.n_threads {
            0 => model_threads,
            n => n as usize,
        },
        kv_type,
        swa_full: p.swa_full,
    })
}

/// A context. One call at a time: a second thread entering while a call runs, or a
/// callback of that call calling in on the same context, gets `RF_ERR_BUSY`.
/// `rf_context_cancel` may be called from any thread at any time.
pub struct rf_context {
    pub(crate) model: Arc<LoadedModel>,
    state: Mutex<Context>,
    cancel: Arc<AtomicBool>,
}

impl rf_context {
    /// A cancel request made while no call was running is dropped when the next call
    /// starts: `rf_context_cancel` stops the running call only.
    pub(crate) fn drop_stale_cancel(&self) {
        self.cancel.store(false, Ordering::Relaxed);
    }

    /// Exclusive use of the context, or `RF_ERR_BUSY` while another call has it.
    pub(crate) fn enter(&self) -> Result<MutexGuard<'_, Context>, Failure> {
        exclusive(&self.state, "context")
    }
}

#[unsafe(no_mangle)]
pub extern "C" fn rf_context_default_params() -> rf_context_params {
    rf_context_params {
        struct_size: size_of::<rf_context_params>() as u32,
        n_ctx: 0,
        n_seq_max: 1,
        n_batch: 512,
        n_threads: 0,
        kv_type: RF_KV_F16,
        swa_full: false,
    }
}

/// Creates a context for `model`; `params` may be NULL for the defaults.
///
/// # Safety
/// `model` live; `params` NULL or valid; `out_ctx` writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn rf_context_new(
    model: *const rf_model,
    params: *const rf_context_params,
    out_ctx: *mut *mut rf_context,
) -> rf_status {
    call(|| {
        // SAFETY: the caller's contract.
        let (model, p, out_ctx) = unsafe {
            (
                reference(model, "model")?,
                versioned(params, rf_context_default_params(), "params")?,
                out(out_ctx, "out_ctx")?,
            )
        };
        let shared = Arc::clone(&model.shared);
        let params = context_params(&p, shared.n_threads)?;
        let context = Context::new(Arc::clone(shared.model()?), &params)?;
        let config = context.params();
        shared.logger.log(
            RF_LOG_INFO,
            &format!(
                "context: {} token slots, {} sequences, batches of up to {} tokens, {} threads",
                config.n_ctx, config.n_seq_max, config.n_batch, config.n_threads
            ),
        );
        if let Some(products) = context.prefill_products() {
            let message = format!("prefill products: {products}");
            shared.logger.log(RF_LOG_INFO, &message);
        }
        let cancel = context.cancel_flag();
        *out_ctx = Box::into_raw(Box::new(rf_context {
            model: shared,
            state: Mutex::new(context),
            cancel,
        }));
        Ok(())
    })
}

/// Frees a context. NULL is ignored.
///
/// # Safety
/// `ctx` must be NULL or a context from `rf_context_new` not yet freed, in use by no
/// other thread.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn rf_context_free(ctx: *mut rf_context) {
    if !ctx.is_null() {
        free_quietly(|| {
            // SAFETY: the pointer came from `Box::into_raw` in `rf_context_new`, freed once.
            drop(unsafe { Box::from_raw(ctx) });
        });
    }
}

/// Tokens for one `rf_decode`.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct rf_batch {
    pub n_tokens: usize,
    /// `[n_tokens]`
    pub tokens: *const i32,
    /// `[n_tokens]`, or NULL: each token at the next position of its sequence.
    pub positions: *const i32,
    /// `[n_tokens]`, or NULL: all in sequence 0.
    pub seq_ids: *const i32,
    /// `[n_tokens]` of 0/1, or NULL: logits for the last token only.
    pub want_logits: *const u8,
}

/// Runs a batch through the model. `RF_ERR_CONTEXT_FULL` and `RF_ERR_CANCELLED` leave
/// the KV cache exactly as before the call, as does `RF_ERR_INVALID_ARGUMENT` for a
/// token whose sliding window reaches positions its layers no longer hold (see
/// `rf_seq_remove`).
///
/// # Safety
/// `ctx` live; `batch` readable with its arrays of `n_tokens` elements (or NULL where
/// allowed).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn rf_decode(ctx: *mut rf_context, batch: *const rf_batch) -> rf_status {
    call(|| {
        // SAFETY: the caller's contract.
        let (ctx, b) = unsafe { (reference(ctx, "ctx")?, reference(batch, "batch")?) };
        let mut context = ctx.enter()?;
        ctx.drop_stale_cancel();
        // Checked before the arrays are viewed or copied: `n_tokens` is the host's word
        // for how long they are, and nothing may be sized by it unchecked.
        let n = b.n_tokens;
        let n_batch = context.params().n_batch;
        if n == 0 || n > n_batch {
            return Err(Failure::new(
                rf_status::RF_ERR_INVALID_ARGUMENT,
                format!("batch.n_tokens is {n}; this context takes 1 to {n_batch} tokens"),
            ));
        }
        // SAFETY: each array holds `n_tokens` elements or is NULL where allowed.
        let (tokens, positions, seq_ids, want) = unsafe {
            (
                slice(b.tokens, n, "batch.tokens")?,
                optional(b.positions, n),
                optional(b.seq_ids, n),
                optional(b.want_logits, n),
            )
        };
        context.decode(&Batch {
            tokens,
            positions,
            seq_ids,
            want_logits: want.map_or(WantLogits::Last, WantLogits::Flags),
        })?;
        Ok(())
    })
}

/// An optional `[n]` array: NULL means absent.
///
/// # Safety
/// A non-NULL `ptr` must point to `n` readable elements.
unsafe fn optional<'a, T>(ptr: *const T, n: usize) -> Option<&'a [T]> {
    // SAFETY: non-NULL pointers hold `n` elements by the caller's contract.
    (!ptr.is_null()).then(|| unsafe { std::slice::from_raw_parts(ptr, n) })
}

/// An embedding of the last decode: the hidden state after the output norm (the head's
/// input, llama.cpp's embedding) of output `index` (`RF_POOLING_NONE`; -1: the last
/// output), or pooled over sequence `index`'s tokens in the last batch (`RF_POOLING_MEAN`,
/// `RF_POOLING_CLS`, `RF_POOLING_LAST`), scaled to unit length with `normalize`. Pooled
/// tokens must have asked for logits (`want_logits`); one that did not is
/// `RF_ERR_INVALID_ARGUMENT`. Writes `n_embd` floats; a smaller `cap` is
/// `RF_ERR_BUFFER_TOO_SMALL` with `*out_len` set to `n_embd`. After `rf_state_seq_load`
/// the last step recomputed the loaded sequence's last token on its own, so only
/// `RF_POOLING_NONE` applies until the next `rf_decode`.
///
/// # Safety
/// `ctx` live; `out` `cap` writable floats (or NULL when `cap` is 0); `out_len` writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn rf_get_embeddings(
    ctx: *mut rf_context,
    index: i32,
    pooling: u32,
    normalize: bool,
    out: *mut f32,
    cap: usize,
    out_len: *mut usize,
) -> rf_status {
    call(|| {
        // SAFETY: the caller's contract.
        let ctx = unsafe { reference(ctx, "ctx")? };
        let pooling = match pooling {
            RF_POOLING_NONE => Pooling::None,
            RF_POOLING_MEAN => Pooling::Mean,
            RF_POOLING_CLS => Pooling::Cls,
            RF_POOLING_LAST => Pooling::Last,
            other => {
                return Err(Failure::new(
                    rf_status::RF_ERR_INVALID_ARGUMENT,
                    format!("pooling {other} is none of RF_POOLING_*"),
                ));
            }
        };
        let mut embedding = Vec::new();
        ctx.enter()?
            .embeddings(index, pooling, normalize, &mut embedding)?;
        // SAFETY: the caller's contract for `out`, `cap` and `out_len`.
        unsafe { write_bytes(&embedding, out, cap, out_len, ["out", "out_len"]) }
    })
}

/// The logits of the `output_index`-th batch token that asked for them (-1: the last).
/// `*logits` stays valid until the next `rf_decode` or `rf_context_free`.
///
/// # Safety
/// `ctx` live; `logits` and `n_vocab` writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn rf_get_logits(
    ctx: *mut rf_context,
    output_index: i32,
    logits: *mut *const f32,
    n_vocab: *mut usize,
) -> rf_status {
    call(|| {
        // SAFETY: the caller's contract.
        let (ctx, logits, n_vocab) = unsafe {
            (
                reference(ctx, "ctx")?,
                out(logits, "logits")?,
                out(n_vocab, "n_vocab")?,
            )
        };
        let mut context = ctx.enter()?;
        let row = context.logits(output_index)?;
        *logits = row.as_ptr();
        *n_vocab = row.len();
        Ok(())
    })
}

/// Removes positions `p0 .. p1` of a sequence (`p1 < 0`: to the end). A model with
/// sliding-window layers (Gemma 3) keeps those layers' K/V only for the last positions
/// of a sequence (its window and `n_batch` more): after a rollback of more than
/// `n_batch` positions, the next `rf_decode` of the sequence is
/// `RF_ERR_INVALID_ARGUMENT` with nothing changed; remove the whole sequence and decode
/// it again, or create the context with `swa_full` to keep every position.
///
/// # Safety
/// `ctx` must be live.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn rf_seq_remove(
    ctx: *mut rf_context,
    seq: i32,
    p0: i32,
    p1: i32,
) -> rf_status {
    call(|| {
        // SAFETY: the caller's contract.
        let ctx = unsafe { reference(ctx, "ctx")? };
        Ok(ctx.enter()?.seq_remove(seq, p0, p1)?)
    })
}

/// Moves a sequence's cached positions `p0 .. p1` (`p0 < 0`: from the first, `p1 < 0`: to
/// the last) by `delta`, re-rotating their keys, so a host can drop the oldest turns of a
/// chat with `rf_seq_remove` and continue without re-encoding the rest (llama.cpp's
/// `llama_memory_seq_add`). `RF_ERR_INVALID_ARGUMENT` when the moved positions would go
/// below 0 or pass the sequence's other tokens, `RF_ERR_UNSUPPORTED` when they lie in a KV
/// block another sequence shares (`rf_seq_copy`); either way nothing changes. A device
/// error while the keys are rewritten can leave some rotated: remove the sequence then.
/// With sliding-window layers, a shift that brings positions those layers no longer hold
/// back into the window of the next token makes that `rf_decode` fail as after a long
/// rollback (see `rf_seq_remove`).
///
/// # Safety
/// `ctx` must be live.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn rf_seq_shift(
    ctx: *mut rf_context,
    seq: i32,
    p0: i32,
    p1: i32,
    delta: i32,
) -> rf_status {
    call(|| {
        // SAFETY: the caller's contract.
        let ctx = unsafe { reference(ctx, "ctx")? };
        Ok(ctx.enter()?.seq_shift(seq, p0, p1, delta)?)
    })
}

/// Makes sequence `dst` share `src`'s positions `p0 .. p1` (copy-on-write: no K/V is
/// copied until one of them writes into a shared block).
///
/// # Safety
/// `ctx` must be live.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn rf_seq_copy(
    ctx: *mut rf_context,
    src: i32,
    dst: i32,
    p0: i32,
    p1: i32,
) -> rf_status {
    call(|| {
        // SAFETY: the caller's contract.
        let ctx = unsafe { reference(ctx, "ctx")? };
        Ok(ctx.enter()?.seq_copy(src, dst, p0, p1)?)
    })
}

/// The highest position a sequence holds, or -1 when it is empty.
///
/// # Safety
/// `ctx` live; `out_pos` writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn rf_seq_pos_max(
    ctx: *const rf_context,
    seq: i32,
    out_pos: *mut i32,
) -> rf_status {
    call(|| {
        // SAFETY: the caller's contract.
        let (ctx, out_pos) = unsafe { (reference(ctx, "ctx")?, out(out_pos, "out_pos")?) };
        *out_pos = ctx.enter()?.seq_pos_max(seq)?;
        Ok(())
    })
}

#[repr(C)]
#[derive(Clone, Copy)]
pub struct rf_memory_report {
    /// Set by the caller to `sizeof(rf_memory_report)` before the call.
    pub struct_size: u32,
    /// The blocks of the cache of every position (for a model with sliding-window layers,
    /// of its other layers; the window layers' smaller cache is in the bytes below).
    pub kv_blocks_total: u64,
    pub kv_blocks_used: u64,
    pub kv_blocks_free: u64,
    pub kv_block_tokens: u64,
    /// Host memory this context holds: its KV cache on the CPU, activations, logits.
    pub host_bytes: u64,
    /// Device memory this context holds (KV cache and buffers on the model's GPU; 0 on the
    /// CPU). The weights are the model's: `rf_model_info` reports their device and bytes.
    pub device_bytes: u64,
}

versioned_struct!(rf_memory_report {
    struct_size,
    kv_blocks_total,
    kv_blocks_used,
    kv_blocks_free,
    kv_block_tokens,
    host_bytes,
    device_bytes
});

/// KV occupancy and the context's memory. Set `out->struct_size` first.
///
/// # Safety
/// `ctx` live; `report` writable for its `struct_size`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn rf_context_memory(
    ctx: *const rf_context,
    report: *mut rf_memory_report,
) -> rf_status {
    call(|| {
        // SAFETY: the caller's contract.
        let (ctx, report) = unsafe { (reference(ctx, "ctx")?, versioned_out(report, "report")?) };
        let memory = ctx.enter()?.memory();
        let value = rf_memory_report {
            struct_size: 0,
            kv_blocks_total: memory.kv.blocks_total as u64,
            kv_blocks_used: memory.kv.blocks_used as u64,
            kv_blocks_free: memory.kv.blocks_free as u64,
            kv_block_tokens: memory.kv.block_size as u64,
            host_bytes: memory.host_bytes,
            device_bytes: memory.device_bytes,
        };
        // SAFETY: `report` is writable for its `struct_size` by the caller's contract.
        unsafe { write_versioned(report, value, "report") }
    })
}

/// Stops the `rf_decode`, `rf_generate` or state load running on `ctx` at its next layer
/// boundary with `RF_ERR_CANCELLED`; the context stays usable. A request made while no call runs
/// is dropped when the next call starts. Safe from any thread at any time.
///
/// # Safety
/// `ctx` must be live.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn rf_context_cancel(ctx: *mut rf_context) -> rf_status {
    call(|| {
        // SAFETY: the caller's contract; only the atomic flag is touched.
        let ctx = unsafe { reference(ctx, "ctx")? };
        ctx.cancel.store(true, Ordering::Relaxed);
        Ok(())
    })
}
