//! Real models' chat templates run through `apply_jinja_template` render exactly as
//! Hugging Face transformers' `apply_chat_template` renders them (the text a model was
//! trained on, and what llama.cpp's Jinja mode gives): every template in tests/fixtures/chat_templates/real,
//! on four conversations, with and without the generation prompt, against the text (or
//! the error) jinja2 gave in expected.json (made by scripts/gen-chat-template-fixtures.py).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use rocmforge::chat::{ChatMessage, apply_jinja_template};
use serde_json::Value;

/// Cases that do not match, with the reason; each must still fail (so the list is kept
/// current) and every other case must match.
const EXPECTED_FAILURES: &[(&str, &str, &str)] = &[];

fn dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/chat_templates/real")
}

/// Now (local time, as Python's `datetime.now()`) as C's `strftime` writes it with
/// `format` (the C locale: this test never sets another), as Python's does.
fn strftime_today(format: &str) -> String {
    let format = std::ffi::CString::new(format).expect("no NUL in a format");
    let mut buf = [0u8; 256];
    // SAFETY: `time` with a null pointer only returns the time; `localtime_r` writes the
    // `tm` given; `strftime` writes at most `buf.len()` bytes into `buf`.
    let n = unsafe {
        let now = libc::time(std::ptr::null_mut());
        let mut tm: libc::tm = std::mem::zeroed();
        assert!(!libc::localtime_r(&now, &mut tm).is_null());
        libc::strftime(buf.as_mut_ptr().cast(), buf.len(), format.as_ptr(), &tm)
    };
    String::from_utf8(buf[..n].to_vec()).expect("ASCII")
}

/// `expected` with each `[[strftime_now:FORMAT]]` marker replaced by today's date.
fn with_dates(expected: &str) -> String {
    let mut out = String::new();
    let mut rest = expected;
    while let Some(start) = rest.find("[[strftime_now:") {
        out += &rest[..start];
        let after = &rest[start + "[[strftime_now:".len()..];
        let end = after.find("]]").expect("a closed marker");
        out += &strftime_today(&after[..end]);
        rest = &after[end + 2..];
    }
    out + rest
}

/// Where two texts first differ, with some context on each side.
fn short_diff(expected: &str, got: &str) -> String {
    let common = expected
        .char_indices()
        .zip(got.chars())
        .find(|((_, a), b)| a != b)
        .map_or(expected.len().min(got.len()), |((i, _), _)| i);
    let from = expected[..common]
        .char_indices()
        .rev()
        .nth(30)
        .map_or(0, |(i, _)| i);
    let tail = |s: &str| -> String { s[from..].chars().take(90).collect() };
    format!(
        "at byte {common}:\n      expected …{:?}\n      got      …{:?}",
        tail(expected),
        tail(got)
    )
}

#[test]
fn real_templates_render_as_transformers_does() {
    let expected: Value = serde_json::from_str(
        &std::fs::read_to_string(dir().join("expected.json")).expect("expected.json"),
    )
    .expect("valid JSON");
    let conversations: BTreeMap<String, Vec<(String, String)>> = expected["conversations"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(name, messages)| {
            let messages = messages
                .as_array()
                .unwrap()
                .iter()
                .map(|m| {
                    let text = |k: &str| m[k].as_str().unwrap().to_owned();
                    (text("role"), text("content"))
                })
                .collect();
            (name.clone(), messages)
        })
        .collect();
    let mut failures = Vec::new();
    let mut cases = 0;
    for (name, entry) in expected["templates"].as_object().unwrap() {
        let template = std::fs::read_to_string(dir().join(format!("{name}.jinja")))
            .unwrap_or_else(|e| panic!("{name}.jinja: {e}"));
        let bos = entry["bos_token"].as_str().unwrap();
        let eos = entry["eos_token"].as_str().unwrap();
        for (case, outcome) in entry["cases"].as_object().unwrap() {
            cases += 1;
            let (conversation, prompt) = case.split_once('/').unwrap();
            let messages: Vec<ChatMessage<'_>> = conversations[conversation]
                .iter()
                .map(|(role, content)| ChatMessage { role, content })
                .collect();
            let add_assistant = prompt == "gen";
            let text = outcome.get("text").and_then(Value::as_str);
            // The date before and after rendering: a render across midnight matches either.
            let before = text.map(with_dates);
            let got = apply_jinja_template(&template, &messages, add_assistant, bos, eos);
            let failure = match (text, got) {
                (Some(text), Ok(got)) => {
                    let after = with_dates(text);
                    (before.as_ref() != Some(&got) && got != after)
                        .then(|| short_diff(&after, &got))
                }
                (Some(_), Err(e)) => Some(format!("expected a text, got the error {e}")),
                (None, Ok(got)) => Some(format!(
                    "expected the error {}, got the text {got:?}",
                    outcome["error"]
                )),
                (None, Err(e)) => {
                    // raise_exception's message is the template's own: it must come through.
                    let error = outcome["error"].as_str().unwrap();
                    match error.strip_prefix("TemplateError: ") {
                        Some(message) if !e.to_string().contains(message) => {
                            Some(format!("expected the error {message:?}, got the error {e}"))
                        }
                        _ => None,
                    }
                }
            };
            let known = EXPECTED_FAILURES
                .iter()
                .any(|&(t, c, _)| t == name && c == case);
            match (failure, known) {
                (Some(why), false) => failures.push(format!("{name} {case}: {why}")),
                (None, true) => failures.push(format!(
                    "{name} {case}: listed in EXPECTED_FAILURES but matches; take it out"
                )),
                _ => {}
            }
        }
    }
    assert!(cases > 400, "only {cases} cases");
    assert!(
        failures.is_empty(),
        "{} of {cases} cases differ from transformers:\n{}",
        failures.len(),
        failures.join("\n")
    );
}
