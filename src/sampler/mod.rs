//! Sampling: turns a logits row into a token id.
//!
//! The chain follows llama.cpp's common sampler: penalties over the last
//! `repeat_last_n` accepted tokens → top-k → top-p → min-p → temperature → seeded random
//! draw. Temperature 0 (or less) is greedy: the argmax after penalties. Ties always go to
//! the lower token id, in greedy, top-k and every other selection.
//!
//! - Deterministic: the random numbers come from a seeded xoshiro256** written here, so
//!   the same seed and the same logits give the same tokens everywhere.
//! - Fast: one pass to load the logits, penalties touch only the recent tokens, top-k
//!   selects in linear time and sorts only the k kept, top-p sorts only the prefix it
//!   needs; buffers are reused, so nothing is allocated per call once warm.
//! - NaN logits are read as -inf: such a token is never drawn while any token has a
//!   finite logit. When no logit is finite (all -inf or NaN) or one is +inf, the draw
//!   degenerates to greedy: the best token, the lowest id among equals.

mod candidates;
mod chain;
mod filters;
mod params;
mod penalties;
mod rng;

pub use candidates::Candidate;
pub use chain::Sampler;
pub use params::SamplerParams;
