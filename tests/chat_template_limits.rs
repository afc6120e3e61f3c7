//! A chat template is a program from the model file. `rf_chat_apply_template` runs it
//! within a work limit (fuel) and an output limit scaled to the conversation, with guards
//! on the work minijinja does not charge for (compiling, walking through values, lazy
//! views), so a hostile template gets `RF_ERR_INVALID_MODEL` naming the limit within
//! milliseconds, instead of running for minutes or aborting the host when memory or the
//! stack runs out; real templates render as minijinja alone renders them. Each model is
//! built in memory with its template and loaded through the C ABI, as a host would load it.

mod common;

use std::path::Path;
use std::ptr;
use std::sync::mpsc::{self, RecvTimeoutError};
use std::thread;
use std::time::{Duration, Instant};

use common::ffi::last_error;
use rocmforge::chat::{ChatMessage, RenderLimits};
use rocmforge::ffi::*;
use rocmforge::gguf::{GgufWriter, OwnedValue};
use rocmforge::tensor::GgmlType;

/// How long one render may take before the test fails. With the limits every template
/// here returns within 0.2 s in a release build; without them the hostile ones run for
/// minutes (or until memory runs out, or abort on a stack overflow), so a missing limit
/// fails the test here.
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
    assert_refused_in(template, &CHAT, message)
}

