//! The sampler chain: penalties, grammar, top-k, top-p, min-p, temperature, seeded draw.

use super::candidates::{Candidate, CandidateSet};
use super::params::SamplerParams;
use super::penalties::RecentTokens;
use super::rng::Xoshiro256StarStar;
use crate::error::{Error, Result};
use crate::grammar::{Constraint, Grammar, GrammarVocabulary, mask_scores};
use std::fmt;
use std::sync::Arc;

/// Turns logits rows into token ids. Holds the accepted-token history the penalties
/// read, the seeded random state, and buffers reused by every call, so sampling
/// allocates nothing once warm (a grammar's masks excepted). One thread at a time, like
/// `rf_sampler`.
pub struct Sampler {
    params: SamplerParams,
    rng: Xoshiro256StarStar,
    recent: RecentTokens,
    candidates: CandidateSet,
    /// [candidates] the draw's unnormalized probabilities.
    weights: Vec<f32>,
    grammar: Option<Grammar>,
    /// The grammar bound to a model's vocabulary, from the first draw under it.
    constraint: Option<Constraint>,
}

impl fmt::Debug for Sampler {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Sampler")
            .field("params", &self.params)
            .field("grammar", &self.grammar.as_ref().map(Grammar::kind))
            .finish_non_exhaustive()
    }
}

impl Sampler {
    pub fn new(params: SamplerParams) -> Result<Self> {
        params.validate()?;
        Ok(Sampler::of_valid(params))
    }

    /// A sampler of [`SamplerParams::greedy`].
    pub fn greedy() -> Sampler {
        Sampler::of_valid(SamplerParams::greedy())
    }

    fn of_valid(params: SamplerParams) -> Sampler {
        Sampler {
            params,
            rng: Xoshiro256StarStar::seeded(params.seed),
            recent: RecentTokens::new(params.repeat_last_n),
            candidates: CandidateSet::default(),
            weights: Vec::new(),
            grammar: None,
            constraint: None,
        }
    }

    /// This sampler drawing only tokens that keep the output inside `grammar`. Before its
    /// first draw it must be [bound](Self::bind_vocabulary) to the model's vocabulary.
    pub fn with_grammar(mut self, grammar: Grammar) -> Sampler {
        self.grammar = Some(grammar);
        self.constraint = None;
        self
    }

    /// Binds the grammar, if any, to `vocabulary` (the model whose logits it will draw
    /// from), starting it at the beginning of an output. Binding again to the same
    /// vocabulary changes nothing; a sampler bound to another model's must be
    /// [reset](Self::reset) first, as its grammar is partway through that model's tokens.
    pub fn bind_vocabulary(&mut self, vocabulary: &Arc<GrammarVocabulary>) -> Result<()> {
        let Some(grammar) = &self.grammar else {
            return Ok(());
        };
        match &self.constraint {
            Some(constraint) if constraint.is_over(vocabulary) => Ok(()),
            Some(_) => Err(Error::InvalidArgument(
                "this sampler's grammar is partway through another model's output: reset the \
                 sampler before drawing from this model"
                    .into(),
            )),
            None => {
                self.constraint = Some(Constraint::new(grammar, vocabulary)?);
                Ok(())
            }
        }
    }

    /// Whether draws are constrained by a grammar.
    pub fn has_grammar(&self) -> bool {
        self.grammar.is_some()
    }

    /// Where the grammar stands: a mark [`rewind_grammar`](Self::rewind_grammar) goes
    /// back to.
    pub fn grammar_mark(&self) -> usize {
        self.constraint.as_ref().map_or(0, Constraint::consumed)
    }

    /// Takes back the tokens the grammar consumed since `mark`, for a caller whose last
    /// draws never reached the cache. Should the grammar fail to go back, it starts over
    /// at the next draw.
    pub fn rewind_grammar(&mut self, mark: usize) {
        if let Some(constraint) = &mut self.constraint
            && !constraint.rewind(mark)
        {
            self.constraint = None;
        }
    }

    pub fn params(&self) -> &SamplerParams {
        &self.params
    }

