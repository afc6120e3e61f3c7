//! A chat template is a program from the model file. `rf_chat_apply_template` runs it
//! within a work limit (fuel) and an output limit scaled to the conversation, so a hostile
//! template gets `RF_ERR_INVALID_MODEL` naming the limit in milliseconds, instead of
//! running for minutes or aborting the host when memory runs out. Each model is built in
//! memory with its template and loaded through the C ABI, as a host would load it.

use std::ffi::CStr;
use std::ptr;
use std::sync::mpsc::{self, RecvTimeoutError};
use std::thread;
use std::time::{Duration, Instant};

use rocmforge::chat::{ChatMessage, RenderLimits};
use rocmforge::ffi::*;
use rocmforge::gguf::{GgufWriter, OwnedValue};
use rocmforge::tensor::GgmlType;

/// How long one render may take before the test fails. With the limits every template
/// here returns within 0.2 s in a release build; without them the hostile ones run for
/// minutes (or until memory runs out), so a missing limit fails the test here.
const DEADLINE: Duration = Duration::from_secs(10);

const BOS: &str = "<s>";
const EOS: &str = "</s>";
const N_EMBD: u64 = 8;
const N_FF: u64 = 16;

/// GGUF bytes of a one-layer llama model with a byte-level vocabulary (a-z, space, one
/// merge, BOS, EOS) whose `tokenizer.chat_template` is `template`. The weights are zeros:
/// only the template is used.
fn model_with_template(template: &str) -> Vec<u8> {
    let mut tokens: Vec<String> = ('a'..='z').map(String::from).collect();
    tokens.push("Ġ".into());
    tokens.push("ab".into());
    tokens.push(BOS.into());
    tokens.push(EOS.into());
    let n_vocab = tokens.len() as u64;
    let mut types = vec![1; tokens.len()];
    types[tokens.len() - 2..].fill(3);
    let mut w = GgufWriter::new();
    let metadata = [
        ("general.architecture", OwnedValue::String("llama".into())),
        ("llama.embedding_length", OwnedValue::U32(N_EMBD as u32)),
        ("llama.block_count", OwnedValue::U32(1)),
        ("llama.attention.head_count", OwnedValue::U32(2)),
        ("llama.feed_forward_length", OwnedValue::U32(N_FF as u32)),
        ("llama.context_length", OwnedValue::U32(64)),
        (
            "llama.attention.layer_norm_rms_epsilon",
            OwnedValue::F32(1e-5),
        ),
        ("tokenizer.ggml.model", OwnedValue::String("gpt2".into())),
        ("tokenizer.ggml.pre", OwnedValue::String("gpt-2".into())),
        ("tokenizer.ggml.tokens", OwnedValue::string_array(tokens)),
        ("tokenizer.ggml.token_type", OwnedValue::i32_array(types)),
        ("tokenizer.ggml.merges", OwnedValue::string_array(["a b"])),
        (
            "tokenizer.ggml.bos_token_id",
            OwnedValue::U32(n_vocab as u32 - 2),
        ),
        (
            "tokenizer.ggml.eos_token_id",
            OwnedValue::U32(n_vocab as u32 - 1),
        ),
        (
            "tokenizer.chat_template",
            OwnedValue::String(template.into()),
        ),
    ];
    for (key, value) in metadata {
        w.add_metadata(key, value).unwrap();
    }
    let mut tensor = |name: &str, shape: &[u64]| {
        let bytes = shape.iter().product::<u64>() as usize * 4;
        w.add_tensor(name, GgmlType::F32, shape, vec![0; bytes])
            .unwrap();
    };
    tensor("token_embd.weight", &[N_EMBD, n_vocab]);
    tensor("output_norm.weight", &[N_EMBD]);
    for (name, shape) in [
        ("attn_norm", &[N_EMBD][..]),
        ("attn_q", &[N_EMBD, N_EMBD]),
        ("attn_k", &[N_EMBD, N_EMBD]),
        ("attn_v", &[N_EMBD, N_EMBD]),
        ("attn_output", &[N_EMBD, N_EMBD]),
        ("ffn_norm", &[N_EMBD]),
        ("ffn_gate", &[N_EMBD, N_FF]),
        ("ffn_up", &[N_EMBD, N_FF]),
        ("ffn_down", &[N_FF, N_EMBD]),
    ] {
        tensor(&format!("blk.0.{name}.weight"), shape);
    }
    w.to_bytes()
}

