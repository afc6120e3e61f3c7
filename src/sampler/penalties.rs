//! Repetition penalties over the last `repeat_last_n` accepted tokens, with llama.cpp's
//! semantics: the repeat penalty divides a positive logit and multiplies a negative one
//! (dividing a negative logit would make the token more likely), then the frequency
//! penalty is subtracted once per occurrence and the presence penalty once.

use std::collections::{HashMap, VecDeque};

use super::params::SamplerParams;

/// The last accepted tokens and how often each occurs among them, kept up to date on
/// every accept so applying the penalties costs one step per distinct recent token.
#[derive(Debug, Clone)]
pub(super) struct RecentTokens {
    capacity: usize,
    /// Oldest first.
    window: VecDeque<u32>,
    counts: HashMap<u32, u32>,
}

impl RecentTokens {
    pub fn new(capacity: u32) -> Self {
        // Not preallocated: `repeat_last_n` may be far more than will ever be accepted.
        RecentTokens {
            capacity: capacity as usize,
            window: VecDeque::new(),
            counts: HashMap::new(),
        }
    }

    pub fn accept(&mut self, token: u32) {
        if self.capacity == 0 {
            return;
        }
        if self.window.len() == self.capacity {
            if let Some(oldest) = self.window.pop_front() {
                self.forget_one(oldest);
            }
        }
        self.window.push_back(token);
        *self.counts.entry(token).or_insert(0) += 1;
    }

    fn forget_one(&mut self, token: u32) {
        if let Some(count) = self.counts.get_mut(&token) {
            *count -= 1;
            if *count == 0 {
                self.counts.remove(&token);
            }
        }
    }

    pub fn clear(&mut self) {
        self.window.clear();
        self.counts.clear();
    }

    /// Penalizes the recent tokens' scores (`scores[t]` is token `t`'s logit); recent
    /// tokens outside the vocabulary are skipped.
    pub fn penalize(&self, params: &SamplerParams, scores: &mut [f32]) {
        if params.penalties_off() {
            return;
        }
        for (&token, &count) in &self.counts {
            if let Some(score) = scores.get_mut(token as usize) {
                *score = penalized(*score, count, params);
            }
        }
    }
}

/// The penalized logit. Extreme (finite) penalties can overflow to infinities of both
/// signs, whose sum is NaN: read as -inf, as the sampler reads a NaN logit.
fn penalized(logit: f32, count: u32, params: &SamplerParams) -> f32 {
    let repeated = if logit <= 0.0 {
        logit * params.repeat_penalty
    } else {
        logit / params.repeat_penalty
    };
    let score = repeated - count as f32 * params.frequency_penalty - params.presence_penalty;
    if score.is_nan() {
        f32::NEG_INFINITY
    } else {
        score
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn window_forgets_the_oldest_tokens() {
        let mut recent = RecentTokens::new(3);
        for token in [5, 5, 7, 9] {
            recent.accept(token);
        }
        assert_eq!(recent.window, [5, 7, 9]);
        assert_eq!(recent.counts, HashMap::from([(5, 1), (7, 1), (9, 1)]));
        recent.accept(9);
        assert_eq!(recent.counts, HashMap::from([(7, 1), (9, 2)]));
        recent.clear();
        assert!(recent.window.is_empty() && recent.counts.is_empty());
    }

    #[test]
    fn penalties_that_overflow_both_ways_give_minus_infinity_not_nan() {
        let params = SamplerParams {
            repeat_penalty: 1e-45,
            frequency_penalty: 3e38,
            ..SamplerParams::default()
        };
        params.validate().unwrap();
        // 1 / 1e-45 overflows to +inf, 2 x 3e38 to +inf: +inf - inf.
        assert_eq!(penalized(1.0, 2, &params), f32::NEG_INFINITY);
    }

    #[test]
    fn zero_capacity_keeps_nothing() {
        let mut recent = RecentTokens::new(0);
        recent.accept(1);
        assert!(recent.counts.is_empty());
    }
}
