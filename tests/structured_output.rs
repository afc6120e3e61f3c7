//! Structured output on SmolLM2: generations under a JSON Schema, a regular expression
//! and a Lark grammar stay inside them, a grammar outranks the model's logits, and a
//! grammar bound to one model is refused by another's logits until reset.

mod common;

use std::sync::Arc;

use common::{GEMMA3, SMOLLM2, fixture_path, model_path};
use rocmforge::Error;
use rocmforge::chat::ChatMessage;
use rocmforge::context::{Context, ContextParams};
use rocmforge::generate::{GenerateParams, Prompt, StopReason, generate};
use rocmforge::grammar::{Grammar, GrammarKind, GrammarVocabulary};
use rocmforge::model::Model;
use rocmforge::sampler::{Sampler, SamplerParams};
use rocmforge::tokenizer::Tokenizer;

struct Fixture {
    model: Arc<Model>,
    tokenizer: Tokenizer,
    vocabulary: Arc<GrammarVocabulary>,
    template: Option<String>,
}

impl Fixture {
    fn smollm2() -> Fixture {
        let model = Arc::new(Model::open(&model_path(SMOLLM2)).unwrap());
        let tokenizer = Tokenizer::from_gguf(model.gguf()).unwrap();
        let vocabulary = GrammarVocabulary::new(&tokenizer).unwrap();
        let template = model
            .gguf()
            .get::<&str>("tokenizer.chat_template")
            .unwrap()
            .map(str::to_owned);
        Fixture {
            model,
            tokenizer,
            vocabulary,
            template,
        }
    }

    fn context(&self) -> Context {
        let params = ContextParams {
            n_ctx: 1024,
            n_threads: 2,
            ..ContextParams::default()
        };
        Context::new(self.model.clone(), &params).unwrap()
    }

    /// Generates an answer to `request` under `sampler`, returning its text and why it
    /// stopped.
    fn answer(
        &self,
        ctx: &mut Context,
        sampler: &mut Sampler,
        request: &str,
    ) -> (String, StopReason) {
        sampler.bind_vocabulary(&self.vocabulary).unwrap();
        ctx.seq_remove(0, 0, -1).unwrap();
        let messages = [ChatMessage {
            role: "user",
            content: request,
        }];
        let mut text = String::new();
        let stop = generate(
            ctx,
            &self.tokenizer,
            sampler,
            Prompt::Chat {
                template: self.template.as_deref(),
                messages: &messages,
                add_assistant: true,
            },
            &GenerateParams {
                max_tokens: 400,
                ..GenerateParams::default()
            },
            |piece| {
                text.push_str(piece);
                true
            },
        )
        .unwrap();
        (text, stop)
    }
}

fn sampler(seed: u64, kind: GrammarKind, grammar: &str) -> Sampler {
    Sampler::new(SamplerParams {
        seed,
        ..SamplerParams::default()
    })
    .unwrap()
    .with_grammar(Grammar::new(kind, grammar).unwrap())
}

#[test]
fn a_hundred_json_schema_generations_all_validate() {
    let fixture = Fixture::smollm2();
    // Nested objects, enums, arrays, bounded numbers and strings.
    let schema_text =
        std::fs::read_to_string(fixture_path("grammar/character.schema.json")).unwrap();
    let schema: serde_json::Value = serde_json::from_str(&schema_text).unwrap();
    let validator = jsonschema::validator_for(&schema).unwrap();
    let mut ctx = fixture.context();
    let mut distinct = std::collections::BTreeSet::new();
    for seed in 0..100 {
        let mut sampler = sampler(seed, GrammarKind::JsonSchema, &schema_text);
        let (text, stop) = fixture.answer(
            &mut ctx,
            &mut sampler,
            "Invent a character for a fantasy game and describe it as JSON.",
        );
        assert_eq!(stop, StopReason::EndOfGeneration, "seed {seed}: {text}");
        let value: serde_json::Value = serde_json::from_str(&text)
            .unwrap_or_else(|e| panic!("seed {seed}: not JSON ({e}): {text}"));
        let errors: Vec<String> = validator
            .iter_errors(&value)
            .map(|e| e.to_string())
            .collect();
        assert!(errors.is_empty(), "seed {seed}: {text}: {errors:?}");
        distinct.insert(text);
    }
    // The seeds are drawn from, not ignored: the grammar narrows the draw, it does not
    // make it greedy.
    assert!(
        distinct.len() > 50,
        "only {} distinct outputs",
        distinct.len()
    );
}

