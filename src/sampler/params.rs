//! The sampler's settings, mirroring C_API.md's `rf_sampler_params`.

use crate::error::{Error, Result};

/// How a [`Sampler`](super::Sampler) turns logits into a token. Each stage has a value
/// that turns it off.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SamplerParams {
    /// Divides the logits before the draw; 0 or less = greedy (argmax after penalties).
    pub temperature: f32,
    /// Keep the `top_k` most likely tokens; 0 = off.
    pub top_k: u32,
    /// Keep the smallest set of most likely tokens whose probability reaches `top_p`
    /// (at least one); 1 = off.
    pub top_p: f32,
    /// Drop tokens less likely than `min_p` times the most likely one; 0 = off.
    pub min_p: f32,
    /// Divides positive and multiplies negative logits of recent tokens; 1 = off.
    pub repeat_penalty: f32,
    /// How many of the last accepted tokens the penalties look at; 0 = off.
    pub repeat_last_n: u32,
    /// Subtracted from a recent token's logit once per occurrence; 0 = off.
    pub frequency_penalty: f32,
    /// Subtracted once from the logit of any recent token; 0 = off.
    pub presence_penalty: f32,
    /// Seeds the random draw; the same seed and logits give the same tokens.
    pub seed: u64,
}

impl Default for SamplerParams {
    /// llama.cpp's common defaults, with a fixed seed: runs are reproducible unless the
    /// caller picks a seed.
    fn default() -> Self {
        SamplerParams {
            temperature: 0.8,
            top_k: 40,
            top_p: 0.95,
            min_p: 0.05,
            repeat_penalty: 1.0,
            repeat_last_n: 64,
            frequency_penalty: 0.0,
            presence_penalty: 0.0,
            seed: 0,
        }
    }
}

impl SamplerParams {
    /// The argmax of every draw (the lowest id on ties), the other defaults kept: their
    /// penalties are off, and the filters change no argmax.
    pub fn greedy() -> SamplerParams {
        SamplerParams {
            temperature: 0.0,
            ..SamplerParams::default()
        }
    }

    /// Whether the penalties change no logit, whatever the history.
    pub fn penalties_off(&self) -> bool {
        self.repeat_last_n == 0
            || (self.repeat_penalty == 1.0
                && self.frequency_penalty == 0.0
                && self.presence_penalty == 0.0)
    }

    /// Rejects values no stage can use: NaN or infinite numbers, probabilities outside
    /// [0, 1], a repeat penalty of 0 or less.
    pub fn validate(&self) -> Result<()> {
        let finite = [
            ("temperature", self.temperature),
            ("frequency_penalty", self.frequency_penalty),
            ("presence_penalty", self.presence_penalty),
        ];
        for (name, value) in finite {
            if !value.is_finite() {
                return Err(invalid(name, value, "a finite number"));
            }
        }
        for (name, value) in [("top_p", self.top_p), ("min_p", self.min_p)] {
            if !(0.0..=1.0).contains(&value) {
                return Err(invalid(name, value, "0 to 1"));
            }
        }
        if !(self.repeat_penalty.is_finite() && self.repeat_penalty > 0.0) {
            return Err(invalid(
                "repeat_penalty",
                self.repeat_penalty,
                "a finite number above 0",
            ));
        }
        Ok(())
    }
}

fn invalid(name: &str, value: f32, expected: &str) -> Error {
    Error::InvalidArgument(format!("sampler {name} is {value}, expected {expected}"))
}