/// [`assert_refused`] for a render of `messages`.
fn assert_refused_in(template: &str, messages: &[(&str, &str)], message: &str) -> Outcome {
    let outcome = render(template, messages);
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

fn size_message() -> String {
    format!(
        "made a value larger than its limit of {}",
        limits(&CHAT).output_bytes
    )
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
/// memory runs out. Lazy concatenations (`+`, `chain`) are made plain lists as they are
/// made, each item charged.
#[test]
fn lazy_list_doubling_template_stops_at_the_work_limit() {
    assert_refused(&doubling("[1]", "ns.l + ns.l"), &fuel_message());
    assert_refused(&doubling("[1]", "ns.l | chain(ns.l)"), &fuel_message());
    // Unrolled, without a namespace: 40 doublings.
    let unrolled = format!(
        "{{% set l = [1] %}}{}{{{{ l | length }}}}",
        "{% set l = l + l %}".repeat(40)
    );
    assert_refused(&unrolled, &fuel_message());
}

/// A namespace set to hold itself is printed (or compared) by recursing until the stack
/// overflows, which aborts the host: a namespace may not be stored in a namespace.
#[test]
fn self_referential_namespace_is_refused() {
    let message = "stored a namespace in a namespace";
    assert_refused(
        "{% set ns = namespace(a=0) %}{% set ns.a = ns %}{{ ns }}",
        message,
    );
    assert_refused(
        "{% set ns = namespace(a=0) %}{% set ns.a = [ns] %}{{ ns == ns }}",
        message,
    );
    assert_refused(
        "{% set a = namespace() %}{% set b = namespace(a=a) %}{% set a.b = b %}{{ a }}",
        message,
    );
    // What the chat_template fuzz target found (fuzz/artifacts/chat_template/crash-6fa8...).
    assert_refused(
        "{% set ns = namespace(count=0, last='') %}{% for m in messages %}\
         {% set ns.count = ns %}{% endfor %}{{ ns.count }}",
        message,
    );
    // A namespace's view of its own items is a copy of them, which it may hold.
    let outcome = render(
        "{% set ns = namespace(a=1) %}{% set ns.b = ns | items %}{{ ns }}",
        &CHAT,
    );
    assert_eq!(outcome.status, rf_status::RF_OK, "{}", outcome.text);
    assert_eq!(outcome.text, "{'a': 1, 'b': [('a', 1)]}");
}

/// 40 levels of lists holding the list below twice are 2^40 items to print, compare,
/// join or hash, from a few hundred bytes of template. Counted as they would be visited,
/// they pass the size a value may have; doubled in a namespace, each doubling is walked
/// as it is stored, until the fuel runs out.
#[test]
fn shared_nested_lists_stop_at_a_limit() {
    let nested = format!("{{% set a = [1] %}}{}", "{% set a = [a, a] %}".repeat(40));
    for use_it in [
        "{{ a }}",
        "{{ a == [a] }}",
        "{{ '' ~ a }}",
        "{{ a | string | length }}",
        "{{ {a: 1} }}",
        "{{ 1 in a }}",
    ] {
        assert_refused(&format!("{nested}{use_it}"), &size_message());
    }
    assert_refused(
        &doubling("[1]", "[ns.l, ns.l]").replace("ns.l | length", "ns.l | string"),
        &fuel_message(),
    );
}

/// A list nested 100000 deep is printed (and dropped) by recursing once per level.
#[test]
fn deeply_nested_values_are_refused() {
    let message = "nested deeper than 64 levels";
    assert_refused(
        "{% set ns = namespace(l=1) %}{% for i in range(100000) %}{% set ns.l = [ns.l] %}\
         {% endfor %}{{ ns.l }}",
        message,
    );
    assert_refused(
        "{% macro m(x, n) %}{% if n %}{{ m([x], n - 1) }}{% else %}{{ x }}{% endif %}\
         {% endmacro %}{{ m(1, 400) }}",
        message,
    );
}

/// minijinja folds constant expressions while compiling, with no fuel: `[1] * 10**7` is a
/// lazy list, and the expression above it walks all of it before the render starts.
#[test]
fn constants_folded_while_compiling_are_bounded() {
    let message = "constant of more than 1024 items";
    assert_refused("{{ 2 in [1] * 10**7 }}", message);
    assert_refused("{{ [1] * 10**7 == [1] * 10**7 }}", message);
    assert_refused("{{ ([1] * 10**7) ~ '' }}", message);
    // 34 lazy lists added: materialized more than 32 deep, 3.4 * 10^9 items.
    assert_refused(
        &format!("{{{{ {} }}}}", vec!["[1] * 10**8"; 34].join(" + ")),
        message,
    );
}

/// minijinja's parser recurses once per unary operator with no limit, and its compiler
/// walks a chain of operators recursively, trying to fold it at every level.
#[test]
fn parsing_and_compiling_are_bounded() {
    assert_refused(
        &format!("{{{{ {}1 }}}}", "-".repeat(200_000)),
        "more than 64 unary operators in a row",
    );
    assert_refused(
        &format!("{{{{ {}x }}}}", "not ".repeat(50_000)),
        "more than 64 unary operators in a row",
    );
    assert_refused(
        &format!("{{{{ {} }}}}", vec!["1"; 100_000].join("+")),
        "expression nested deeper than 256 levels",
    );
    assert_refused(
        &format!("{{{{ x{} }}}}", "|e".repeat(100_000)),
        "expression nested deeper than 256 levels",
    );
    assert_refused(&"x".repeat(300 << 10), "more than the limit of 262144");
    // 500 chains of 250 constants: compiling folds each 250 times.
    let chain = format!("{{{{ {} }}}}", vec!["1"; 250].join("+"));
    assert_refused(&chain.repeat(500), &fuel_message());
}

/// Comparing lists holding two texts of 8 MiB that differ in their last byte reads both
/// texts, which minijinja does not charge for (it charges an item of each list): in a
/// loop, minutes of work within the fuel.
#[test]
fn comparing_long_texts_is_charged() {
    let text = "x".repeat(8 << 20);
    let messages = [("user", text.as_str())];
    let fuel = format!("work limit of {} fuel", limits(&messages).fuel);
    assert_refused_in(
        "{% set s = [messages[0].content] %}{% set t = [messages[0].content[:-1] ~ 'y'] %}\
         {% set r = range(1000) %}{% for i in r %}{% for j in r %}{% if s == t %}{% endif %}\
         {% endfor %}{% endfor %}",
        &messages,
        &fuel,
    );
}

/// Each lazy view (`l[0:]`, `d | chain(d)`) made of another costs a step per view below
/// on every read: 4000 slices of slices make each step of a loop 4000 steps, and 40 maps
/// each chaining the one below twice make a lookup 2^40 lookups. Views are made plain
/// lists and maps as they are made.
#[test]
fn lazy_views_of_views_stay_flat() {
    let slices = format!(
        "{{% set l = range(100) | list %}}{}{{% for i in range(100000) %}}\
         {{% for x in l %}}{{% endfor %}}{{% endfor %}}",
        "{% set l = l[0:] %}".repeat(4000)
    );
    assert_refused(&slices, &fuel_message());
    let maps = format!(
        "{{% set d = {{'a': 1}} %}}{}{{{{ d.missing is defined }}}}",
        "{% set d = d | chain(d) %}".repeat(40)
    );
    let outcome = render(&maps, &CHAT);
    assert_eq!(outcome.status, rf_status::RF_OK, "{}", outcome.text);
    assert_eq!(outcome.text, "False");
}

#[test]
fn huge_string_templates_stop_at_a_limit() {
    assert_refused("{{ 'x' * 10**9 }}", &fuel_message());
    // Doubled text passes the size a value may have before the work limit.
    assert_refused(
        "{% set ns = namespace(s='x') %}{% for i in range(64) %}{% set ns.s = ns.s ~ ns.s %}\
         {% endfor %}{{ ns.s | length }}",
        &size_message(),
    );
    // Cheap to make, so the output limit stops it first.
    assert_refused(
        "{% for i in range(100000) %}{{ 'x' * 1000 }}{% endfor %}",
        &output_message(),
    );
}

/// The Python methods and filters Hugging Face templates call (`str.replace`, `str.join`,
/// `str.split`, `tojson` with an indent, `strftime_now`) check the size of what they make
/// before making it, and what they made is charged: a template that grows a value with
/// them stops at a limit as one that grows it with `~` does.
#[test]
fn python_methods_are_bounded() {
    let big = "{% set s = 'x' * 100000 %}";
    // One call, 10^5 insertions of 10^5 bytes: 10 GB if made, paid for ahead.
    assert_refused(
        &format!("{big}{{{{ s.replace('', s) | length }}}}"),
        &fuel_message(),
    );
    assert_refused(
        &format!("{big}{{{{ s.join([s, s, s, s, s, s, s, s, s, s, s, s]) | length }}}}"),
        &size_message(),
    );
    assert_refused(
        &format!("{big}{{{{ strftime_now('%c' * 200000) | length }}}}"),
        &size_message(),
    );
    // Indented JSON of a deep value: the indent is written once per level on every line.
    assert_refused(
        &format!("{big}{{{{ [[[[[[[[1, 2, 3]]]]]]]] | tojson(indent=s) | length }}}}"),
        &size_message(),
    );
    // Doubling through replace: each step pays ahead for as many matches as the text has
    // bytes, so the work limit stops it.
    assert_refused(
        "{% set ns = namespace(s='xy') %}{% for i in range(64) %}\
         {% set ns.s = ns.s.replace('x', ns.s) %}{% endfor %}{{ ns.s | length }}",
        &fuel_message(),
    );
    // str.format pads to the widths and precisions its fields ask for before anything sees
    // the text: asked for more than a value may hold, it is refused, not made (2 TB here,
    // a capacity overflow at the second).
    for format in [
        "{:>2000000000000}",
        "{:>18446744073709551000}",
        "{:.99999999f}",
    ] {
        assert_refused(
            &format!("{{{{ '{format}'.format(1.5) | length }}}}"),
            &size_message(),
        );
    }
    let outcome = render("{{ '{:>6}|{:.3f}|{{}}'.format('ab', 1.5) }}", &CHAT);
    assert_eq!(outcome.status, rf_status::RF_OK, "{}", outcome.text);
    assert_eq!(outcome.text, "    ab|1.500|{}");
    // An indent is written where lines need it: a scalar has none, however wide it asks.
    let outcome = render("{{ 1 | tojson(indent=1000000000000) }}", &CHAT);
    assert_eq!(outcome.status, rf_status::RF_OK, "{}", outcome.text);
    assert_eq!(outcome.text, "1");
    assert_refused("{{ [1] | tojson(indent=1000000000000) }}", &size_message());
    // Splitting into many parts: each part is charged.
    let outcome = render(
        "{% set s = 'a,' * 200000 %}{{ s.split(',') | length }}",
        &CHAT,
    );
    assert_eq!(outcome.status, rf_status::RF_OK, "{}", outcome.text);
    assert_eq!(outcome.text, "200001");
}

/// minijinja's own rendering of `template` with the same inputs and no guards (set up
/// as the library sets it up for Hugging Face templates: block tags trimmed as
/// transformers trims them, `tools` and `documents` none), or its error: what the library
/// must reproduce for any template within the limits.
fn unguarded(template: &str, messages: &[(&str, &str)]) -> Result<String, String> {
    let mut env = minijinja::Environment::new();
    env.set_syntax(
        minijinja::syntax::SyntaxConfig::builder()
            .trim_blocks(true)
            .lstrip_blocks(true)
            .build()
            .unwrap(),
    );
    env.add_function(
        "raise_exception",
        |message: String| -> Result<String, minijinja::Error> {
            Err(minijinja::Error::new(
                minijinja::ErrorKind::InvalidOperation,
                message,
            ))
        },
    );
    // Keys in the order the library gives them (transformers' order).
    let messages: Vec<minijinja::Value> = messages
        .iter()
        .map(|&(role, content)| {
            minijinja::Value::from(indexmap::IndexMap::from([
                (minijinja::Value::from("role"), minijinja::Value::from(role)),
                (
                    minijinja::Value::from("content"),
                    minijinja::Value::from(content),
                ),
            ]))
        })
        .collect();
    let ctx = minijinja::context! {
        messages => messages,
        tools => (),
        documents => (),
        add_generation_prompt => true,
        bos_token => BOS,
        eos_token => EOS,
    };
    // The library reads string literals as Python does, where a backslash before a line
    // break continues the line (the only Python escape in these fixtures).
    env.render_str(&template.replace("\\\n", ""), ctx)
        .map_err(|e| e.to_string())
}

/// Renders `template` through the library and checks the text is minijinja's, or that
/// both refuse the conversation.
fn assert_renders_as_minijinja(name: &str, template: &str, messages: &[(&str, &str)]) {
    let outcome = render(template, messages);
    match unguarded(template, messages) {
        Ok(text) => {
            assert_eq!(outcome.status, rf_status::RF_OK, "{name}: {}", outcome.text);
            assert!(
                outcome.text == text,
                "{name}: the text differs from minijinja's"
            );
        }
        Err(error) => assert_eq!(
            outcome.status,
            rf_status::RF_ERR_INVALID_ARGUMENT,
            "{name}: minijinja refused it ({error}); the library gave {}",
            outcome.text
        ),
    }
}

fn fixture(name: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/chat_templates")
        .join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Templates using macros, `caller`, blocks, `set` and filter blocks, namespaces, loops
/// (filtered, recursive, `loop.changed`, `loop.cycle`), filters, tests, slices, map and
/// tuple literals, chained comparisons and `raise_exception` (tests/fixtures/
/// chat_templates), each step of which the library guards: they render exactly as
/// minijinja alone renders them.
#[test]
fn guarded_templates_render_as_minijinja_does() {
    let chats: [&[(&str, &str)]; 3] = [
        &[
            ("system", "Be brief."),
            ("user", "Hi!"),
            ("assistant", "Hello <there> & \"you\""),
            ("user", "Bye"),
        ],
        &[("user", "Hi!")],
        &[("user", "Hi!"), ("user", "Again")],
    ];
    for name in [
        "features.jinja",
        "namespaces.jinja",
        "comparisons.jinja",
        "blocks.jinja",
        "deepseek-r1-distill-qwen.jinja",
        "mistral-small-3.1.jinja",
    ] {
        let template = fixture(name);
        for chat in chats {
            assert_renders_as_minijinja(name, &template, chat);
        }
    }
}

#[test]
fn real_templates_still_render_long_conversations() {
    // Phi-4-mini's template (llama.cpp models/templates), without its tool branches.
    let phi = "{%- if messages[0]['role'] == 'system' %}{%- set system_message = messages[0]['content'] %}{%- endif %}\
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
    let outcome = render(phi, &CHAT);
    assert_eq!(outcome.status, rf_status::RF_OK, "{}", outcome.text);
    assert_eq!(outcome.text, expected(&CHAT));

    // 2000 turns of 4 KiB each: longer than any context window, still far inside the limits.
    let turn = "word ".repeat(800);
    let mut long = vec![("system", "Be brief.")];
    for i in 0..2000 {
        long.push((if i % 2 == 0 { "user" } else { "assistant" }, &turn));
    }
    let outcome = render(phi, &long);
    assert_eq!(outcome.status, rf_status::RF_OK, "{}", outcome.text);
    assert_eq!(outcome.text, expected(&long));
    eprintln!(
        "Phi-4-mini: {} bytes rendered in {:?}",
        outcome.text.len(),
        outcome.elapsed
    );
    for name in ["deepseek-r1-distill-qwen.jinja", "mistral-small-3.1.jinja"] {
        assert_renders_as_minijinja(name, &fixture(name), &long);
    }
}
