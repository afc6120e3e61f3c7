//! Chat templates: a conversation rendered as the prompt text a model was trained on.
//!
//! Templates of the common families (ChatML, Gemma, Llama 3) are recognised by their
//! marker tokens and rendered by built-in formatters that match llama.cpp's
//! `llama_chat_apply_template` byte for byte, as hosts moving from llama.cpp expect.
//! Any other template is run as the Jinja program it is, as transformers runs it, within
//! limits on its work and its output (see [`RenderLimits`]); a model without one gets ChatML.

mod jinja;
mod tokens;

pub use jinja::{RenderLimits, render as apply_jinja_template};
pub use tokens::chat_tokens;

use std::ops::Range;

use crate::error::Result;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ChatMessage<'a> {
    pub role: &'a str,
    pub content: &'a str,
}

/// The families with a built-in formatter, and what marks their templates.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Family {
    ChatMl,
    Gemma,
    Llama3,
}

fn family(template: &str) -> Option<Family> {
    if template.contains("<|im_start|>") {
        // llama.cpp reads these as Phi-4's and SmolVLM's formats, not ChatML: run as the
        // Jinja they are (Phi-4's renders as llama.cpp's format does).
        let not_chatml = ["<|im_sep|>", "<end_of_utterance>"];
        (!not_chatml.iter().any(|m| template.contains(m))).then_some(Family::ChatMl)
    } else if template.contains("<start_of_turn>") {
        Some(Family::Gemma)
    } else if template.contains("<|start_header_id|>") {
        Some(Family::Llama3)
    } else {
        None
    }
}

