//! The chat-template target's input.
//!
//! Format: a flags byte (bit 0: add the assistant prompt; bit 1: no template at all, the
//! ChatML fallback), then NUL-separated fields: the template, the BOS text, the EOS text,
//! then role and content of each message in turn (at most [`MAX_MESSAGES`]; a role
//! without content is dropped). Fields are read as UTF-8, lossily. Seeds read as text.

use crate::bytes::{ByteReader, ByteWriter};

const SEPARATOR: u8 = 0;
pub const MAX_MESSAGES: usize = 32;

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ChatInput {
    pub add_assistant: bool,
    pub template: Option<String>,
    pub bos: String,
    pub eos: String,
    /// (role, content)
    pub messages: Vec<(String, String)>,
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

pub fn parse(bytes: &[u8]) -> ChatInput {
    let mut r = ByteReader::new(bytes);
    let flags = r.u8();
    let template = text(r.until(SEPARATOR));
    let bos = text(r.until(SEPARATOR));
    let eos = text(r.until(SEPARATOR));
    let mut messages = Vec::new();
    while !r.is_empty() && messages.len() < MAX_MESSAGES {
        let role = text(r.until(SEPARATOR));
        if r.is_empty() {
            break;
        }
        messages.push((role, text(r.until(SEPARATOR))));
    }
    ChatInput {
        add_assistant: flags & 1 != 0,
        template: (flags & 2 == 0).then_some(template),
        bos,
        eos,
        messages,
    }
}

/// The bytes [`parse`] reads back as `input` (whose texts hold no NUL).
pub fn encode(input: &ChatInput) -> Vec<u8> {
    let mut w = ByteWriter::default();
    let flags = u8::from(input.add_assistant) | (u8::from(input.template.is_none()) << 1);
    w.u8(flags)
        .field(
            input.template.as_deref().unwrap_or("").as_bytes(),
            SEPARATOR,
        )
        .field(input.bos.as_bytes(), SEPARATOR)
        .field(input.eos.as_bytes(), SEPARATOR);
    for (role, content) in &input.messages {
        w.field(role.as_bytes(), SEPARATOR)
            .field(content.as_bytes(), SEPARATOR);
    }
    w.bytes
}
