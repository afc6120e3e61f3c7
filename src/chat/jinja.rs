//! Chat templates run as Jinja programs, within limits.
//!
//! A template comes from the model file, so it is untrusted code: a loop of loops, a value
//! that doubles in size a few dozen times or a namespace that holds itself would otherwise
//! hang the host, or abort it when memory or the stack runs out. Every render has a work
//! budget (minijinja's fuel, which also pays for compiling and for the guards' walks) and
//! an output cap, both scaled to the conversation, and exceeding either is an error naming
//! the limit. minijinja leaves work unpriced in places (see `source_check`, `walk`), so
//! the template is checked before it is compiled and runs with guards placed between its
//! steps (`rewrite`, `guards`), on a thread of its own with a stack of known size.

mod guards;
mod rewrite;
mod source_check;
mod transformers;
mod walk;

use std::collections::BTreeMap;
use std::thread;

use indexmap::IndexMap;
use minijinja::machinery::{eval, get_compiled_template, make_string_output};
use minijinja::syntax::SyntaxConfig;
use minijinja::{Environment, Error as JinjaError, ErrorKind, Value, context};

use super::ChatMessage;
use crate::error::{Error, Result};

// The limits, measured against real templates under minijinja 3.1.0 with the guards in
// place. Fuel is one unit per template step, per 64 bytes of data a template makes, prints
// or feeds to a filter, per two items a guard walks or a step it guards visits, and per
// expression node compiled. Phi-4-mini's, DeepSeek-R1-Distill's and Mistral-Small-3.1's
// templates (llama.cpp's models/templates; Mistral's with a fixed date) spend 280 to 850
// fuel on a three-message chat, 45 to 105 fuel per further message and at most 0.12 fuel
// per byte of message text; they print the message text once plus at most 31 bytes a
// message, plus fixed text (Mistral Small's default system prompt, about 1 KiB, is the
// longest seen). So the work limit is over 1000 times their fixed cost, 10 times their
// cost per message and 8 times their cost per byte; the output limit, which counts text a
// macro or a `set` block captures and again when it is printed, has room for 1 MiB of
// fixed text, 1 KiB a message and every message written four times. A hostile template
// stops within about 150 ms per million fuel in a release build, having built at most
// about 64 bytes per fuel.

/// Fuel every render may spend whatever the conversation.
const FUEL_BASE: u64 = 1_000_000;
/// Fuel added for each message.
const FUEL_PER_MESSAGE: u64 = 1_000;
/// Fuel added for each byte of message text (and of the BOS and EOS texts).
const FUEL_PER_INPUT_BYTE: u64 = 1;

/// Output bytes every render may write whatever the conversation.
const OUTPUT_BASE: usize = 1 << 20;
/// Output bytes added for each message.
const OUTPUT_PER_MESSAGE: usize = 1 << 10;
/// Output bytes added for each byte of message text (and of the BOS and EOS texts).
const OUTPUT_PER_INPUT_BYTE: usize = 4;

/// What rendering one conversation may spend: a fixed allowance plus a part for each
/// message and each byte of text, so a long conversation never hits a limit that a short
/// one fits in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RenderLimits {
    /// The work budget, in minijinja fuel.
    pub fuel: u64,
    /// The most bytes the template may write, text captured by macros and `set` blocks
    /// included, and the largest size a value it makes may have (a unit per item and
    /// per byte of text, about what printing it would write).
    pub output_bytes: usize,
}

