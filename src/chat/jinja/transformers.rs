//! What a template has under Hugging Face's `apply_chat_template` (jinja2 as transformers
//! sets it up) beyond minijinja's builtins: Python's string, dict and list methods
//! (`content.strip()`, `message.get('tool_calls')`: minijinja-contrib's pycompat, which
//! pays fuel ahead for what `replace` and `join` make), `tojson` as `json.dumps` writes
//! it, `strftime_now`, and the `{% generation %}` tag. What a method or function makes
//! is checked and charged as the guards check any value a step visits.

mod json;

use std::borrow::Cow;
use std::ops::Range;
use std::sync::Arc;

use minijinja::machinery::{Token, tokenize};
use minijinja::value::{Kwargs, Value};
use minijinja::{Environment, Error as JinjaError, ErrorKind, State};

use super::guards::Guard;

/// Adds the methods, `tojson` and `strftime_now` to `env`, each checked by `guard`.
pub(super) fn install(env: &mut Environment<'_>, guard: &Arc<Guard>) {
    let method = guard.clone();
    env.set_unknown_method_callback(move |state, value, name, args| {
        if let ("format", Some(format)) = (name, value.as_str()) {
            method.pay_ahead(state, padding_asked(format))?;
        }
        let made = minijinja_contrib::pycompat::unknown_method_callback(state, value, name, args)?;
        method.visit(state, &made)?;
        Ok(made)
    });
    let tojson = guard.clone();
    env.add_filter(
        "tojson",
        move |state: &State, value: Value, kwargs: Kwargs| -> Result<Value, JinjaError> {
            let options = json::Options::from_kwargs(&kwargs)?;
            let text =
                json::dumps(&value, &options, tojson.max_value_bytes()).map_err(|e| match e {
                    json::DumpError::TooLong => tojson.too_large(),
                    json::DumpError::Invalid(why) => {
                        JinjaError::new(ErrorKind::InvalidOperation, format!("tojson: {why}"))
                    }
                })?;
            let made = Value::from_safe_string(text);
            tojson.visit(state, &made)?;
            Ok(made)
        },
    );
    let time = guard.clone();
    env.add_function(
        "strftime_now",
        move |state: &State, format: &str| -> Result<Value, JinjaError> {
            // A directive writes a few dozen bytes at most: paid ahead, a fuel a byte.
            state.consume_fuel(u64::try_from(format.len()).unwrap_or(u64::MAX))?;
            let now = jiff::Zoned::now();
            let text = jiff::fmt::strtime::format(format, &now).map_err(|e| {
                JinjaError::new(ErrorKind::InvalidOperation, format!("strftime_now: {e}"))
            })?;
            let made = Value::from(text);
            time.visit(state, &made)?;
            Ok(made)
        },
    );
}

/// The sum of the numbers written in `format`'s replacement fields (`{:>80}`, `{0:.3f}`),
/// doubled braces being text: at least the widths and precisions `str.format` pads its
/// values to, which it makes in full before any guard sees them. (A field's index counts
/// too, which only overstates.)
fn padding_asked(format: &str) -> u64 {
    let mut total = 0u64;
    let mut number = 0u64;
    let mut in_field = false;
    let mut bytes = format.bytes().peekable();
    while let Some(b) = bytes.next() {
        if !in_field {
            if b == b'{' && bytes.next_if_eq(&b'{').is_none() {
                in_field = true;
            }
        } else if b.is_ascii_digit() {
            number = number
                .saturating_mul(10)
                .saturating_add(u64::from(b - b'0'));
        } else {
            total = total.saturating_add(number);
            number = 0;
            in_field = b != b'}';
        }
    }
    total.saturating_add(number)
}

