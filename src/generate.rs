//! Prompt in, streamed text out: tokenize, prefill, then sample and decode one token at a
//! time until an end-of-generation token, a stop string, the token budget or the caller
//! says stop.

use crate::chat::{ChatMessage, chat_tokens};
use crate::context::{Batch, Context};
use crate::error::{Error, Result};
use crate::sampler::Sampler;
use crate::tokenizer::{IncrementalDecoder, Tokenizer};

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GenerateParams {
    /// Most tokens to generate.
    pub max_tokens: usize,
    /// Generation stops before the first occurrence of any of these; it is not emitted.
    pub stop: Vec<String>,
    /// The sequence the prompt continues.
    pub seq: i32,
    /// Add BOS/EOS to the prompt as the model says.
    pub add_special: bool,
    /// Control tokens written in the prompt (`<|im_start|>`) become their ids.
    pub parse_special: bool,
}

impl Default for GenerateParams {
    fn default() -> GenerateParams {
        GenerateParams {
            max_tokens: 256,
            stop: Vec::new(),
            seq: 0,
            add_special: true,
            parse_special: true,
        }
    }
}

/// What a generation continues the sequence with.
#[derive(Clone, Copy, Debug)]
pub enum Prompt<'a> {
    /// Text, tokenized as [`GenerateParams`] say.
    Text(&'a str),
    /// Chat messages rendered with `template` (see [`crate::chat::chat_tokens`]): only the
    /// template's markup becomes control tokens, the messages stay plain text.
    Chat {
        template: Option<&'a str>,
        messages: &'a [ChatMessage<'a>],
        add_assistant: bool,
    },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StopReason {
    EndOfGeneration,
    MaxTokens,
    StopString,
    /// `on_text` returned false.
    Caller,
}

/// Generates a continuation of `prompt` on sequence `params.seq`, giving `on_text` whole
/// UTF-8 characters as they complete; `on_text` returns false to stop.
/// (`params.parse_special` applies to a text prompt only.)
///
/// The prompt continues what the sequence holds: special tokens (BOS) are added only when
/// the sequence is empty, and an empty prompt continues from the sequence's own last
/// token (an error on an empty sequence). When the call stops, the cache holds the prompt
/// and every generated token whose text was delivered whole, and no other: not the tokens
/// held back as the possible start of a stop string that the host never got, nor the
/// token in which a stop string begins (its text before the stop string is delivered).
/// On any error the sequence is left as the call found it.
pub fn generate(
    ctx: &mut Context,
    tokenizer: &Tokenizer,
    sampler: &mut Sampler,
    prompt: Prompt<'_>,
    params: &GenerateParams,
    on_text: impl FnMut(&str) -> bool,
) -> Result<StopReason> {
    let pos_before = ctx.seq_pos_max(params.seq)?;
    let grammar_mark = sampler.grammar_mark();
    let result = continue_sequence(ctx, tokenizer, sampler, prompt, params, on_text);
    if result.is_err() {
        // Neither the cache nor a grammar keeps what the failed call drew.
        sampler.rewind_grammar(grammar_mark);
        ctx.seq_remove(params.seq, pos_before + 1, -1)?;
    }
    result
}

fn continue_sequence(
    ctx: &mut Context,
    tokenizer: &Tokenizer,
    sampler: &mut Sampler,
    prompt: Prompt<'_>,
    params: &GenerateParams,
    on_text: impl FnMut(&str) -> bool,
) -> Result<StopReason> {
    let seq = params.seq;
    let starts_sequence = ctx.seq_pos_max(seq)? < 0;
    let add_special = params.add_special && starts_sequence;
    let prompt_ids = match prompt {
        Prompt::Text(text) => tokenizer.tokenize(text, add_special, params.parse_special)?,
        Prompt::Chat {
            template,
            messages,
            add_assistant,
        } => chat_tokens(tokenizer, template, messages, add_assistant, add_special)?,
    };
    let prompt_ids: Vec<i32> = prompt_ids.iter().map(|&id| id as i32).collect();
    if prompt_ids.is_empty() {
        if starts_sequence {
            return Err(Error::InvalidArgument(format!(
                "the prompt is empty and sequence {seq} holds no tokens: nothing to continue from"
            )));
        }
        ctx.recompute_last_logits(seq)?;
    }
    for chunk in prompt_ids.chunks(ctx.params().n_batch) {
        let seq_ids = vec![seq; chunk.len()];
        ctx.decode(&Batch {
            tokens: chunk,
            seq_ids: Some(&seq_ids),
            ..Batch::default()
        })?;
    }
    for &id in &prompt_ids {
        sampler.accept(id as u32);
    }

    let mut text = GeneratedText {
        decoder: tokenizer.decoder(false),
        stops: StopStrings::new(&params.stop),
        cached: CachedTokens::after(ctx.seq_pos_max(seq)?),
        on_text,
    };
    let reason = generate_tokens(ctx, tokenizer, sampler, params, &mut text)?;
    text.cached.keep_delivered(ctx, sampler, seq)?;
    Ok(reason)
}

