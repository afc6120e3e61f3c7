//! Top-k, top-p and min-p keep exactly the tokens a float64 oracle keeps, on hand-made
//! logits and on random ones (including vocabularies large enough for top-p's sorting to
//! grow past its first prefix).

use std::collections::BTreeSet;

use proptest::prelude::*;
use rocmforge::sampler::{Sampler, SamplerParams};

/// Stages as the oracle sees them.
#[derive(Debug, Clone, Copy)]
struct Stages {
    top_k: u32,
    top_p: f64,
    min_p: f64,
}

/// The tokens llama.cpp's chain keeps, in float64: rank by logit (ties to the lower id);
/// top-k; top-p over the softmax of what is left: the shortest prefix whose mass reaches
/// p; min-p: probability at least `min_p` times the best's.
fn oracle(logits: &[f32], stages: Stages) -> BTreeSet<u32> {
    let mut ranked: Vec<(u32, f64)> = logits
        .iter()
        .enumerate()
        .map(|(id, &l)| (id as u32, f64::from(l)))
        .collect();
    ranked.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
    if stages.top_k > 0 {
        ranked.truncate(stages.top_k as usize);
    }
    let probabilities = softmax(&ranked);
    let mut cumulative = 0.0;
    let mut n_nucleus = ranked.len();
    for (index, p) in probabilities.iter().enumerate() {
        cumulative += p;
        if cumulative >= stages.top_p {
            n_nucleus = index + 1;
            break;
        }
    }
    ranked.truncate(n_nucleus);
    let best = ranked[0].1;
    ranked
        .iter()
        .filter(|&&(_, l)| (l - best).exp() >= stages.min_p)
        .map(|&(id, _)| id)
        .collect()
}

fn softmax(ranked: &[(u32, f64)]) -> Vec<f64> {
    let best = ranked[0].1;
    let weights: Vec<f64> = ranked.iter().map(|&(_, l)| (l - best).exp()).collect();
    let total: f64 = weights.iter().sum();
    weights.iter().map(|w| w / total).collect()
}

/// Whether a float32 computation could land on the other side of a top-p or min-p
/// threshold than the float64 oracle.
fn near_a_threshold(logits: &[f32], stages: Stages) -> bool {
    const MARGIN: f64 = 1e-4;
    let mut ranked: Vec<(u32, f64)> = logits
        .iter()
        .enumerate()
        .map(|(id, &l)| (id as u32, f64::from(l)))
        .collect();
    ranked.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
    if stages.top_k > 0 {
        ranked.truncate(stages.top_k as usize);
    }
    let mut cumulative = 0.0;
    for p in softmax(&ranked) {
        cumulative += p;
        if (cumulative - stages.top_p).abs() < MARGIN {
            return true;
        }
    }
    let best = ranked[0].1;
    ranked
        .iter()
        .any(|&(_, l)| ((l - best).exp() - stages.min_p).abs() < MARGIN)
}

fn kept_by_sampler(logits: &[f32], stages: Stages) -> BTreeSet<u32> {
    let mut sampler = Sampler::new(SamplerParams {
        temperature: 1.0,
        top_k: stages.top_k,
        top_p: stages.top_p as f32,
        min_p: stages.min_p as f32,
        repeat_penalty: 1.0,
        repeat_last_n: 0,
        frequency_penalty: 0.0,
        presence_penalty: 0.0,
        seed: 0,
    })
    .expect("valid parameters");
    let candidates = sampler.candidates(logits).expect("valid logits");
    candidates.iter().map(|c| c.id).collect()
}

fn ids(list: &[u32]) -> BTreeSet<u32> {
    list.iter().copied().collect()
}

const LOGITS: [f32; 8] = [3.0, 1.0, 2.0, 0.0, 2.5, -1.0, 1.5, 0.5];

fn only(top_k: u32, top_p: f64, min_p: f64) -> Stages {
    Stages {
        top_k,
        top_p,
        min_p,
    }
}

#[test]
fn top_k_keeps_the_k_highest() {
    assert_eq!(kept_by_sampler(&LOGITS, only(3, 1.0, 0.0)), ids(&[0, 4, 2]));
    assert_eq!(kept_by_sampler(&LOGITS, only(1, 1.0, 0.0)), ids(&[0]));
    assert_eq!(kept_by_sampler(&LOGITS, only(100, 1.0, 0.0)).len(), 8);
    // Ties at the cut go to the lower id.
    assert_eq!(
        kept_by_sampler(&[1.0, 2.0, 1.0, 1.0], only(2, 1.0, 0.0)),
        ids(&[1, 0])
    );
}

