//! `rf_chat_apply_template`: a conversation as prompt text (see `crate::chat`).

use std::ffi::c_char;

use super::args::{reference, slice, text, write_bytes};
use super::boundary::{Failure, call};
use super::model::rf_model;
use super::status::rf_status;
use crate::chat::{ChatMessage, apply_chat_template};

/// One message of a conversation: role (`system`, `user`, `assistant`) and content, each
/// `(ptr, len)` UTF-8.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct rf_chat_message {
    pub role: *const c_char,
    pub role_len: usize,
    pub content: *const c_char,
    pub content_len: usize,
}

/// Renders the conversation with the model's chat template; `add_assistant_prompt` ends
/// it with the opening of an assistant turn.
///
/// A template that is not one of the built-in families runs as a Jinja program from the
/// model file, so it runs within limits scaled to the conversation: a work limit of
/// 1,000,000 fuel plus 1,000 per message plus 1 per byte of message text (one fuel per
/// template step and per 64 bytes it builds, compares or prints), and an output limit of
/// 1 MiB plus 1 KiB per message plus four times the bytes of message text. Before it runs,
/// a template over 256 KiB, expressions nested deeper than 256 levels or with more than 64
/// unary operators in a row, and constants folded to more than 1,024 items are refused;
/// while it runs, values nested deeper than 64 levels and a namespace stored in a
/// namespace are refused. Real templates use a small fraction of any of these. A template
/// that exceeds one returns `RF_ERR_INVALID_MODEL`, and `rf_last_error` names the limit
/// and its value; a template that fails otherwise (a syntax error, or `raise_exception`
/// refusing the conversation) returns `RF_ERR_INVALID_ARGUMENT`.
///
/// # Safety
/// `model` live; `messages` `n` readable messages whose strings are readable; `buf` `cap`
/// writable bytes (or NULL when `cap` is 0); `out_len` writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn rf_chat_apply_template(
    model: *const rf_model,
    messages: *const rf_chat_message,
    n: usize,
    add_assistant_prompt: bool,
    buf: *mut c_char,
    cap: usize,
    out_len: *mut usize,
) -> rf_status {
    call(|| {
        // SAFETY: the caller's contract.
        let (model, raw) = unsafe { (reference(model, "model")?, slice(messages, n, "messages")?) };
        let messages = raw
            .iter()
            .map(|m| {
                // SAFETY: each message's strings are readable by the caller's contract.
                let (role, content) = unsafe {
                    (
                        text(m.role, m.role_len, "message role")?,
                        text(m.content, m.content_len, "message content")?,
                    )
                };
                Ok(ChatMessage { role, content })
            })
            .collect::<Result<Vec<_>, Failure>>()?;
        let shared = &model.shared;
        let template = shared.gguf().get::<&str>("tokenizer.chat_template")?;
        let specials = shared.tokenizer.specials();
        let token_text = |id: Option<u32>| {
            id.and_then(|id| shared.tokenizer.vocab().text(id))
                .unwrap_or_default()
        };
        let rendered = apply_chat_template(
            template,
            &messages,
            add_assistant_prompt,
            token_text(specials.bos),
            token_text(specials.eos),
        )?;
        // SAFETY: the caller's contract for `buf`, `cap` and `out_len`.
        unsafe { write_bytes(rendered.as_bytes(), buf.cast::<u8>(), cap, out_len) }
    })
}