#[test]
fn regular_expression_and_lark_generations_match() {
    let fixture = Fixture::smollm2();
    let mut ctx = fixture.context();
    let pattern = regex::Regex::new(r"^[A-Z][a-z]{2,8}-[0-9]{3}$").unwrap();
    for seed in 0..5 {
        let mut sampler = sampler(seed, GrammarKind::Regex, r"[A-Z][a-z]{2,8}-[0-9]{3}");
        let (text, stop) = fixture.answer(&mut ctx, &mut sampler, "Name a robot.");
        assert_eq!(stop, StopReason::EndOfGeneration);
        assert!(pattern.is_match(&text), "seed {seed}: {text:?}");
    }
    let lark = r#"
        start: answer " because " reason
        answer: "yes" | "no"
        reason: /[a-z ]{1,30}/
    "#;
    let pattern = regex::Regex::new(r"^(yes|no) because [a-z ]{1,30}$").unwrap();
    for seed in 0..5 {
        let mut sampler = sampler(seed, GrammarKind::Lark, lark);
        let (text, stop) = fixture.answer(&mut ctx, &mut sampler, "Is the sky blue?");
        assert_eq!(stop, StopReason::EndOfGeneration);
        assert!(pattern.is_match(&text), "seed {seed}: {text:?}");
    }
}

#[test]
fn the_grammar_outranks_the_logits() {
    let fixture = Fixture::smollm2();
    let n_vocab = fixture.model.config().n_vocab;
    let digit = fixture.tokenizer.tokenize("7", false, false).unwrap();
    let letter = fixture.tokenizer.tokenize("x", false, false).unwrap();
    assert_eq!((digit.len(), letter.len()), (1, 1));
    for temperature in [0.0, 0.8] {
        let mut sampler = Sampler::new(SamplerParams {
            temperature,
            ..SamplerParams::default()
        })
        .unwrap()
        .with_grammar(Grammar::new(GrammarKind::Regex, "[0-9]+").unwrap());
        sampler.bind_vocabulary(&fixture.vocabulary).unwrap();
        // The model "wants" a letter, and every digit is ruled out (-inf, NaN): the draw
        // still takes a digit, the only tokens the grammar allows.
        let mut logits = vec![0.0f32; n_vocab];
        logits[letter[0] as usize] = 50.0;
        for d in fixture
            .tokenizer
            .tokenize("0123456789", false, false)
            .unwrap()
        {
            logits[d as usize] = f32::NEG_INFINITY;
        }
        logits[digit[0] as usize] = f32::NAN;
        let token = sampler.sample(&logits).unwrap();
        let text = fixture
            .tokenizer
            .detokenize(&[token], false, false)
            .unwrap();
        assert!(
            !text.is_empty() && text.iter().all(u8::is_ascii_digit),
            "temperature {temperature}: drew {token} ({:?})",
            String::from_utf8_lossy(&text)
        );
    }
}

/// Rewound to a mark, the grammar forgets the draws after it: "[0-9]{3}" takes three
/// more digits after one was drawn and taken back, then only an end of generation.
#[test]
fn a_rewound_grammar_forgets_the_tokens_after_its_mark() {
    let fixture = Fixture::smollm2();
    let seven = fixture.tokenizer.tokenize("7", false, false).unwrap()[0];
    let mut logits = vec![0.0f32; fixture.model.config().n_vocab];
    logits[seven as usize] = 50.0;
    let mut sampler =
        Sampler::greedy().with_grammar(Grammar::new(GrammarKind::Regex, "[0-9]{3}").unwrap());
    sampler.bind_vocabulary(&fixture.vocabulary).unwrap();
    let mark = sampler.grammar_mark();
    assert_eq!(sampler.sample(&logits).unwrap(), seven);
    sampler.rewind_grammar(mark);
    for _ in 0..3 {
        assert_eq!(sampler.sample(&logits).unwrap(), seven);
    }
    let last = sampler.sample(&logits).unwrap();
    assert!(fixture.tokenizer.is_end_of_generation(last), "drew {last}");
}

