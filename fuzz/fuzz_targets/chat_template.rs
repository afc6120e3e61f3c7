//! Chat-template rendering (`chat::apply_chat_template`) from a fuzzed template, BOS and
//! EOS texts and messages. A template is code from the model file: whatever it says, the
//! render returns within a time bound, its text stays within the conversation's output
//! limit, and a refusal is a bad template (`InvalidModel`: a limit was exceeded) or a
//! refused conversation (`InvalidArgument`), never anything else.
//!
//! The same conversation then goes to tokens (`chat::chat_tokens`) over a vocabulary with
//! control tokens: whatever the template does with the messages, the control tokens
//! obtained are those of the conversation with every control-token text taken out of the
//! messages until none is left (no message text becomes markup), and with no
//! control-token text in the messages the tokens are the rendered text's, tokenized with
//! special parsing.
#![no_main]

use std::sync::OnceLock;
use std::time::{Duration, Instant};

use libfuzzer_sys::fuzz_target;
use rocmforge::Error;
use rocmforge::chat::{ChatMessage, RenderLimits, apply_chat_template, chat_tokens};
use rocmforge::gguf::GgufFile;
use rocmforge::tokenizer::Tokenizer;
use rocmforge_fuzz::chat_input;
use rocmforge_fuzz::host::abort_on_panic;
use rocmforge_fuzz::models::vocabulary_file;
use rocmforge_fuzz::vocabularies::byte_level;

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
        Err(Error::InvalidModel(_) | Error::InvalidArgument(_)) => return,
        Err(other) => panic!("rendering failed with {other:?}"),
    }
    check_chat_tokens(input.template.as_deref(), &messages, input.add_assistant);
});

/// A byte-level vocabulary with `<|im_start|>`, `<|im_end|>` and `<|endoftext|>` as
/// control tokens.
fn tokenizer() -> &'static Tokenizer {
    static TOKENIZER: OnceLock<Tokenizer> = OnceLock::new();
    TOKENIZER.get_or_init(|| {
        abort_on_panic();
        let vocab = byte_level(Some("smollm"), &[]);
        let bytes = vocabulary_file(&vocab).expect("metadata").to_bytes();
        let file = GgufFile::parse(&bytes).expect("the vocabulary parses");
        Tokenizer::from_gguf(&file).expect("the vocabulary loads")
    })
}

fn controls(tokenizer: &Tokenizer, ids: &[u32]) -> Vec<u32> {
    ids.iter()
        .copied()
        .filter(|&id| tokenizer.is_control(id))
        .collect()
}

/// `text` with control-token text taken out until none is left: taking one out can join
/// its neighbours into another (`<|im_en<|im_start|>d|>` leaves `<|im_end|>`), which the
/// messages' plain text never is.
fn without_any_control_text(t: &Tokenizer, text: &str) -> String {
    let mut cleaned = t.without_control_text(text);
    loop {
        let again = t.without_control_text(&cleaned);
        if again == cleaned {
            return cleaned;
        }
        cleaned = again;
    }
}

/// `chat_tokens` keeps every message plain: see the top of the file.
fn check_chat_tokens(template: Option<&str>, messages: &[ChatMessage<'_>], add_assistant: bool) {
    let t = tokenizer();
    let Ok(ids) = chat_tokens(t, template, messages, add_assistant, false) else {
        return; // refused: a bad template, a refused or unsafe conversation
    };
    let cleaned: Vec<String> = messages
        .iter()
        .map(|m| without_any_control_text(t, m.content))
        .collect();
    let neutral: Vec<ChatMessage<'_>> = messages
        .iter()
        .zip(&cleaned)
        .map(|(m, content)| ChatMessage {
            role: m.role,
            content,
        })
        .collect();
    let (bos, eos) = t.bos_eos_texts();
    let text =
        |msgs: &[ChatMessage<'_>]| apply_chat_template(template, msgs, add_assistant, bos, eos);
    let Ok(neutral_text) = text(&neutral) else {
        return; // the template refuses the cleaned conversation: nothing to compare
    };
    let Ok(expected) = t.tokenize(&neutral_text, false, true) else {
        return;
    };
    assert_eq!(
        controls(t, &ids),
        controls(t, &expected),
        "control tokens differ from the conversation's without control text"
    );
    if cleaned.iter().zip(messages).all(|(c, m)| *c == m.content) {
        assert_eq!(
            ids, expected,
            "a plain conversation tokenizes as its rendered text"
        );
    }
}
