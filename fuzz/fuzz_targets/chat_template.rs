//! Chat-template rendering (`chat::apply_chat_template`) from a fuzzed template, BOS and
//! EOS texts and messages. A template is code from the model file: whatever it says, the
//! render returns within a time bound, its text stays within the conversation's output
//! limit, and a refusal is a bad template (`InvalidModel`: a limit was exceeded) or a
//! refused conversation (`InvalidArgument`), never anything else.
#![no_main]

use std::time::{Duration, Instant};

use libfuzzer_sys::fuzz_target;
use rocmforge::Error;
use rocmforge::chat::{ChatMessage, RenderLimits, apply_chat_template};
use rocmforge_fuzz::chat_input;

/// The longest one render may take. The library's limits stop a hostile template within
/// about 20 ms per million fuel in a release build; this leaves room for a sanitizer
/// build on a loaded machine and still catches a template that escapes the limits.
const TIME_BOUND: Duration = Duration::from_secs(3);

fuzz_target!(|data: &[u8]| {
    let input = chat_input::parse(data);
    let messages: Vec<ChatMessage<'_>> = input
        .messages
        .iter()
        .map(|(role, content)| ChatMessage { role, content })
        .collect();
    let limits = RenderLimits::for_conversation(&messages, &input.bos, &input.eos);
    let start = Instant::now();
    let result = apply_chat_template(
        input.template.as_deref(),
        &messages,
        input.add_assistant,
        &input.bos,
        &input.eos,
    );
    let elapsed = start.elapsed();
    assert!(
        elapsed <= TIME_BOUND,
        "rendering took {elapsed:?}: {result:?}"
    );
    match result {
        Ok(text) => assert!(
            text.len() <= limits.output_bytes,
            "{} bytes rendered, the limit is {}",
            text.len(),
            limits.output_bytes
        ),
        Err(Error::InvalidModel(_) | Error::InvalidArgument(_)) => {}
        Err(other) => panic!("rendering failed with {other:?}"),
    }
});
