//! Chat templates run as Jinja programs, within limits.
//!
//! A template comes from the model file, so it is untrusted code: a loop of loops, or a
//! value that doubles in size a few dozen times, would otherwise hang the host or abort it
//! when memory runs out. Every render has a work budget (minijinja's fuel) and an output
//! cap, both scaled to the conversation, and exceeding either is an error naming the limit.

use std::collections::BTreeMap;
use std::io;

use minijinja::{Environment, Error as JinjaError, ErrorKind, Value, context};

use super::ChatMessage;
use crate::error::{Error, Result};

// The limits, measured against real templates under minijinja 3.1.0. Fuel is one unit per
// template step plus one per 64 bytes of data a template makes, prints or feeds to a
// filter. SmolLM2's template, Phi-4-mini's and DeepSeek-R1-Distill's (llama.cpp's
// models/templates) spend 90 to 190 fuel on a three-message chat, 25 to 60 fuel per
// further message and at most 0.07 fuel per byte of message text; they print the message
// text once plus at most 31 bytes a message, plus fixed text (Mistral Small's default
// system prompt, about 1 KiB, is the longest seen). So the work limit is 5000 times their
// fixed cost, 16 times their cost per message and 14 times their cost per byte; the output
// limit has room for 1 MiB of fixed text, 1 KiB a message and every message printed twice.
// A hostile template stops within about 20 ms per million fuel, having built at most 64
// bytes per fuel, except where minijinja builds a value before charging for it: a list
// concatenated lazily more than 32 deep (`l + l`), and a list that nests one list many
// times formatted as text (`l | string`, `'' ~ l`). Those need a fix in minijinja itself.

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
const OUTPUT_PER_INPUT_BYTE: usize = 2;

/// What rendering one conversation may spend: a fixed allowance plus a part for each
/// message and each byte of text, so a long conversation never hits a limit that a short
/// one fits in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RenderLimits {
    /// The work budget, in minijinja fuel.
    pub fuel: u64,
    /// The most bytes the rendered text may have.
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

/// Renders `messages` with the Jinja `template`, as Hugging Face's `apply_chat_template`
/// does. A template that exceeds a limit is an invalid model; one that fails otherwise
/// (a syntax error, `raise_exception` refusing the conversation) an invalid argument.
pub fn render(
    template: &str,
    messages: &[ChatMessage<'_>],
    add_generation_prompt: bool,
    bos_token: &str,
    eos_token: &str,
) -> Result<String> {
    let limits = RenderLimits::for_conversation(messages, bos_token, eos_token);
    let mut env = Environment::new();
    env.set_fuel(Some(limits.fuel));
    // Hugging Face templates report misuse with `raise_exception("...")`.
    env.add_function(
        "raise_exception",
        |message: String| -> std::result::Result<String, JinjaError> {
            Err(JinjaError::new(ErrorKind::InvalidOperation, message))
        },
    );
    env.add_template("chat", template).map_err(template_error)?;
    let messages = messages.iter().map(|m| {
        Value::from(BTreeMap::from([
            ("role", m.role.to_owned()),
            ("content", m.content.to_owned()),
        ]))
    });
    let ctx = context! {
        messages => Value::from_iter(messages),
        add_generation_prompt => add_generation_prompt,
        bos_token => bos_token,
        eos_token => eos_token,
    };
    let mut out = CappedOutput::new(limits.output_bytes);
    let rendered = env
        .get_template("chat")
        .and_then(|t| t.render_captured_to(ctx, &mut out).map(drop));
    let CappedOutput { text, stop, .. } = out;
    match (rendered, stop) {
        (Ok(()), _) => String::from_utf8(text)
            .map_err(|e| Error::InvalidModel(format!("chat template wrote invalid UTF-8: {e}"))),
        (Err(_), Some(refused)) => Err(refused),
        (Err(e), None) if e.kind() == ErrorKind::OutOfFuel => Err(Error::InvalidModel(format!(
            "chat template exceeded its work limit of {} fuel for this conversation \
             (one fuel per step and per 64 bytes it builds or prints)",
            limits.fuel
        ))),
        (Err(e), None) => Err(template_error(e)),
    }
}

fn template_error(e: JinjaError) -> Error {
    Error::InvalidArgument(format!("chat template: {e}"))
}

/// The rendered text, refusing to grow past `limit` bytes. minijinja streams its output
/// through this writer piece by piece, so a template printing without end is stopped at
/// the limit, not after building the whole text.
struct CappedOutput {
    text: Vec<u8>,
    limit: usize,
    /// Why a write was refused; minijinja reports only that writing failed.
    stop: Option<Error>,
}

impl CappedOutput {
    fn new(limit: usize) -> CappedOutput {
        CappedOutput {
            text: Vec::new(),
            limit,
            stop: None,
        }
    }

    fn refuse(&mut self, why: Error) -> io::Result<usize> {
        self.stop = Some(why);
        Err(io::Error::other("chat template output refused"))
    }
}

impl io::Write for CappedOutput {
    fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
        if self.text.len().saturating_add(bytes.len()) > self.limit {
            let limit = self.limit;
            return self.refuse(Error::InvalidModel(format!(
                "chat template output exceeded its limit of {limit} bytes for this conversation"
            )));
        }
        if self.text.try_reserve(bytes.len()).is_err() {
            let needed = self.text.len() + bytes.len();
            return self.refuse(Error::OutOfMemory(format!(
                "chat template output needs {needed} bytes"
            )));
        }
        self.text.extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}
