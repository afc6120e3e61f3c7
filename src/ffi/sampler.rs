//! Samplers: turn a context's logits into tokens (greedy, temperature, top-k, top-p,
//! min-p, repetition penalties, seeded, constrained by a grammar).

use std::ffi::c_char;
use std::sync::{Mutex, MutexGuard};

use super::args::{out, reference, text, versioned, versioned_struct};
use super::boundary::{Failure, call, exclusive, free_quietly};
use super::context::rf_context;
use super::model::LoadedModel;
use super::status::rf_status;
use crate::grammar::{Grammar, GrammarKind};
use crate::sampler::{Sampler, SamplerParams};

/// `rf_sampler_params.grammar_kind`: no grammar.
pub const RF_GRAMMAR_NONE: u32 = 0;
/// A JSON Schema: the output is JSON that validates against it.
pub const RF_GRAMMAR_JSON_SCHEMA: u32 = 1;
/// A regular expression (Rust `regex` syntax) the whole output matches.
pub const RF_GRAMMAR_REGEX: u32 = 2;
/// llguidance's Lark-style grammar, starting at rule `start`.
pub const RF_GRAMMAR_LARK: u32 = 3;

#[repr(C)]
#[derive(Clone, Copy)]
pub struct rf_sampler_params {
    /// `sizeof(rf_sampler_params)`, set by `rf_sampler_default_params()`.
    pub struct_size: u32,
    /// 0 = greedy.
    pub temperature: f32,
    /// 0 = off.
    pub top_k: u32,
    /// 1 = off.
    pub top_p: f32,
    /// 0 = off.
    pub min_p: f32,
    /// 1 = off.
    pub repeat_penalty: f32,
    /// How many recent tokens the penalties see; 0 = off.
    pub repeat_last_n: u32,
    pub frequency_penalty: f32,
    pub presence_penalty: f32,
    /// The same seed and logits give the same tokens.
    pub seed: u64,
    /// `RF_GRAMMAR_*`: draw only tokens that keep the output inside `grammar`.
    pub grammar_kind: u32,
    /// `[grammar_len]` UTF-8, read by `rf_sampler_new` only.
    pub grammar: *const c_char,
    pub grammar_len: usize,
}

versioned_struct!(rf_sampler_params {
    struct_size,
    temperature,
    top_k,
    top_p,
    min_p,
    repeat_penalty,
    repeat_last_n,
    frequency_penalty,
    presence_penalty,
    seed,
    grammar_kind,
    grammar,
    grammar_len
});

/// A sampler. One thread at a time: a second thread gets `RF_ERR_BUSY`.
pub struct rf_sampler {
    state: Mutex<Sampler>,
}

impl rf_sampler {
    pub(crate) fn enter(&self) -> Result<MutexGuard<'_, Sampler>, Failure> {
        exclusive(&self.state, "sampler")
    }
}

#[unsafe(no_mangle)]
pub extern "C" fn rf_sampler_default_params() -> rf_sampler_params {
    let d = SamplerParams::default();
    rf_sampler_params {
        struct_size: size_of::<rf_sampler_params>() as u32,
        temperature: d.temperature,
        top_k: d.top_k,
        top_p: d.top_p,
        min_p: d.min_p,
        repeat_penalty: d.repeat_penalty,
        repeat_last_n: d.repeat_last_n,
        frequency_penalty: d.frequency_penalty,
        presence_penalty: d.presence_penalty,
        seed: d.seed,
        grammar_kind: RF_GRAMMAR_NONE,
        grammar: std::ptr::null(),
        grammar_len: 0,
    }
}