/// Samples and decodes up to `params.max_tokens` tokens, passing their text on.
fn generate_tokens(
    ctx: &mut Context,
    tokenizer: &Tokenizer,
    sampler: &mut Sampler,
    params: &GenerateParams,
    text: &mut GeneratedText<'_, '_, impl FnMut(&str) -> bool>,
) -> Result<StopReason> {
    let seq = params.seq;
    for _ in 0..params.max_tokens {
        ctx.check_cancelled()?;
        let grammar_mark = sampler.grammar_mark();
        let token = ctx.sample(sampler, -1)?;
        if tokenizer.is_end_of_generation(token) {
            return Ok(text.finish(StopReason::EndOfGeneration));
        }
        let (delivered, stopped) = text.push(token)?;
        if stopped {
            // The stop string is never emitted, so neither is its token cached, nor does
            // a grammar keep it.
            sampler.rewind_grammar(grammar_mark);
            return Ok(if delivered {
                StopReason::StopString
            } else {
                StopReason::Caller
            });
        }
        // Decoded even when the host stops here: its text was delivered, so the cache
        // must hold it for the sequence to continue where the host's text ends.
        ctx.decode(&Batch {
            tokens: &[token as i32],
            seq_ids: Some(&[seq]),
            ..Batch::default()
        })?;
        text.cached.push(grammar_mark, text.complete_len());
        if !delivered {
            return Ok(StopReason::Caller);
        }
    }
    Ok(text.finish(StopReason::MaxTokens))
}

/// The generated text on its way to the host: characters completed by the decoder, held
/// back while they may begin a stop string, and how much of it each cached token ends.
struct GeneratedText<'t, 's, F> {
    decoder: IncrementalDecoder<'t>,
    stops: StopStrings<'s>,
    cached: CachedTokens,
    on_text: F,
}

impl<F: FnMut(&str) -> bool> GeneratedText<'_, '_, F> {
    /// Adds `token`'s text and passes on what is ready: whether the host took it (and
    /// wants more), and whether a stop string was reached.
    fn push(&mut self, token: u32) -> Result<(bool, bool)> {
        let piece = self.decoder.push(token)?;
        let (ready, stopped) = self.stops.push(&piece);
        Ok((self.deliver(&ready), stopped))
    }

    /// Emits what is still held back once generation ends for `reason`.
    fn finish(&mut self, reason: StopReason) -> StopReason {
        let (mut ready, stopped) = self.stops.push(&self.decoder.finish());
        // The last tokens' bytes are whole now, as U+FFFD where they ended inside a
        // character.
        self.cached.settle(self.stops.received);
        if !stopped {
            ready.push_str(&self.stops.held);
        }
        if !self.deliver(&ready) {
            return StopReason::Caller;
        }
        if stopped {
            StopReason::StopString
        } else {
            reason
        }
    }

    /// Passes `ready` to the host (nothing to pass counts as taken); whether it wants more.
    fn deliver(&mut self, ready: &str) -> bool {
        self.cached.delivered += ready.len();
        ready.is_empty() || (self.on_text)(ready)
    }

    /// The length of the generated text through the last token, when that token's bytes
    /// end a character (else it ends inside one still arriving).
    fn complete_len(&self) -> Option<usize> {
        self.decoder
            .pending()
            .is_empty()
            .then_some(self.stops.received)
    }
}

/// The generated tokens decoded into the cache: the grammar's mark before each was drawn,
/// and where its text ends in the generated text, so that a call that stops can leave out
/// those whose text the host did not get whole.
struct CachedTokens {
    /// The position of the first generated token.
    first: i32,
    /// (grammar mark, end of the text through the token; None while the token ends inside
    /// a character).
    tokens: Vec<(usize, Option<usize>)>,
    /// Bytes of the generated text delivered to the host.
    delivered: usize,
}

impl CachedTokens {
    /// For tokens generated after position `last` of the sequence.
    fn after(last: i32) -> CachedTokens {
        CachedTokens {
            first: last.saturating_add(1),
            tokens: Vec::new(),
            delivered: 0,
        }
    }

    /// A token decoded into the cache, its text ending at `end` (see
    /// [`GeneratedText::complete_len`]).
    fn push(&mut self, grammar_mark: usize, end: Option<usize>) {
        if let Some(end) = end {
            self.settle(end);
        }
        self.tokens.push((grammar_mark, end));
    }

    /// The tokens whose text ended inside a character end at `end`, the character's end.
    fn settle(&mut self, end: usize) {
        for (_, token_end) in self.tokens.iter_mut().rev() {
            if token_end.is_some() {
                break;
            }
            *token_end = Some(end);
        }
    }

