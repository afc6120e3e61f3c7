//! A conversation straight to token ids, with the template's markup apart from what the
//! messages say: only the template's own text becomes control tokens, and a message's
//! content is always plain text. A user who types `<|im_end|>` into a message gets those
//! characters, not the end of their turn. (Rendering to text and tokenizing that with
//! `parse_special`, as llama.cpp's `llama_chat_apply_template` + tokenize do, cannot tell
//! the two apart.)
//!
//! For content without control-token text the tokens are exactly those of the rendered
//! text tokenized with `parse_special`, less a BOS (EOS) text the template wrote first
//! (last) where tokenizing adds BOS (EOS) itself, as llama.cpp's chat path takes them off
//! too: the tokens hold one BOS, not the template's and the vocabulary's. The built-in
//! formatters know where they put each content. For a Jinja template each content is
//! looked up in the output, in order, where it stands whole (no control token written
//! across its ends); then, when any content holds control-token text, the control tokens
//! obtained are checked against those of the same conversation rendered with that text
//! taken out of the messages, so a template that writes a content twice, in pieces or
//! changed cannot slip one through: such a conversation is refused rather than tokenized
//! unsafely.

use std::ops::Range;

use super::{ChatMessage, render};
use crate::error::{Error, Result};
use crate::tokenizer::{TokenId, Tokenizer};

/// The tokens of `messages` rendered with `template` (see [`super::apply_chat_template`]);
/// `add_special` adds BOS/EOS as the vocabulary says.
pub fn chat_tokens(
    tokenizer: &Tokenizer,
    template: Option<&str>,
    messages: &[ChatMessage<'_>],
    add_assistant: bool,
    add_special: bool,
) -> Result<Vec<TokenId>> {
    check_roles(tokenizer, messages)?;
    let (bos, eos) = tokenizer.bos_eos_texts();
    let rendered = render(template, messages, add_assistant, bos, eos)?;
    let known = rendered.contents.is_some();
    let contents = match rendered.contents {
        Some(contents) => contents,
        None => locate_contents(tokenizer, &rendered.text, messages),
    };
    let (text, contents, taken_off) =
        without_added_specials(tokenizer, rendered.text, contents, add_special);
    let tokens = tokenizer.tokenize_with_plain_ranges(&text, add_special, &contents)?;
    if known {
        return Ok(tokens);
    }
    let cleaned: Vec<String> = messages
        .iter()
        .map(|m| tokenizer.without_control_text(m.content))
        .collect();
    if cleaned.iter().zip(messages).all(|(c, m)| *c == m.content) {
        return Ok(tokens);
    }
    let neutral: Vec<ChatMessage<'_>> = messages
        .iter()
        .zip(&cleaned)
        .map(|(m, content)| ChatMessage {
            role: m.role,
            content,
        })
        .collect();
    let neutral_text = render(template, &neutral, add_assistant, bos, eos)?.text;
    let (neutral_text, _, neutral_taken_off) =
        without_added_specials(tokenizer, neutral_text, vec![], add_special);
    let expected = tokenizer.tokenize(&neutral_text, add_special, true)?;
    let controls = |ids: &[TokenId]| -> Vec<TokenId> {
        ids.iter()
            .copied()
            .filter(|&id| tokenizer.is_control(id))
            .collect()
    };
    // A BOS (EOS) text taken off only where the messages hold control text was theirs.
    if controls(&tokens) != controls(&expected) || taken_off != neutral_taken_off {
        return Err(Error::InvalidArgument(
            "a message holds control-token text that the chat template does not write \
             exactly once as given, so it cannot be kept plain text; take the control-token \
             text out of the message, or render the template and tokenize it yourself"
                .into(),
        ));
    }
    Ok(tokens)
}

/// Which of BOS and EOS text [`without_added_specials`] took off.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct TakenOff {
    bos: bool,
    eos: bool,
}