#[test]
fn top_p_keeps_the_smallest_set_reaching_p() {
    // Softmax of LOGITS in rank order (ids 0, 4, 2, 6, ...): 0.403, 0.244, 0.148, 0.090,
    // ...; cumulative 0.403, 0.647, 0.795, 0.885.
    for (p, want) in [
        (0.3, &[0][..]),
        (0.5, &[0, 4]),
        (0.64, &[0, 4]),
        (0.65, &[0, 4, 2]),
        (0.7, &[0, 4, 2]),
        (0.85, &[0, 4, 2, 6]),
        (0.0, &[0]),
    ] {
        let stages = only(0, p, 0.0);
        assert_eq!(kept_by_sampler(&LOGITS, stages), ids(want), "p = {p}");
        assert_eq!(oracle(&LOGITS, stages), ids(want), "oracle, p = {p}");
    }
}

#[test]
fn min_p_is_relative_to_the_most_likely() {
    // Probability ratios to the best: exp(logit - 3).
    for (min_p, want) in [
        (0.5, &[0, 4][..]),
        (0.3, &[0, 4, 2]),
        (0.2, &[0, 4, 2, 6]),
        (1.0, &[0]),
    ] {
        let stages = only(0, 1.0, min_p);
        assert_eq!(
            kept_by_sampler(&LOGITS, stages),
            ids(want),
            "min_p = {min_p}"
        );
        assert_eq!(
            oracle(&LOGITS, stages),
            ids(want),
            "oracle, min_p = {min_p}"
        );
    }
}

#[test]
fn stages_compose_in_llama_cpp_order() {
    // top-k 4 renormalizes over {0, 4, 2, 6} (0.455, 0.276, 0.167, 0.102), so top-p 0.7
    // then keeps {0, 4} (over the whole vocabulary it would keep three); min-p 0.7
    // keeps only {0}.
    let stages = only(4, 0.7, 0.0);
    assert_eq!(kept_by_sampler(&LOGITS, stages), oracle(&LOGITS, stages));
    assert_eq!(kept_by_sampler(&LOGITS, stages), ids(&[0, 4]));
    let stages = only(4, 0.7, 0.7);
    assert_eq!(kept_by_sampler(&LOGITS, stages), ids(&[0]));
}

#[test]
fn candidate_logits_give_the_draw_probabilities() {
    let mut sampler = Sampler::new(SamplerParams {
        temperature: 0.5,
        top_k: 3,
        top_p: 1.0,
        min_p: 0.0,
        ..SamplerParams::default()
    })
    .expect("valid parameters");
    let candidates = sampler.candidates(&LOGITS).expect("valid logits");
    let logit_of = |id: u32| candidates.iter().find(|c| c.id == id).map(|c| c.logit);
    assert_eq!(logit_of(0), Some(0.0));
    assert_eq!(logit_of(4), Some(-1.0));
    assert_eq!(logit_of(2), Some(-2.0));
}

fn random_case() -> impl Strategy<Value = (Vec<f32>, Stages)> {
    let logits = prop_oneof![
        prop::collection::vec(-8.0f32..8.0, 1..64),
        // Flat and wide: top-p must sort well past its first 256 candidates.
        prop::collection::vec(-0.5f32..0.5, 300..3000),
    ];
    let stages = (
        prop_oneof![Just(0u32), 1..50u32],
        prop_oneof![Just(1.0f64), 0.0..1.0f64],
        prop_oneof![Just(0.0f64), 0.0..1.0f64],
    )
        .prop_map(|(top_k, top_p, min_p)| Stages {
            top_k,
            top_p,
            min_p,
        });
    (logits, stages)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(400))]

    #[test]
    fn filters_match_the_float64_oracle((logits, stages) in random_case()) {
        prop_assume!(!near_a_threshold(&logits, stages));
        prop_assert_eq!(kept_by_sampler(&logits, stages), oracle(&logits, stages));
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(100))]

    /// Vocabularies several times larger than top-k's buffer, in random and in ascending
    /// order (where every token beats the k-th best so far and the buffer is cut often).
    #[test]
    fn top_k_over_a_large_vocabulary(
        mut logits in prop::collection::vec(-8.0f32..8.0, 10_000..40_000),
        ascending in any::<bool>(),
        top_k in prop_oneof![1..64u32, 64..6000u32],
    ) {
        if ascending {
            logits.sort_by(f32::total_cmp);
        }
        let stages = only(top_k, 1.0, 0.0);
        prop_assert_eq!(kept_by_sampler(&logits, stages), oracle(&logits, stages));
    }

    /// Few distinct values over a vocabulary larger than top-k's buffer: ties straddle
    /// every cut, and the lower ids must win them.
    #[test]
    fn top_k_ties_go_to_the_lower_id(
        levels in prop::collection::vec(0u8..4, 5000..9000),
        top_k in 1..300u32,
    ) {
        let logits: Vec<f32> = levels.iter().map(|&level| f32::from(level)).collect();
        let stages = only(top_k, 1.0, 0.0);
        prop_assert_eq!(kept_by_sampler(&logits, stages), oracle(&logits, stages));
    }
}