    /// Removes from the cache, and from the grammar, the tokens from the first one whose
    /// text the host did not get whole: a few (held back as the start of a stop string, or
    /// inside a character), within what a sliding-window cache takes back unless the
    /// model wrote more than `n_batch` tokens without text meanwhile (see `rf_generate`).
    fn keep_delivered(&self, ctx: &mut Context, sampler: &mut Sampler, seq: i32) -> Result<()> {
        let Some(first) = self.first_undelivered() else {
            return Ok(());
        };
        sampler.rewind_grammar(self.tokens[first].0);
        let position = i32::try_from(first).map_or(i32::MAX, |i| self.first.saturating_add(i));
        ctx.seq_remove(seq, position, -1)
    }

    /// The index of the first token whose text the host did not get whole.
    fn first_undelivered(&self) -> Option<usize> {
        self.tokens
            .iter()
            .position(|&(_, end)| end.is_none_or(|end| end > self.delivered))
    }
}

/// Holds back generated text that might be the start of a stop string, so a stop string
/// is never emitted, even when it arrives over several tokens.
struct StopStrings<'a> {
    stops: &'a [String],
    held: String,
    /// Bytes of text pushed so far.
    received: usize,
}

impl<'a> StopStrings<'a> {
    fn new(stops: &'a [String]) -> StopStrings<'a> {
        StopStrings {
            stops,
            held: String::new(),
            received: 0,
        }
    }

    /// Adds `text`; returns what can be emitted and whether a stop string was reached
    /// (then nothing from it on is emitted).
    fn push(&mut self, text: &str) -> (String, bool) {
        self.received += text.len();
        self.held.push_str(text);
        let first_stop = self
            .stops
            .iter()
            .filter(|s| !s.is_empty())
            .filter_map(|s| self.held.find(s.as_str()))
            .min();
        if let Some(at) = first_stop {
            let ready = self.held[..at].to_owned();
            self.held.clear();
            return (ready, true);
        }
        let keep = self.longest_partial_stop();
        let split = self.held.len() - keep;
        let ready = self.held[..split].to_owned();
        self.held.drain(..split);
        (ready, false)
    }

    /// Length of the longest end of the held text that begins some stop string.
    fn longest_partial_stop(&self) -> usize {
        self.stops
            .iter()
            .flat_map(|stop| {
                (1..stop.len())
                    .filter(|&n| stop.is_char_boundary(n))
                    .filter(|&n| self.held.ends_with(&stop[..n]))
            })
            .max()
            .unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(stops: &[&str], pieces: &[&str]) -> (String, bool) {
        let stops: Vec<String> = stops.iter().map(|s| s.to_string()).collect();
        let mut matcher = StopStrings::new(&stops);
        let mut out = String::new();
        for piece in pieces {
            let (ready, stopped) = matcher.push(piece);
            out.push_str(&ready);
            if stopped {
                return (out, true);
            }
        }
        out.push_str(&matcher.held);
        (out, false)
    }

    #[test]
    fn stop_string_split_over_pieces_is_never_emitted() {
        assert_eq!(
            run(&["\n\n"], &["Paris.", "\n", "\nThe"]),
            ("Paris.".into(), true)
        );
        assert_eq!(run(&["END"], &["a E", "N", "D b"]), ("a ".into(), true));
    }

    #[test]
    fn partial_match_that_fails_is_emitted_later() {
        assert_eq!(run(&["END"], &["a E", "N", "x"]), ("a ENx".into(), false));
        assert_eq!(run(&[], &["héllo", " 世界"]), ("héllo 世界".into(), false));
    }

    #[test]
    fn a_token_ending_inside_a_character_is_delivered_with_the_character() {
        let mut cached = CachedTokens::after(9);
        cached.push(0, Some(3));
        // Two tokens of one character's bytes, then one that ends after it.
        cached.push(1, None);
        cached.push(2, None);
        cached.push(3, Some(9));
        assert_eq!(cached.tokens[1..3], [(1, Some(9)), (2, Some(9))]);
        cached.delivered = 8;
        assert_eq!(cached.first_undelivered(), Some(1));
        cached.delivered = 9;
        assert_eq!(cached.first_undelivered(), None);
        // A token still inside a character was not delivered whole.
        cached.push(4, None);
        assert_eq!(cached.first_undelivered(), Some(4));
        cached.settle(12);
        assert_eq!(cached.first_undelivered(), Some(4));
        cached.delivered = 12;
        assert_eq!(cached.first_undelivered(), None);
    }

    #[test]
    fn earliest_of_several_stop_strings_wins() {
        assert_eq!(run(&["b", "a"], &["xxab"]), ("xx".into(), true));
    }
}