/// `text` without the BOS text it starts with where tokenizing with `add_special` adds
/// BOS, and without the EOS text it ends with where that adds EOS, and `contents` (the
/// messages' ranges in `text`) moved to match. A message's content found in `contents`
/// that holds such text keeps it.
fn without_added_specials(
    tokenizer: &Tokenizer,
    mut text: String,
    contents: Vec<Range<usize>>,
    add_special: bool,
) -> (String, Vec<Range<usize>>, TakenOff) {
    let (bos, eos) = tokenizer.bos_eos_texts();
    let strip_bos = add_special
        && tokenizer.add_bos()
        && !bos.is_empty()
        && text.starts_with(bos)
        && contents.iter().all(|r| r.start >= bos.len());
    let kept_from = if strip_bos { bos.len() } else { 0 };
    let strip_eos = add_special
        && tokenizer.add_eos()
        && !eos.is_empty()
        && text.len() >= kept_from + eos.len()
        && text.ends_with(eos)
        && contents.iter().all(|r| r.end <= text.len() - eos.len());
    if strip_eos {
        text.truncate(text.len() - eos.len());
    }
    text.replace_range(..kept_from, "");
    let contents = contents
        .into_iter()
        .map(|r| r.start - kept_from..r.end - kept_from)
        .collect();
    let taken_off = TakenOff {
        bos: strip_bos,
        eos: strip_eos,
    };
    (text, contents, taken_off)
}

/// Refuses a role that is not a plain name: templates write the role inside their own
/// markup, where it cannot be kept plain text the way a content is. A role holding
/// control-token text (`user<|im_end|>\n<|im_start|>system`) would open a turn of its own;
/// one holding markup characters could join the template's markup into a control token
/// (Phi-4-mini writes `'<|' + role + '|>'`, so a role of `end|><|system` closes the turn
/// and opens a system one) or a line of its own. A name of letters, digits, `_`, `-`, `.`
/// and `:` can do neither: at most it names another role.
fn check_roles(tokenizer: &Tokenizer, messages: &[ChatMessage<'_>]) -> Result<()> {
    let is_name = |role: &str| {
        !role.is_empty()
            && role
                .chars()
                .all(|c| c.is_alphanumeric() || matches!(c, '_' | '-' | '.' | ':'))
    };
    match messages
        .iter()
        .position(|m| !is_name(m.role) || tokenizer.without_control_text(m.role) != m.role)
    {
        Some(i) => Err(Error::InvalidArgument(format!(
            "the role of message {i} is not a plain name (letters, digits, '_', '-', '.', \
             ':'); the chat template writes it as markup, where other text could change \
             the conversation's turns"
        ))),
        None => Ok(()),
    }
}

/// Where each message's content lies in `text`, in order: the first place after the
/// previous content where it (or, failing that, its trimmed form) stands whole. A
/// content not found is left out.
fn locate_contents(
    tokenizer: &Tokenizer,
    text: &str,
    messages: &[ChatMessage<'_>],
) -> Vec<Range<usize>> {
    let mut found = Vec::new();
    let mut from = 0;
    for m in messages {
        let forms = [m.content, m.content.trim()];
        if let Some(range) = forms
            .iter()
            .filter(|c| !c.is_empty())
            .find_map(|c| find_whole(tokenizer, text, c, from))
        {
            from = range.end;
            found.push(range);
        }
    }
    found
}

/// The first occurrence of `needle` in `text` at or after `from` that no control token
/// written in `text` crosses the ends of.
fn find_whole(
    tokenizer: &Tokenizer,
    text: &str,
    needle: &str,
    from: usize,
) -> Option<Range<usize>> {
    let mut at = from;
    while let Some(offset) = text.get(at..)?.find(needle) {
        let start = at + offset;
        let end = start + needle.len();
        if !tokenizer.control_text_crosses(text, start)
            && !tokenizer.control_text_crosses(text, end)
        {
            return Some(start..end);
        }
        at = start + text[start..].chars().next().map_or(1, char::len_utf8);
    }
    None
}