#[test]
fn invalid_grammars_are_refused_with_llguidance_s_message() {
    for (kind, text, expected) in [
        (GrammarKind::JsonSchema, "{\"type\": ", "not json"),
        (
            GrammarKind::JsonSchema,
            r#"{"type": "frobnicate"}"#,
            "frobnicate",
        ),
        (GrammarKind::Regex, "[a-z", "unclosed"),
        (GrammarKind::Lark, "start: missing_rule", "missing_rule"),
    ] {
        match Grammar::new(kind, text) {
            Err(Error::InvalidArgument(message)) => assert!(
                message.to_lowercase().contains(expected),
                "{kind} {text:?}: {message}"
            ),
            other => panic!("{kind} {text:?}: {other:?}"),
        }
    }
}

/// The one-line `InvalidArgument` message of the first draw under a `kind` grammar of
/// `text`, which compiles and binds to SmolLM2's vocabulary.
fn first_draw_refusal(kind: GrammarKind, text: &str) -> String {
    let f = Fixture::smollm2();
    let mut s = sampler(1, kind, text);
    s.bind_vocabulary(&f.vocabulary).unwrap();
    let logits = vec![0.0f32; f.tokenizer.vocab().len()];
    match s.sample(&logits) {
        Err(Error::InvalidArgument(message)) => {
            assert!(!message.contains('\n'), "{message}");
            message
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_grammar_no_token_can_start_fails_its_first_draw_in_one_line() {
    // Compiles (the language is empty, which llguidance does not check) and binds; the
    // first mask has no token in it.
    let message = first_draw_refusal(GrammarKind::Regex, r"[^\s\S]");
    assert!(message.contains("no token"), "{message}");
}

/// llguidance's Earley parser caps a row's items (2,000): a grammar of more alternatives
/// compiles and gives a mask, then refuses the token drawn from it. The refusal is one
/// line, without the parser state llguidance dumps after it.
#[test]
fn a_grammar_past_the_parser_s_limits_fails_its_draw_in_one_line() {
    let alternatives: Vec<String> = (0..20_000).map(|i| format!("\"w{i}\"")).collect();
    let lark = format!("start: {}", alternatives.join(" | "));
    let message = first_draw_refusal(GrammarKind::Lark, &lark);
    assert!(message.contains("refused"), "{message}");
}

/// An error quotes at most a bounded part of the host's grammar, however long it is.
#[test]
fn an_invalid_grammar_s_message_is_bounded() {
    let regex = format!("({}", "a".repeat(8 << 20));
    match Grammar::new(GrammarKind::Regex, &regex) {
        Err(Error::InvalidArgument(message)) => {
            assert!(message.len() < 4096, "{} bytes", message.len());
            assert!(message.contains("more bytes"), "{message}");
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_grammar_follows_one_model_until_reset() {
    let smollm2 = Fixture::smollm2();
    let gemma = Model::open(&model_path(GEMMA3)).unwrap();
    let gemma_vocabulary =
        GrammarVocabulary::new(&Tokenizer::from_gguf(gemma.gguf()).unwrap()).unwrap();
    let mut sampler = sampler(0, GrammarKind::Regex, "[0-9]+");
    // Unbound, a grammar sampler has no vocabulary to mask.
    let logits = vec![0.0f32; smollm2.model.config().n_vocab];
    assert!(matches!(
        sampler.sample(&logits),
        Err(Error::InvalidArgument(_))
    ));
    sampler.bind_vocabulary(&smollm2.vocabulary).unwrap();
    sampler.sample(&logits).unwrap();
    match sampler.bind_vocabulary(&gemma_vocabulary) {
        Err(Error::InvalidArgument(message)) => assert!(message.contains("reset"), "{message}"),
        other => panic!("{other:?}"),
    }
    sampler.reset();
    sampler.bind_vocabulary(&gemma_vocabulary).unwrap();
    let token = sampler
        .sample(&vec![0.0f32; gemma.config().n_vocab])
        .unwrap();
    let text = Tokenizer::from_gguf(gemma.gguf())
        .unwrap()
        .detokenize(&[token], false, false)
        .unwrap();
    assert!(text.iter().all(u8::is_ascii_digit), "{text:?}");
}