impl RenderLimits {
    pub fn for_conversation(
        messages: &[ChatMessage<'_>],
        bos_token: &str,
        eos_token: &str,
    ) -> RenderLimits {
        let text_bytes = messages
            .iter()
            .map(|m| m.role.len().saturating_add(m.content.len()))
            .fold(
                bos_token.len().saturating_add(eos_token.len()),
                usize::saturating_add,
            );
        let n = messages.len();
        let as_u64 = |v: usize| u64::try_from(v).unwrap_or(u64::MAX);
        RenderLimits {
            fuel: FUEL_BASE
                .saturating_add(FUEL_PER_MESSAGE.saturating_mul(as_u64(n)))
                .saturating_add(FUEL_PER_INPUT_BYTE.saturating_mul(as_u64(text_bytes))),
            output_bytes: OUTPUT_BASE
                .saturating_add(OUTPUT_PER_MESSAGE.saturating_mul(n))
                .saturating_add(OUTPUT_PER_INPUT_BYTE.saturating_mul(text_bytes)),
        }
    }
}

/// Stack for the thread a template runs on. minijinja recurses natively while parsing
/// and compiling (once per level of a chain of operators, up to `source_check`'s limits),
/// for macros and recursive loops (down to its recursion limit of 500) and through nested
/// values (down to `walk::MAX_DEPTH`); a host's thread may have as little as 128 KiB, so
/// a render never runs on the caller's stack. Only the pages touched are committed.
const RENDER_STACK_BYTES: usize = 64 << 20;

/// Renders `messages` by running `template` as the Jinja program it is, as Hugging Face
/// transformers' `apply_chat_template` does, whatever its family: a template with
/// defaults of its own (a default system prompt, today's date) writes them here, where
/// [`apply_chat_template`](super::apply_chat_template) writes llama.cpp's built-in
/// format for the families it knows. A template that exceeds a limit is an invalid
/// model; one that fails otherwise (a syntax error, `raise_exception` refusing the
/// conversation) an invalid argument.
pub fn render(
    template: &str,
    messages: &[ChatMessage<'_>],
    add_generation_prompt: bool,
    bos_token: &str,
    eos_token: &str,
) -> Result<String> {
    let limits = RenderLimits::for_conversation(messages, bos_token, eos_token);
    thread::scope(|scope| {
        let render = thread::Builder::new()
            .name("rf-chat-template".into())
            .stack_size(RENDER_STACK_BYTES)
            .spawn_scoped(scope, || {
                let conversation = (messages, add_generation_prompt, bos_token, eos_token);
                render_here(template, conversation, limits)
            })
            .map_err(|e| {
                Error::OutOfMemory(format!(
                    "a thread with {RENDER_STACK_BYTES} bytes of stack for the chat template: {e}"
                ))
            })?;
        // A panic is the library's bug, not the template's: it goes on to the caller (the
        // C ABI's boundary reports it) as if the render had run on the caller's thread.
        render
            .join()
            .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
    })
}

/// The messages, whether to open an assistant turn, and the BOS and EOS texts.
type Conversation<'a> = (&'a [ChatMessage<'a>], bool, &'a str, &'a str);

fn render_here(
    template: &str,
    conversation: Conversation<'_>,
    limits: RenderLimits,
) -> Result<String> {
    let (messages, add_generation_prompt, bos_token, eos_token) = conversation;
    let out_of_fuel = || {
        Error::InvalidModel(format!(
            "chat template exceeded its work limit of {} fuel for this conversation \
             (one fuel per step, per 64 bytes it builds or prints, per 2 items it walks)",
            limits.fuel
        ))
    };
    source_check::check_length(template)?;
    let template = transformers::as_jinja2_reads_it(template);
    let template = template.as_ref();
    let compiling = source_check::check(template, limits.fuel, out_of_fuel)?;
    let mut env = Environment::new();
    // transformers' jinja2: a block tag takes the newline after it, and the spaces and
    // tabs before it on its line.
    let syntax = SyntaxConfig::builder()
        .trim_blocks(true)
        .lstrip_blocks(true)
        .build()
        .map_err(template_error)?;
    env.set_syntax(syntax);
    // At least one fuel is left: `check` refused a template whose compiling needs more.
    env.set_fuel(Some(limits.fuel - compiling));
    // `debug()` prints the whole state, walking values no guard has seen.
    env.remove_global("debug");
    // Hugging Face templates report misuse with `raise_exception("...")`.
    env.add_function(
        "raise_exception",
        |message: String| -> std::result::Result<String, JinjaError> {
            Err(JinjaError::new(ErrorKind::InvalidOperation, message))
        },
    );
    // Maps of values: reading a message's text shares it instead of copying it. The keys
    // in the order transformers' messages have them (`message|tojson`, `message.items()`).
    let messages = Value::from_iter(messages.iter().map(|m| {
        Value::from(IndexMap::from([
            (Value::from("role"), Value::from(m.role)),
            (Value::from("content"), Value::from(m.content)),
        ]))
    }));
    let stop = guards::install(&mut env, limits, &messages);
    // Compiled without a name: `include`, `import` and `extends` find no template, this
    // one (unguarded) included.
    let compiled = env.template_from_str(template).map_err(template_error)?;
    let compiled = get_compiled_template(&compiled);
    let code = rewrite::guarded(&compiled.instructions)?;
    let blocks = compiled
        .blocks
        .iter()
        .map(|(name, block)| Ok((*name, rewrite::guarded(block)?)))
        .collect::<Result<BTreeMap<_, _>>>()?;
    // transformers passes `tools` and `documents` always, `None` when there are none.
    let ctx = context! {
        messages => messages,
        tools => (),
        documents => (),
        add_generation_prompt => add_generation_prompt,
        bos_token => bos_token,
        eos_token => eos_token,
    };
    let mut text = String::new();
    let rendered = eval(
        &env,
        &code,
        ctx,
        &blocks,
        &mut make_string_output(&mut text),
        compiled.initial_auto_escape.clone(),
    )
    .map(drop);
    // A limit stops the render even where minijinja dropped the error it caused.
    if let Some(refused) = stop.get() {
        return Err(Error::InvalidModel(refused.clone()));
    }
    match rendered {
        Ok(()) => Ok(text),
        Err(e) if e.kind() == ErrorKind::OutOfFuel => Err(out_of_fuel()),
        Err(e) => Err(template_error(e)),
    }
}

fn template_error(e: JinjaError) -> Error {
    Error::InvalidArgument(format!("chat template: {e}"))
}
