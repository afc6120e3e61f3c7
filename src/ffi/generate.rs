//! `rf_generate`: the common case in one call, prompt in, streamed UTF-8 out.

use std::ffi::{c_char, c_void};

use super::args::{reference, slice, text, versioned, versioned_struct};
use super::boundary::{Failure, call};
use super::chat::{chat_template, read_messages, rf_chat_message};
use super::context::rf_context;
use super::sampler::{bind_to_model, rf_sampler};
use super::status::rf_status;
use crate::generate::{GenerateParams, Prompt, generate};

/// A UTF-8 string given as pointer and length.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct rf_string {
    pub data: *const c_char,
    pub len: usize,
}

#[repr(C)]
#[derive(Clone, Copy)]
pub struct rf_generate_params {
    /// `sizeof(rf_generate_params)`, set by `rf_generate_default_params()`.
    pub struct_size: u32,
    /// Most tokens to generate.
    pub max_tokens: u32,
    /// Generation stops before the first of these strings; it is not passed on.
    pub stop: *const rf_string,
    pub n_stop: usize,
    /// The sequence the prompt continues (its cached tokens stay).
    pub seq_id: i32,
    /// Add BOS/EOS to the prompt as the model says; only when the sequence is empty (a
    /// prompt that continues a sequence gets no second BOS).
    pub add_special: bool,
    /// Control tokens written in the prompt become their ids.
    pub parse_special: bool,
}

versioned_struct!(rf_generate_params {
    struct_size,
    max_tokens,
    stop,
    n_stop,
    seq_id,
    add_special,
    parse_special
});

/// Receives `len` bytes of whole UTF-8 characters; returning false stops generation.
pub type rf_text_callback =
    Option<unsafe extern "C" fn(text: *const c_char, len: usize, user_data: *mut c_void) -> bool>;

#[unsafe(no_mangle)]
pub extern "C" fn rf_generate_default_params() -> rf_generate_params {
    let d = GenerateParams::default();
    rf_generate_params {
        struct_size: size_of::<rf_generate_params>() as u32,
        max_tokens: d.max_tokens as u32,
        stop: std::ptr::null(),
        n_stop: 0,
        seq_id: d.seq,
        add_special: d.add_special,
        parse_special: d.parse_special,
    }
}

/// Continues `prompt` on sequence `params->seq_id`, sampling with `sampler` and passing
/// the text to `on_text` as it completes. Stops at an end-of-generation token, a stop
/// string, `max_tokens`, or when `on_text` returns false (all `RF_OK`); a cancellation
/// (`rf_context_cancel`, honoured within one layer or between tokens) gives
/// `RF_ERR_CANCELLED` and the context stays usable.
///
/// An empty prompt continues from the sequence's own last token; on an empty sequence it
/// is `RF_ERR_INVALID_ARGUMENT`. When the call ends, the sequence holds the prompt and
/// every token whose text was delivered whole (also when `on_text` stopped it), and no
/// other, so a later call continues exactly where the host's text ends. A token whose
/// text the host got only in part is not kept: one in which a stop string begins, or
/// whose end was held back (the possible start of a stop string, or part of a
/// character) when `on_text` stopped the call. On any error status the sequence is left as the
/// call found it (a prompt longer than the context is `RF_ERR_CONTEXT_FULL` and leaves
/// nothing behind). On a model with sliding-window layers (Gemma 3) without `swa_full`,
/// a call that failed after adding more than the context's `n_batch` tokens can leave
/// those layers without keys the sequence's last token sees, and so can one that ended
/// taking back more than `n_batch` tokens whose text was held back (a model writing that
/// many tokens without text while the start of a stop string is pending): the next
/// `rf_decode` of the sequence is then `RF_ERR_INVALID_ARGUMENT`, and the sequence must be
/// cleared and decoded again.
///
/// # Safety
/// `ctx` and `sampler` live; `prompt` `len` readable bytes; `params` NULL or valid with
/// `n_stop` readable strings; `on_text` a valid callback.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn rf_generate(
    ctx: *mut rf_context,
    sampler: *mut rf_sampler,
    prompt: *const c_char,
    len: usize,
    params: *const rf_generate_params,
    on_text: rf_text_callback,
    user_data: *mut c_void,
) -> rf_status {
    call(|| {
        // SAFETY: the caller's contract.
        let prompt = unsafe { text(prompt, len, "prompt")? };
        // SAFETY: the caller's contract.
        unsafe {
            run(
                ctx,
                sampler,
                Prompt::Text(prompt),
                params,
                on_text,
                user_data,
            )
        }
    })
}