/// `template` as jinja2 under transformers reads it, in minijinja's syntax: line breaks
/// `\r\n` and `\r` made `\n` (jinja2 normalizes them); string literals with a backslash
/// rewritten to the text Python's escapes give, where minijinja reads them otherwise (a
/// backslash before a line break continues the line, `\a`, `\v`, `\U0001F600`, `\/`); and
/// `{% generation %}` … `{% endgeneration %}` (the tag transformers adds to mark the
/// assistant's text, which otherwise renders its body as it is) written as the scope that
/// does the same here, `{% with %}` … `{% endwith %}`. The text is at most twice as long
/// (a literal's quotes escaped where it changes quotes).
pub(super) fn as_jinja2_reads_it(template: &str) -> Cow<'_, str> {
    let normalized = if template.contains('\r') {
        Cow::Owned(template.replace("\r\n", "\n").replace('\r', "\n"))
    } else {
        Cow::Borrowed(template)
    };
    if !normalized.contains("generation") && !normalized.contains('\\') {
        return normalized;
    }
    let source = normalized.as_ref();
    // A template that fails to tokenize fails the same way when it is compiled.
    let tokens: Vec<_> = tokenize(source, false, Default::default())
        .map_while(Result::ok)
        .collect();
    let mut edits: Vec<(Range<usize>, Cow<'_, str>)> = Vec::new();
    for (i, (token, span)) in tokens.iter().enumerate() {
        let range = span.start_offset as usize..span.end_offset as usize;
        let tag = |at: usize| tokens.get(at).map(|(token, _)| token);
        match token {
            Token::Ident(name @ ("generation" | "endgeneration"))
                if matches!(tag(i.wrapping_sub(1)), Some(Token::BlockStart))
                    && matches!(tag(i + 1), Some(Token::BlockEnd)) =>
            {
                let scope = if *name == "generation" {
                    "with"
                } else {
                    "endwith"
                };
                edits.push((range, Cow::Borrowed(scope)));
            }
            Token::Str(read) => edits.extend(python_literal(source, range, read)),
            Token::String(read) => edits.extend(python_literal(source, range, read)),
            _ => {}
        }
    }
    if edits.is_empty() {
        return normalized;
    }
    let mut out = String::with_capacity(source.len());
    let mut copied = 0;
    for (range, text) in edits {
        out.push_str(&source[copied..range.start]);
        out.push_str(&text);
        copied = range.end;
    }
    out.push_str(&source[copied..]);
    Cow::Owned(out)
}

/// The literal to put at `range` of `source`, a string literal minijinja reads as
/// `read`, if Python reads it as another text.
fn python_literal(
    source: &str,
    range: Range<usize>,
    read: &str,
) -> Option<(Range<usize>, Cow<'static, str>)> {
    let raw = source.get(range.clone())?;
    if !raw.contains('\\') {
        return None;
    }
    let text = python_unescape(raw.get(1..raw.len().checked_sub(1)?)?)?;
    (text != read).then(|| (range, Cow::Owned(minijinja_literal(&text))))
}

/// The text of a string literal's inside as Python reads it; `None` where Python would
/// refuse it, or gives a text Rust cannot hold (a lone surrogate), or for `\N{name}`.
fn python_unescape(inner: &str) -> Option<String> {
    let mut out = String::with_capacity(inner.len());
    let mut chars = inner.chars().peekable();
    let code = |chars: &mut std::iter::Peekable<std::str::Chars<'_>>, digits: usize| {
        let hex: String = chars.by_ref().take(digits).collect();
        if hex.len() != digits {
            return None;
        }
        char::from_u32(u32::from_str_radix(&hex, 16).ok()?)
    };
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        let escaped = match chars.next()? {
            '\n' => continue,
            c @ ('\\' | '\'' | '"') => c,
            'a' => '\x07',
            'b' => '\x08',
            'f' => '\x0c',
            'n' => '\n',
            'r' => '\r',
            't' => '\t',
            'v' => '\x0b',
            'x' => code(&mut chars, 2)?,
            'u' => code(&mut chars, 4)?,
            'U' => code(&mut chars, 8)?,
            'N' => return None,
            first @ '0'..='7' => {
                let mut value = first.to_digit(8)?;
                for _ in 0..2 {
                    let Some(digit) = chars.peek().and_then(|c| c.to_digit(8)) else {
                        break;
                    };
                    value = value * 8 + digit;
                    chars.next();
                }
                char::from_u32(value)?
            }
            other => {
                out.push('\\');
                other
            }
        };
        out.push(escaped);
    }
    Some(out)
}

/// A minijinja string literal of `text`.
fn minijinja_literal(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    out.push('"');
    for c in text.chars() {
        if matches!(c, '"' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generation_tags_become_scopes() {
        let t = "{% generation %}x{%- endgeneration -%}{{ 'generation' }}\
                 {% raw %}{% generation %}{% endraw %}{% set generation = 1 %}";
        assert_eq!(
            as_jinja2_reads_it(t),
            "{% with %}x{%- endwith -%}{{ 'generation' }}\
             {% raw %}{% generation %}{% endraw %}{% set generation = 1 %}"
        );
    }

    #[test]
    fn string_literals_read_as_python_reads_them() {
        let t = "{{ 'a\\\nb' }}{{ \"\\v\\/\\101\\U0001F600\" }}{{ 'plain \\n' }}{{ '\\N{DASH}' }}";
        assert_eq!(
            as_jinja2_reads_it(t),
            "{{ \"ab\" }}{{ \"\x0b\\\\/A\u{1F600}\" }}{{ 'plain \\n' }}{{ '\\N{DASH}' }}"
        );
    }

    #[test]
    fn line_breaks_become_newlines() {
        assert_eq!(as_jinja2_reads_it("a\r\nb\rc\n"), "a\nb\nc\n");
    }
}
