//! How `generate` leaves the cache when it stops early: the prompt and every generated
//! token whose text the host got whole, and no other, so that a later call continues
//! where the host's text ends. The stop strings are cut from the model's own greedy text
//! (SmolLM2), at places this test finds in it: a stop string that begins at a token held
//! back whole, one that begins inside a token, and a host that stops while text is held.

mod common;

use common::SMOLLM2;
use common::parity::context;
use rocmforge::context::{Batch, Context};
use rocmforge::generate::{GenerateParams, Prompt, StopReason, generate};
use rocmforge::sampler::Sampler;
use rocmforge::tokenizer::Tokenizer;

const PROMPT: &str = "The three primary colors are";
const N_GEN: usize = 24;

fn tokenizer(ctx: &Context) -> Tokenizer {
    Tokenizer::from_gguf(ctx.model().gguf()).unwrap()
}

/// The greedy continuation of `PROMPT`, token by token: each token's text (ASCII in
/// this model's reply, so every token's text stands alone).
fn reference() -> Vec<String> {
    let mut ctx = context(SMOLLM2);
    let tokenizer = tokenizer(&ctx);
    let prompt: Vec<i32> = (tokenizer.tokenize(PROMPT, true, true).unwrap())
        .iter()
        .map(|&t| t as i32)
        .collect();
    ctx.decode(&Batch {
        tokens: &prompt,
        ..Batch::default()
    })
    .unwrap();
    let mut sampler = Sampler::greedy();
    (0..N_GEN)
        .map(|_| {
            let token = ctx.sample(&mut sampler, -1).unwrap();
            ctx.decode(&Batch {
                tokens: &[token as i32],
                ..Batch::default()
            })
            .unwrap();
            let text = tokenizer.decoder(false).push(token).unwrap();
            assert!(text.is_ascii(), "token {token} gives {text:?}");
            text
        })
        .collect()
}

/// What one `generate` call on a fresh context delivered, why it stopped, and the
/// prompt's length and the sequence's last position after it; then what a second call
/// (an empty prompt, no stop strings) delivers in `N_GEN` tokens more.
struct Run {
    text: String,
    reason: StopReason,
    n_prompt: i32,
    pos_max: i32,
    continued: String,
}

fn run(stop: &str, mut host: impl FnMut(&str) -> bool) -> Run {
    let mut ctx = context(SMOLLM2);
    let tokenizer = tokenizer(&ctx);
    let n_prompt = tokenizer.tokenize(PROMPT, true, true).unwrap().len() as i32;
    let mut sampler = Sampler::greedy();
    let mut text = String::new();
    let params = GenerateParams {
        max_tokens: N_GEN,
        stop: vec![stop.to_string()],
        ..GenerateParams::default()
    };
    let reason = generate(
        &mut ctx,
        &tokenizer,
        &mut sampler,
        Prompt::Text(PROMPT),
        &params,
        |piece| {
            text.push_str(piece);
            host(&text)
        },
    )
    .unwrap();
    let pos_max = ctx.seq_pos_max(0).unwrap();
    let mut continued = String::new();
    let params = GenerateParams {
        max_tokens: N_GEN,
        ..GenerateParams::default()
    };
    generate(
        &mut ctx,
        &tokenizer,
        &mut sampler,
        Prompt::Text(""),
        &params,
        |piece| {
            continued.push_str(piece);
            true
        },
    )
    .unwrap();
    Run {
        text,
        reason,
        n_prompt,
        pos_max,
        continued,
    }
}

/// Where token `k`'s text begins in the reference's text.
fn offset(tokens: &[String], k: usize) -> usize {
    tokens[..k].iter().map(String::len).sum()
}

/// The first token from the third on that `wanted` accepts (given the tokens and its
/// index) and whose stop string (`stop_of`) first occurs in the reference's text at
/// `at_of`: (the token's index, its stop string).
fn pick(
    tokens: &[String],
    stop_of: impl Fn(usize) -> String,
    at_of: impl Fn(usize) -> usize,
    wanted: impl Fn(usize) -> bool,
) -> (usize, String) {
    let whole: String = tokens.concat();
    (2..tokens.len() - 1)
        .filter(|&k| wanted(k))
        .map(|k| (k, stop_of(k)))
        .find(|(k, stop)| whole.find(stop.as_str()) == Some(at_of(*k)))
        .expect("the reference has such a token")
}

/// The cache holds the prompt and the first `kept` generated tokens, and continuing
/// gives the reference's text from there.
fn assert_holds(run: &Run, tokens: &[String], kept: usize) {
    assert_eq!(
        run.pos_max,
        run.n_prompt + kept as i32 - 1,
        "delivered {:?}: the cache should hold {kept} generated tokens",
        run.text
    );
    let rest = tokens[kept..].concat();
    assert!(
        rest.starts_with(&run.continued) || run.continued.starts_with(&rest),
        "continuing after {:?} gave {:?}, the reference {rest:?}",
        run.text,
        run.continued
    );
}

#[test]
fn a_stop_string_that_begins_at_a_held_token_leaves_that_token_out_of_the_cache() {
    let tokens = reference();
    // Token k's text whole, then the next token's first character: token k is held back
    // as the stop string's start, and the next one completes it.
    let (k, stop) = pick(
        &tokens,
        |k| format!("{}{}", tokens[k], &tokens[k + 1][..1]),
        |k| offset(&tokens, k),
        |k| !tokens[k].is_empty() && !tokens[k + 1].is_empty(),
    );
    let run = run(&stop, |_| true);
    assert_eq!(run.reason, StopReason::StopString);
    assert_eq!(run.text, tokens[..k].concat());
    assert_holds(&run, &tokens, k);
}

#[test]
fn a_stop_string_that_begins_inside_a_token_leaves_that_token_out_of_the_cache() {
    let tokens = reference();
    // The last two characters of token k: its text before them is delivered, the token
    // is not kept (the documented exception).
    let (k, stop) = pick(
        &tokens,
        |k| tokens[k][tokens[k].len() - 2..].to_string(),
        |k| offset(&tokens, k + 1) - 2,
        |k| tokens[k].len() >= 3,
    );
    let run = run(&stop, |_| true);
    assert_eq!(run.reason, StopReason::StopString);
    let cut = offset(&tokens, k + 1) - 2;
    assert_eq!(run.text, tokens.concat()[..cut]);
    assert_holds(&run, &tokens, k);
}

#[test]
fn a_host_that_stops_while_text_is_held_gets_no_token_it_did_not_see_whole() {
    let tokens = reference();
    // A stop string that never completes but begins with token k's last character and
    // goes on with the next token's text: that character is held back when token k
    // arrives, and the host stops on the text before it.
    let k = (2..tokens.len() - 1)
        .find(|&k| tokens[k].len() >= 2)
        .expect("the reference has a token of two characters or more");
    let held = &tokens[k][tokens[k].len() - 1..];
    let stop = format!("{held}{}\u{1}", tokens[k + 1]);
    let past = offset(&tokens, k);
    let run = run(&stop, |text| text.len() <= past);
    assert_eq!(run.reason, StopReason::Caller);
    assert_eq!(run.text, tokens.concat()[..offset(&tokens, k + 1) - 1]);
    assert_holds(&run, &tokens, k);
}