/// `rf_generate` from chat messages: the conversation is rendered with the model's chat
/// template and tokenized as `rf_chat_tokenize` does, so message content is always plain
/// text (a user typing `<|im_end|>` cannot end their turn or open another), then continued
/// on sequence `params->seq_id` exactly as `rf_generate` continues a prompt.
/// `params->parse_special` does not apply: the template's markup is always parsed, the
/// messages never. `add_assistant_prompt` ends the conversation with the opening of an
/// assistant turn (what a reply continues).
///
/// # Safety
/// `ctx` and `sampler` live; `messages` `n` readable messages whose strings are readable;
/// `params` NULL or valid with `n_stop` readable strings; `on_text` a valid callback.
#[unsafe(no_mangle)]
#[allow(clippy::too_many_arguments)]
pub unsafe extern "C" fn rf_generate_chat(
    ctx: *mut rf_context,
    sampler: *mut rf_sampler,
    messages: *const rf_chat_message,
    n: usize,
    add_assistant_prompt: bool,
    params: *const rf_generate_params,
    on_text: rf_text_callback,
    user_data: *mut c_void,
) -> rf_status {
    call(|| {
        // SAFETY: the caller's contract.
        let (context, messages) = unsafe { (reference(ctx, "ctx")?, read_messages(messages, n)?) };
        let prompt = Prompt::Chat {
            template: chat_template(&context.model)?,
            messages: &messages,
            add_assistant: add_assistant_prompt,
        };
        // SAFETY: the caller's contract.
        unsafe { run(ctx, sampler, prompt, params, on_text, user_data) }
    })
}

/// The body of `rf_generate` and `rf_generate_chat`.
///
/// # Safety
/// As `rf_generate`, for `ctx`, `sampler`, `params` and `on_text`.
unsafe fn run(
    ctx: *mut rf_context,
    sampler: *mut rf_sampler,
    prompt: Prompt<'_>,
    params: *const rf_generate_params,
    on_text: rf_text_callback,
    user_data: *mut c_void,
) -> Result<(), Failure> {
    // SAFETY: the caller's contract.
    let (ctx, sampler, p) = unsafe {
        (
            reference(ctx, "ctx")?,
            reference(sampler, "sampler")?,
            versioned(params, rf_generate_default_params(), "params")?,
        )
    };
    let on_text = on_text.ok_or_else(|| Failure::null("on_text"))?;
    // SAFETY: `stop` holds `n_stop` strings, each readable, by the caller's contract.
    let stop = unsafe { slice(p.stop, p.n_stop, "params.stop")? }
        .iter()
        .map(|s| unsafe { text(s.data, s.len, "stop string") }.map(str::to_owned))
        .collect::<Result<Vec<_>, _>>()?;
    let params = GenerateParams {
        max_tokens: p.max_tokens as usize,
        stop,
        seq: p.seq_id,
        add_special: p.add_special,
        parse_special: p.parse_special,
    };
    let mut sampler = sampler.enter()?;
    let mut context = ctx.enter()?;
    ctx.drop_stale_cancel();
    bind_to_model(&mut sampler, &ctx.model)?;
    let tokenizer = &ctx.model.tokenizer;
    generate(
        &mut context,
        tokenizer,
        &mut sampler,
        prompt,
        &params,
        |piece| {
            // SAFETY: the host gave this callback for exactly this use; `piece` is valid
            // for its length during the call.
            unsafe { on_text(piece.as_ptr().cast(), piece.len(), user_data) }
        },
    )?;
    Ok(())
}
