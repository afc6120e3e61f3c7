//! The truncation stages: top-k, top-p (nucleus) and min-p, with llama.cpp's semantics.
//! Top-p and min-p see probabilities at temperature 1, since temperature comes after
//! them in the chain.
//!
//! None sorts the whole vocabulary unless it must: top-k is one pass over the scores plus
//! a sort of the k kept; top-p sorts a growing prefix until it holds the probability mass
//! asked for; min-p is one pass.
//!
//! Top-p and min-p require at least one candidate and a finite highest logit (the sampler
//! falls back to greedy otherwise).

use super::candidates::{Candidate, CandidateSet, rank};

/// Top-k's buffer holds at least this many tokens beyond the k kept, so it is cut back
/// rarely.
const TOP_K_MIN_SPARE: usize = 4096;
/// Top-k tests the scores in chunks of this many before looking at each.
const TOP_K_CHUNK: usize = 64;

/// Top-p first sorts this many candidates, then eight times more each round that falls
/// short of the mass asked for; with a peaked distribution the first round suffices.
const TOP_P_FIRST_SORTED: usize = 256;
const TOP_P_GROWTH: usize = 8;

impl CandidateSet {
    /// Gathers the `k` best tokens (by score, ties to the lower id) as the candidates, in
    /// rank order; 0 = every token. One pass over the scores: a token enters a buffer only
    /// when it beats the k-th best seen so far, which after the first few thousand tokens
    /// rarely changes; when the buffer fills it is cut back to the k best.
    pub fn gather_top_k(&mut self, k: u32) {
        let k = k as usize;
        if k == 0 || k >= self.scores.len() {
            self.gather_all();
            return;
        }
        let buffer_len = k + k.max(TOP_K_MIN_SPARE);
        self.items.clear();
        // The k-th best score so far, once the buffer has been cut. A later token with an
        // equal score has a higher id, so it ranks below and stays out.
        let mut kth_best: Option<f32> = None;
        for (chunk_index, chunk) in self.scores.chunks(TOP_K_CHUNK).enumerate() {
            // A branch-free test per chunk (it vectorizes) skips most of the row.
            if kth_best.is_some_and(|kth| !chunk.iter().fold(false, |any, &s| any | (s > kth))) {
                continue;
            }
            for (offset, &score) in chunk.iter().enumerate() {
                if kth_best.is_some_and(|kth| score <= kth) {
                    continue;
                }
                self.items.push(Candidate {
                    id: (chunk_index * TOP_K_CHUNK + offset) as u32,
                    logit: score,
                });
                if self.items.len() == buffer_len {
                    self.items.select_nth_unstable_by(k - 1, rank);
                    self.items.truncate(k);
                    kth_best = Some(self.items[k - 1].logit);
                }
            }
        }
        sort_next_best(&mut self.items, k);
        self.items.truncate(k);
        self.sorted = true;
    }

    /// Keeps the smallest set of best candidates whose probabilities sum to at least `p`,
    /// and at least one; 1 = all.
    pub fn keep_top_p(&mut self, p: f32) {
        if p >= 1.0 {
            return;
        }
        let max = self.max_logit();
        let weight = |logit: f32| f64::from((logit - max).exp());
        let total: f64 = self.items.iter().map(|c| weight(c.logit)).sum();
        let target = f64::from(p) * total;

        let len = self.items.len();
        let mut sorted_len = if self.sorted { len } else { 0 };
        let mut cumulative = 0.0;
        let mut kept = 0;
        while kept < len {
            if kept == sorted_len {
                let next_sorted_len = (sorted_len * TOP_P_GROWTH).max(TOP_P_FIRST_SORTED).min(len);
                sort_next_best(&mut self.items[sorted_len..], next_sorted_len - sorted_len);
                sorted_len = next_sorted_len;
            }
            cumulative += weight(self.items[kept].logit);
            kept += 1;
            if cumulative >= target {
                break;
            }
        }
        self.items.truncate(kept);
        self.sorted = true;
    }

    /// Keeps the candidates at least `p` times as likely as the best one; 0 = all.
    pub fn keep_min_p(&mut self, p: f32) {
        if p <= 0.0 {
            return;
        }
        // prob_i >= p * prob_max  <=>  logit_i >= logit_max + ln(p); the best always stays.
        let min_logit = self.max_logit() + p.ln();
        self.items.retain(|c| c.logit >= min_logit);
    }
}

/// Moves the `n` best of `items` to its front, in rank order, in time linear in
/// `items.len()` plus a sort of `n`.
///
/// Precondition: `1 <= n <= items.len()`.
fn sort_next_best(items: &mut [Candidate], n: usize) {
    if n < items.len() {
        items.select_nth_unstable_by(n - 1, rank);
    }
    items[..n].sort_unstable_by(rank);
}