/// What `rf_chat_apply_template` gave: its status, the text (or `rf_last_error`'s
/// message) and how long the call took.
struct Outcome {
    status: rf_status,
    text: String,
    elapsed: Duration,
}

/// Loads a model with `template` and renders `messages` (role, content) with an assistant
/// prompt, on a thread of its own: a render that outlives `DEADLINE` fails the test.
fn render(template: &str, messages: &[(&str, &str)]) -> Outcome {
    let bytes = model_with_template(template);
    let owned: Vec<(String, String)> = messages
        .iter()
        .map(|&(role, content)| (role.to_owned(), content.to_owned()))
        .collect();
    let (send, receive) = mpsc::channel();
    thread::spawn(move || send.send(render_now(&bytes, &owned)));
    match receive.recv_timeout(DEADLINE) {
        Ok(outcome) => outcome,
        Err(RecvTimeoutError::Timeout) => panic!("rendering did not return within {DEADLINE:?}"),
        Err(RecvTimeoutError::Disconnected) => panic!("the rendering thread failed (see above)"),
    }
}

fn render_now(bytes: &[u8], messages: &[(String, String)]) -> Outcome {
    let mut model = ptr::null_mut();
    let params = rf_model_default_params();
    // SAFETY: `bytes` outlives the model, freed below; params and out-pointer are valid.
    let status = unsafe {
        rf_model_load_from_memory(bytes.as_ptr().cast(), bytes.len(), &params, &mut model)
    };
    assert_eq!(status, rf_status::RF_OK, "{}", last_error());
    let raw: Vec<rf_chat_message> = messages
        .iter()
        .map(|(role, content)| rf_chat_message {
            role: role.as_ptr().cast(),
            role_len: role.len(),
            content: content.as_ptr().cast(),
            content_len: content.len(),
        })
        .collect();
    let apply = |buf: *mut u8, cap: usize, len: &mut usize| {
        // SAFETY: `raw` points into `messages`, alive here; `buf` holds `cap` bytes (or is
        // NULL with `cap` 0).
        unsafe {
            rf_chat_apply_template(model, raw.as_ptr(), raw.len(), true, buf.cast(), cap, len)
        }
    };
    let started = Instant::now();
    let mut needed = 0;
    let mut status = apply(ptr::null_mut(), 0, &mut needed);
    let elapsed = started.elapsed();
    let text = if status == rf_status::RF_ERR_BUFFER_TOO_SMALL {
        let mut buf = vec![0u8; needed];
        let mut len = 0;
        status = apply(buf.as_mut_ptr(), buf.len(), &mut len);
        assert_eq!(len, needed);
        String::from_utf8(buf).unwrap()
    } else {
        last_error()
    };
    // SAFETY: `model` came from rf_model_load_from_memory and is freed once.
    unsafe { rf_model_free(model) };
    Outcome {
        status,
        text,
        elapsed,
    }
}

fn last_error() -> String {
    // SAFETY: rf_last_error returns this thread's message, valid until its next call.
    unsafe { CStr::from_ptr(rf_last_error()) }
        .to_string_lossy()
        .into_owned()
}

const CHAT: [(&str, &str); 2] = [("system", "Be brief."), ("user", "Hi!")];

fn limits(messages: &[(&str, &str)]) -> RenderLimits {
    let messages: Vec<ChatMessage<'_>> = messages
        .iter()
        .map(|&(role, content)| ChatMessage { role, content })
        .collect();
    RenderLimits::for_conversation(&messages, BOS, EOS)
}

/// Renders a hostile `template` and checks it fails as an invalid model with `message`
/// in the error text.
fn assert_refused(template: &str, message: &str) -> Outcome {
    let outcome = render(template, &CHAT);
    assert_eq!(
        outcome.status,
        rf_status::RF_ERR_INVALID_MODEL,
        "{}",
        outcome.text
    );
    assert!(
        outcome.text.contains(message),
        "'{}' does not contain '{message}'",
        outcome.text
    );
    outcome
}

fn fuel_message() -> String {
    format!("work limit of {} fuel", limits(&CHAT).fuel)
}