/// Renders `messages` with `template` (the model's `tokenizer.chat_template`, if any);
/// `add_assistant` ends the text with the opening of an assistant turn.
pub fn apply_chat_template(
    template: Option<&str>,
    messages: &[ChatMessage<'_>],
    add_assistant: bool,
    bos_token: &str,
    eos_token: &str,
) -> Result<String> {
    Ok(render(template, messages, add_assistant, bos_token, eos_token)?.text)
}

/// A rendered conversation.
struct Rendered {
    text: String,
    /// Where the messages' contents lie in `text`, in order, when the renderer knows (the
    /// built-in formatters); `None` for a Jinja template.
    contents: Option<Vec<Range<usize>>>,
}

impl Rendered {
    fn new() -> Rendered {
        Rendered {
            text: String::new(),
            contents: Some(Vec::new()),
        }
    }

    /// Text of the template's own.
    fn markup(&mut self, text: &str) {
        self.text += text;
    }

    /// A message's text, as written.
    fn content(&mut self, text: &str) {
        let start = self.text.len();
        self.text += text;
        if let Some(contents) = &mut self.contents
            && !text.is_empty()
        {
            contents.push(start..self.text.len());
        }
    }
}

fn render(
    template: Option<&str>,
    messages: &[ChatMessage<'_>],
    add_assistant: bool,
    bos_token: &str,
    eos_token: &str,
) -> Result<Rendered> {
    let Some(template) = template else {
        return Ok(chatml(messages, add_assistant));
    };
    Ok(match family(template) {
        Some(Family::ChatMl) => chatml(messages, add_assistant),
        Some(Family::Gemma) => gemma(messages, add_assistant),
        Some(Family::Llama3) => llama3(messages, add_assistant),
        None => Rendered {
            text: jinja::render(template, messages, add_assistant, bos_token, eos_token)?,
            contents: None,
        },
    })
}

fn chatml(messages: &[ChatMessage<'_>], add_assistant: bool) -> Rendered {
    let mut out = Rendered::new();
    for m in messages {
        out.markup(&format!("<|im_start|>{}\n", m.role));
        out.content(m.content);
        out.markup("<|im_end|>\n");
    }
    if add_assistant {
        out.markup("<|im_start|>assistant\n");
    }
    out
}

/// Gemma has no system role: the system text opens the next user turn.
fn gemma(messages: &[ChatMessage<'_>], add_assistant: bool) -> Rendered {
    let mut out = Rendered::new();
    let mut system: Vec<&str> = Vec::new();
    for m in messages {
        if m.role == "system" {
            system.push(m.content.trim());
            continue;
        }
        let role = if m.role == "assistant" {
            "model"
        } else {
            m.role
        };
        out.markup(&format!("<start_of_turn>{role}\n"));
        if system.iter().any(|s| !s.is_empty()) && role != "model" {
            for part in system.drain(..) {
                out.content(part);
            }
            out.markup("\n\n");
        }
        out.content(m.content.trim());
        out.markup("<end_of_turn>\n");
    }
    if add_assistant {
        out.markup("<start_of_turn>model\n");
    }
    out
}

fn llama3(messages: &[ChatMessage<'_>], add_assistant: bool) -> Rendered {
    let mut out = Rendered::new();
    for m in messages {
        out.markup(&format!(
            "<|start_header_id|>{}<|end_header_id|>\n\n",
            m.role
        ));
        out.content(m.content.trim());
        out.markup("<|eot_id|>");
    }
    if add_assistant {
        out.markup("<|start_header_id|>assistant<|end_header_id|>\n\n");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const CONVERSATION: [ChatMessage<'static>; 3] = [
        ChatMessage {
            role: "system",
            content: "Be brief.",
        },
        ChatMessage {
            role: "user",
            content: " Hi! ",
        },
        ChatMessage {
            role: "assistant",
            content: "Hello.",
        },
    ];

    #[test]
    fn gemma_folds_the_system_text_into_the_first_user_turn() {
        let text =
            apply_chat_template(Some("<start_of_turn>"), &CONVERSATION, true, "", "").unwrap();
        assert_eq!(
            text,
            "<start_of_turn>user\nBe brief.\n\nHi!<end_of_turn>\n<start_of_turn>model\nHello.<end_of_turn>\n<start_of_turn>model\n"
        );
    }

    #[test]
    fn llama3_headers_each_turn() {
        let text = apply_chat_template(
            Some("<|start_header_id|>"),
            &CONVERSATION[1..2],
            true,
            "",
            "",
        )
        .unwrap();
        assert_eq!(
            text,
            "<|start_header_id|>user<|end_header_id|>\n\nHi!<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n"
        );
    }

    /// Phi-4's template writes `<|im_start|>` but is not ChatML: llama.cpp reads
    /// `<|im_sep|>` as Phi-4's format. Its `llama_chat_apply_template` (llama-cpp-python
    /// 0.3.36) gives exactly this, as does the template run as Jinja.
    #[test]
    fn phi4_is_not_chatml() {
        let template = "{% for message in messages %}{% if (message['role'] == 'system') %}\
            {{'<|im_start|>system<|im_sep|>' + message['content'] + '<|im_end|>'}}\
            {% elif (message['role'] == 'user') %}\
            {{'<|im_start|>user<|im_sep|>' + message['content'] + '<|im_end|>'}}\
            {% elif (message['role'] == 'assistant') %}\
            {{'<|im_start|>assistant<|im_sep|>' + message['content'] + '<|im_end|>'}}\
            {% endif %}{% endfor %}\
            {% if add_generation_prompt %}{{ '<|im_start|>assistant<|im_sep|>' }}{% endif %}";
        let messages = [
            ("system", "Be brief."),
            ("user", "Hi"),
            ("assistant", "Hello!"),
        ]
        .map(|(role, content)| ChatMessage { role, content });
        let text = apply_chat_template(Some(template), &messages, true, "", "").unwrap();
        assert_eq!(
            text,
            "<|im_start|>system<|im_sep|>Be brief.<|im_end|><|im_start|>user<|im_sep|>Hi<|im_end|>\
             <|im_start|>assistant<|im_sep|>Hello!<|im_end|><|im_start|>assistant<|im_sep|>"
        );
    }

    #[test]
    fn other_templates_run_as_jinja() {
        let template = "{{ bos_token }}{% for m in messages %}[{{ m['role'] }}] {{ m.content }}\n{% endfor %}\
                        {% if add_generation_prompt %}[assistant]{% endif %}";
        let text =
            apply_chat_template(Some(template), &CONVERSATION[..2], true, "<s>", "</s>").unwrap();
        assert_eq!(text, "<s>[system] Be brief.\n[user]  Hi! \n[assistant]");
        let failing = "{{ raise_exception('no system role') }}";
        let err = apply_chat_template(Some(failing), &CONVERSATION, true, "", "").unwrap_err();
        assert!(err.to_string().contains("no system role"), "{err}");
    }
}
