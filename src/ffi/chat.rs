//! `rf_chat_apply_template` and `rf_chat_tokenize`: a conversation as prompt text, or as
//! tokens with the messages kept plain text (see `crate::chat`).

use std::ffi::c_char;

use super::args::{reference, slice, text, write_bytes, write_text};
use super::boundary::{Failure, call};
use super::model::{LoadedModel, rf_model};
use super::status::rf_status;
use crate::chat::{ChatMessage, apply_chat_template, chat_tokens};

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
/// To give a conversation to the model, prefer `rf_chat_tokenize` or `rf_generate_chat`:
/// this text tokenized with `parse_special` reads control-token text an end user typed
/// into a message as markup (prompt injection).
///
/// A template that is not one of the built-in families runs as the Jinja program it is,
/// as Hugging Face transformers' `apply_chat_template` runs it: jinja2 with `trim_blocks`
/// and `lstrip_blocks`, loop controls, Python's string, dict and list methods, `tojson`
/// as `json.dumps` writes it, `strftime_now` in local time, `tools` and `documents` none.
/// It comes from the model file, so it runs within limits scaled to the conversation: a work limit of
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
        let (model, messages) =
            unsafe { (reference(model, "model")?, read_messages(messages, n)?) };
        let shared = &model.shared;
        let template = chat_template(shared)?;
        let (bos, eos) = shared.tokenizer.bos_eos_texts();
        let rendered = apply_chat_template(template, &messages, add_assistant_prompt, bos, eos)?;
        // SAFETY: the caller's contract for `buf`, `cap` and `out_len`.
        unsafe { write_text(rendered.as_bytes(), buf, cap, out_len) }
    })
}

/// The conversation as tokens, ready for `rf_decode`: the model's chat template renders it
/// as `rf_chat_apply_template` does, and only the template's own markup becomes control
/// tokens. Message content is always plain text: a user who types `<|im_end|>` or
/// `<start_of_turn>` into a message gets those characters, not a control token (unlike
/// `rf_chat_apply_template` + `rf_tokenize` with `parse_special`, which cannot tell the
/// markup from the messages). For messages without control-token text the tokens are
/// exactly those of that pair, except that where `add_special` adds BOS (EOS), a BOS (EOS)
/// text the template wrote first (last) is taken off, as llama.cpp's chat path does, so
/// the tokens hold one, not two. `add_special` adds BOS/EOS as the vocabulary says; size
/// and errors as `rf_tokenize`.
///
/// A Jinja template (not one of the built-in families) is rendered and each message found
/// in its output; when a message holds control-token text that such a template does not
/// write exactly once as given (it splits, repeats or changes the message), the call is
/// refused with `RF_ERR_INVALID_ARGUMENT` rather than risk reading the text as markup.
/// A role is written inside the template's markup, so it must be a plain name (letters,
/// digits, `_`, `-`, `.`, `:`, no control-token text); any other is refused with
/// `RF_ERR_INVALID_ARGUMENT` too, as it could close the turn and open another.
///
/// # Safety
/// `model` live; `messages` `n` readable messages whose strings are readable; `tokens`
/// `cap` writable ids (or NULL when `cap` is 0); `n_tokens` writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn rf_chat_tokenize(
    model: *const rf_model,
    messages: *const rf_chat_message,
    n: usize,
    add_assistant_prompt: bool,
    add_special: bool,
    tokens: *mut i32,
    cap: usize,
    n_tokens: *mut usize,
) -> rf_status {
    call(|| {
        // SAFETY: the caller's contract.
        let (model, messages) =
            unsafe { (reference(model, "model")?, read_messages(messages, n)?) };
        let shared = &model.shared;
        let ids = chat_tokens(
            &shared.tokenizer,
            chat_template(shared)?,
            &messages,
            add_assistant_prompt,
            add_special,
        )?;
        let ids: Vec<i32> = ids.into_iter().map(|id| id as i32).collect();
        // SAFETY: the caller's contract for `tokens`, `cap` and `n_tokens`.
        unsafe { write_bytes(&ids, tokens, cap, n_tokens, ["tokens", "n_tokens"]) }
    })
}

/// The model's chat template, if it has one.
pub(super) fn chat_template(model: &LoadedModel) -> Result<Option<&str>, Failure> {
    Ok(model.gguf().get::<&str>("tokenizer.chat_template")?)
}

/// The host's messages as borrowed text.
///
/// # Safety
/// `messages` `n` readable messages whose strings are readable for `'a`.
pub(super) unsafe fn read_messages<'a>(
    messages: *const rf_chat_message,
    n: usize,
) -> Result<Vec<ChatMessage<'a>>, Failure> {
    // SAFETY: the caller's contract.
    let raw = unsafe { slice(messages, n, "messages")? };
    raw.iter()
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
        .collect()
}