    /// Draws a token from `logits` ([n_vocab]) and accepts it into the history, as
    /// llama.cpp's `llama_sampler_sample` does (`rf_sampler_sample` has no separate
    /// accept).
    pub fn sample(&mut self, logits: &[f32]) -> Result<u32> {
        self.narrow(logits)?;
        let token = self.draw();
        if let Some(constraint) = &mut self.constraint {
            constraint.commit(token)?;
        }
        self.recent.accept(token);
        Ok(token)
    }

    /// Whether every draw is the plain argmax of the logits (greedy, no penalties), so a
    /// backend that computed the argmax where the logits are can supply the token:
    /// [`Sampler::accept`] it in place of [`Sampler::sample`].
    pub fn is_plain_argmax(&self) -> bool {
        self.params.temperature <= 0.0 && self.params.penalties_off() && self.grammar.is_none()
    }

    /// Runs the chain up to the draw and returns the tokens the draw would choose from.
    /// Their logits are relative to the best (0) and divided by the temperature, so the
    /// draw picks each with probability softmax(logits); greedy leaves one candidate.
    /// Changes nothing but scratch buffers: the history and random state stay as they are.
    pub fn candidates(&mut self, logits: &[f32]) -> Result<&[Candidate]> {
        self.narrow(logits)?;
        Ok(self.candidates.items())
    }

    /// Adds a token chosen elsewhere (a prompt token) to the history the penalties read;
    /// a grammar does not see it.
    pub fn accept(&mut self, token: u32) {
        self.recent.accept(token);
    }

    /// Back to the state just after `new`: empty history, random state reseeded, the
    /// grammar unbound (it starts over at the next draw, on any model).
    pub fn reset(&mut self) {
        self.recent.clear();
        self.rng = Xoshiro256StarStar::seeded(self.params.seed);
        self.constraint = None;
    }

    /// Penalties → grammar → top-k → top-p → min-p → temperature, leaving the draw's
    /// candidates.
    fn narrow(&mut self, logits: &[f32]) -> Result<()> {
        if logits.is_empty() || u32::try_from(logits.len()).is_err() {
            return Err(Error::InvalidArgument(format!(
                "sampler needs 1 to {} logits, got {}",
                u32::MAX,
                logits.len()
            )));
        }
        let params = &self.params;
        let candidates = &mut self.candidates;
        candidates.load(logits);
        self.recent.penalize(params, candidates.scores_mut());
        match (&self.grammar, &mut self.constraint) {
            (None, _) => {}
            (Some(_), Some(constraint)) => {
                mask_scores(constraint.allowed()?, candidates.scores_mut())
            }
            (Some(grammar), None) => {
                return Err(Error::InvalidArgument(format!(
                    "a sampler with a {} draws only from a context's logits, which bind it to \
                     the model's vocabulary",
                    grammar.kind()
                )));
            }
        }
        if params.temperature <= 0.0 {
            candidates.gather_only_best();
            return Ok(());
        }
        candidates.gather_top_k(params.top_k);
        // Nothing to weigh: every score -inf (all NaN, say), or one +inf.
        if !candidates.max_logit().is_finite() {
            candidates.gather_only_best();
            return Ok(());
        }
        candidates.keep_top_p(params.top_p);
        candidates.keep_min_p(params.min_p);
        candidates.apply_temperature(params.temperature);
        Ok(())
    }

    /// Picks a candidate with probability proportional to exp(logit).
    fn draw(&mut self) -> u32 {
        let items = self.candidates.items();
        if let [only] = items {
            return only.id;
        }
        self.weights.clear();
        self.weights.extend(items.iter().map(|c| c.logit.exp()));
        let total: f64 = self.weights.iter().map(|&w| f64::from(w)).sum();
        let target = self.rng.next_f64() * total;
        let mut cumulative = 0.0;
        // Where the walk ends if rounding leaves `target` at `total`: the last candidate
        // with a nonzero weight (the best, weight exp(0) = 1, guarantees one).
        let mut last_possible = items[0].id;
        for (candidate, &weight) in items.iter().zip(&self.weights) {
            if weight > 0.0 {
                last_possible = candidate.id;
            }
            cumulative += f64::from(weight);
            if cumulative > target {
                return candidate.id;
            }
        }
        last_possible
    }
}
