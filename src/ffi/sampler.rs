//! Samplers: turn a context's logits into tokens (greedy, temperature, top-k, top-p,
//! min-p, repetition penalties, seeded).

use std::sync::{Mutex, MutexGuard};

use super::args::{out, reference, versioned, versioned_struct};
use super::boundary::{Failure, call, exclusive};
use super::context::rf_context;
use super::status::rf_status;
use crate::sampler::{Sampler, SamplerParams};

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
    seed
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
    }
}

/// Creates a sampler; `params` may be NULL for the defaults.
///
/// # Safety
/// `params` NULL or valid; `out_sampler` writable.
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
        let sampler = Sampler::new(SamplerParams {
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
        // SAFETY: the pointer came from `Box::into_raw` in `rf_sampler_new`, freed once.
        drop(unsafe { Box::from_raw(sampler) });
    }
}

/// Draws a token from the logits of `ctx`'s `output_index`-th output (-1: the last) and
/// remembers it for the repetition penalties.
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
        *token = context.sample(&mut sampler, output_index)? as i32;
        Ok(())
    })
}

/// Forgets the tokens the penalties remember and restarts the random sequence.
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
