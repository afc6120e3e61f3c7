//! The logits row as the sampler reads it, and the candidate tokens the stages narrow
//! down, in buffers reused from call to call.

use std::cmp::Ordering;

/// A token still in the running, and its logit as the stages have left it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Candidate {
    pub id: u32,
    pub logit: f32,
}

/// The order every stage ranks candidates by: higher logit first, ties to the lower id,
/// so selections and draws never depend on how a sort breaks ties.
pub(super) fn rank(a: &Candidate, b: &Candidate) -> Ordering {
    b.logit.total_cmp(&a.logit).then(a.id.cmp(&b.id))
}

#[derive(Debug, Clone, Default)]
pub(super) struct CandidateSet {
    /// [n_vocab] each token's logit, NaN read as -inf, penalties applied.
    pub(super) scores: Vec<f32>,
    /// The candidates still in the running, gathered from `scores`.
    pub(super) items: Vec<Candidate>,
    /// Whether `items` is in `rank` order (the stages keep it so once they sort).
    pub(super) sorted: bool,
}

impl CandidateSet {
    /// Loads a logits row. NaN becomes -inf: such a token is never drawn while another has
    /// a finite logit, and NaN cannot poison the comparisons.
    ///
    /// Precondition: `logits.len()` fits in u32 (token ids are u32).
    pub fn load(&mut self, logits: &[f32]) {
        self.scores.clear();
        self.scores.extend(logits.iter().map(|&logit| {
            if logit.is_nan() {
                f32::NEG_INFINITY
            } else {
                logit
            }
        }));
        self.items.clear();
        self.sorted = false;
    }

    /// The scores by token id, for the penalties.
    pub fn scores_mut(&mut self) -> &mut [f32] {
        &mut self.scores
    }

    /// The highest score; -inf when there is none.
    pub fn best_score(&self) -> f32 {
        self.scores
            .iter()
            .copied()
            .fold(f32::NEG_INFINITY, f32::max)
    }

    /// Every token becomes a candidate, in id order.
    pub fn gather_all(&mut self) {
        self.items.clear();
        self.items.extend(
            self.scores
                .iter()
                .enumerate()
                .map(|(id, &logit)| Candidate {
                    id: id as u32,
                    logit,
                }),
        );
        self.sorted = false;
    }

    /// The best token alone (greedy), with logit 0 relative to itself: the lowest id among
    /// the highest scores.
    pub fn gather_only_best(&mut self) {
        let best_score = self.best_score();
        // Scanning chunks with a branch-free test (which vectorizes) and searching only the
        // chunk that holds the best is ten times faster than `position` over the whole row.
        const CHUNK: usize = 64;
        let best_id = self
            .scores
            .chunks(CHUNK)
            .enumerate()
            .find(|(_, chunk)| {
                chunk
                    .iter()
                    .fold(false, |found, &s| found | (s == best_score))
            })
            .and_then(|(index, chunk)| {
                let offset = chunk.iter().position(|&s| s == best_score)?;
                Some(index * CHUNK + offset)
            });
        self.items.clear();
        self.items.extend(best_id.map(|id| Candidate {
            id: id as u32,
            logit: 0.0,
        }));
        self.sorted = true;
    }

    pub fn items(&self) -> &[Candidate] {
        &self.items
    }

    /// The highest logit among the candidates; -inf when there are none.
    pub fn max_logit(&self) -> f32 {
        match (self.sorted, self.items.first()) {
            (true, Some(best)) => best.logit,
            _ => self
                .items
                .iter()
                .fold(f32::NEG_INFINITY, |max, c| max.max(c.logit)),
        }
    }

    /// Makes the logits relative to the best (which becomes 0) and divides them by
    /// `temperature` (> 0): the draw's distribution is then the softmax of the logits as
    /// they stand, and no value can overflow.
    ///
    /// Precondition: the highest logit is finite.
    pub fn apply_temperature(&mut self, temperature: f32) {
        let max = self.max_logit();
        for candidate in &mut self.items {
            candidate.logit = (candidate.logit - max) / temperature;
        }
    }
}