fn output_message() -> String {
    format!(
        "output exceeded its limit of {} bytes",
        limits(&CHAT).output_bytes
    )
}

#[test]
fn nested_loop_template_stops_at_the_work_limit() {
    let outcome = assert_refused(
        "{% for i in range(100000) %}{% for j in range(100000) %}x{% endfor %}{% endfor %}",
        &fuel_message(),
    );
    eprintln!("nested loop refused after {:?}", outcome.elapsed);
}

/// A template doubling `initial` 64 times with `step` (in a namespace, since a `set`
/// inside a loop is local to one iteration): 2^64 items unless something stops it.
fn doubling(initial: &str, step: &str) -> String {
    format!(
        "{{% set ns = namespace(l={initial}) %}}{{% for i in range(64) %}}\
         {{% set ns.l = {step} %}}{{% endfor %}}{{{{ ns.l | length }}}}"
    )
}

#[test]
fn list_doubling_templates_stop_at_the_work_limit() {
    assert_refused(&doubling("(1,)", "ns.l + ns.l"), &fuel_message());
    assert_refused(&doubling("[1]", "(ns.l + ns.l) | list"), &fuel_message());
    assert_refused(
        &doubling("[1]", "ns.l | list + ns.l | list"),
        &fuel_message(),
    );
}

/// minijinja 3.1.0 keeps `list + list` lazy until 32 concatenations deep, then builds the
/// whole list at once without charging fuel first: here 2^33 items, which runs until
/// memory runs out. Passes once minijinja checks fuel before that step.
#[test]
#[ignore = "needs minijinja to charge fuel before materializing a deep lazy list concatenation"]
fn lazy_list_doubling_template_stops_at_the_work_limit() {
    assert_refused(&doubling("[1]", "ns.l + ns.l"), &fuel_message());
}

#[test]
fn huge_string_templates_stop_at_a_limit() {
    assert_refused("{{ 'x' * 10**9 }}", &fuel_message());
    assert_refused(
        "{% set ns = namespace(s='x') %}{% for i in range(64) %}{% set ns.s = ns.s ~ ns.s %}\
         {% endfor %}{{ ns.s | length }}",
        &fuel_message(),
    );
    // Cheap to make, so the output limit stops it first.
    assert_refused(
        "{% for i in range(100000) %}{{ 'x' * 1000 }}{% endfor %}",
        &output_message(),
    );
}

#[test]
fn real_templates_still_render_long_conversations() {
    // Phi-4-mini's template (llama.cpp models/templates), without its tool branches.
    let template = "{%- if messages[0]['role'] == 'system' %}{%- set system_message = messages[0]['content'] %}{%- endif %}\
        {%- if system_message is defined -%}{{- '<|system|>' + system_message -}}{{- '<|end|>' -}}{%- endif -%}\
        {%- for message in messages -%}{%- if message['role'] != 'system' -%}{{- '<|' + message['role'] + '|>' -}}\
        {%- if message.content -%}{{- message['content'] -}}{%- endif -%}{{- '<|end|>' -}}{%- endif -%}{%- endfor -%}\
        {%- if add_generation_prompt -%}{{- '<|assistant|>' -}}{%- else -%}{{- eos_token -}}{%- endif -%}";
    let expected = |messages: &[(&str, &str)]| {
        let mut text = format!("<|system|>{}<|end|>", messages[0].1);
        for (role, content) in &messages[1..] {
            text += &format!("<|{role}|>{content}<|end|>");
        }
        text + "<|assistant|>"
    };
    let outcome = render(template, &CHAT);
    assert_eq!(outcome.status, rf_status::RF_OK, "{}", outcome.text);
    assert_eq!(outcome.text, expected(&CHAT));

    // 2000 turns of 4 KiB each: longer than any context window, still far inside the limits.
    let turn = "word ".repeat(800);
    let mut long = vec![("system", "Be brief.")];
    for i in 0..2000 {
        long.push((if i % 2 == 0 { "user" } else { "assistant" }, &turn));
    }
    let outcome = render(template, &long);
    assert_eq!(outcome.status, rf_status::RF_OK, "{}", outcome.text);
    assert_eq!(outcome.text, expected(&long));
    eprintln!(
        "{} bytes rendered in {:?}",
        outcome.text.len(),
        outcome.elapsed
    );
}