/// Creates a sampler; `params` may be NULL for the defaults.
///
/// With a grammar, every draw keeps the output inside it (llguidance): an invalid grammar
/// is `RF_ERR_INVALID_ARGUMENT` with llguidance's message in `rf_last_error`. The first
/// draw binds the grammar to the context's model (the first sampler with a grammar on a
/// model also builds the model's token trie, tens of milliseconds); from then on the
/// sampler draws from that model's contexts only, until `rf_sampler_reset`. Once the
/// grammar is complete only end-of-generation tokens are allowed. The mask of allowed
/// tokens is computed on a helper thread of the sampler's while the host decodes.
///
/// # Safety
/// `params` NULL or valid, its `grammar` `grammar_len` readable bytes; `out_sampler`
/// writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn rf_sampler_new(
    params: *const rf_sampler_params,
    out_sampler: *mut *mut rf_sampler,
) -> rf_status {
    call(|| {
        // SAFETY: the caller's contract.
        let (p, out_sampler) = unsafe {
            (
                versioned(params, rf_sampler_default_params(), "params")?,
                out(out_sampler, "out_sampler")?,
            )
        };
        let grammar = match p.grammar_kind {
            RF_GRAMMAR_NONE => None,
            kind => {
                let kind = grammar_kind(kind)?;
                // SAFETY: the caller's contract.
                let source = unsafe { text(p.grammar, p.grammar_len, "params.grammar")? };
                Some(Grammar::new(kind, source)?)
            }
        };
        let mut sampler = Sampler::new(SamplerParams {
            temperature: p.temperature,
            top_k: p.top_k,
            top_p: p.top_p,
            min_p: p.min_p,
            repeat_penalty: p.repeat_penalty,
            repeat_last_n: p.repeat_last_n,
            frequency_penalty: p.frequency_penalty,
            presence_penalty: p.presence_penalty,
            seed: p.seed,
        })?;
        if let Some(grammar) = grammar {
            sampler = sampler.with_grammar(grammar);
        }
        *out_sampler = Box::into_raw(Box::new(rf_sampler {
            state: Mutex::new(sampler),
        }));
        Ok(())
    })
}

/// Frees a sampler. NULL is ignored.
///
/// # Safety
/// `sampler` must be NULL or from `rf_sampler_new`, not yet freed, unused by others.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn rf_sampler_free(sampler: *mut rf_sampler) {
    if !sampler.is_null() {
        free_quietly(|| {
            // SAFETY: the pointer came from `Box::into_raw` in `rf_sampler_new`, freed once.
            drop(unsafe { Box::from_raw(sampler) });
        });
    }
}

/// Draws a token from the logits of `ctx`'s `output_index`-th output (-1: the last) and
/// remembers it for the repetition penalties. With a grammar, the token is one the
/// grammar allows and moves it on; once the grammar is complete, every draw is an
/// end-of-generation token until `rf_sampler_reset` (so reset a constrained sampler
/// before each new output).
///
/// # Safety
/// `sampler` and `ctx` live; `token` writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn rf_sampler_sample(
    sampler: *mut rf_sampler,
    ctx: *mut rf_context,
    output_index: i32,
    token: *mut i32,
) -> rf_status {
    call(|| {
        // SAFETY: the caller's contract.
        let (sampler, ctx, token) = unsafe {
            (
                reference(sampler, "sampler")?,
                reference(ctx, "ctx")?,
                out(token, "token")?,
            )
        };
        let mut sampler = sampler.enter()?;
        let mut context = ctx.enter()?;
        bind_to_model(&mut sampler, &ctx.model)?;
        *token = context.sample(&mut sampler, output_index)? as i32;
        Ok(())
    })
}

/// Forgets the tokens the penalties remember and restarts the random sequence; a grammar
/// starts over at the beginning of an output, and may then be used with any model.
///
/// # Safety
/// `sampler` must be live.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn rf_sampler_reset(sampler: *mut rf_sampler) -> rf_status {
    call(|| {
        // SAFETY: the caller's contract.
        let sampler = unsafe { reference(sampler, "sampler")? };
        sampler.enter()?.reset();
        Ok(())
    })
}

fn grammar_kind(kind: u32) -> Result<GrammarKind, Failure> {
    match kind {
        RF_GRAMMAR_JSON_SCHEMA => Ok(GrammarKind::JsonSchema),
        RF_GRAMMAR_REGEX => Ok(GrammarKind::Regex),
        RF_GRAMMAR_LARK => Ok(GrammarKind::Lark),
        other => Err(Failure::new(
            rf_status::RF_ERR_INVALID_ARGUMENT,
            format!("params.grammar_kind is {other}, expected one of RF_GRAMMAR_*"),
        )),
    }
}

/// Binds `sampler`'s grammar, if it has one, to `model`'s vocabulary before it draws
/// from `model`'s logits.
pub(crate) fn bind_to_model(sampler: &mut Sampler, model: &LoadedModel) -> Result<(), Failure> {
    if sampler.has_grammar() {
        sampler.bind_vocabulary(&model.grammar_vocabulary()?)?;
    }
    Ok(())
}
