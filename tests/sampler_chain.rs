//! The sampler end to end: greedy, seeded determinism, the draw's distribution, the
//! penalties on a hand-made example, NaN logits and parameter checks.

use rocmforge::Error;
use rocmforge::sampler::{Sampler, SamplerParams};

/// Every stage off: the draw is softmax(logits / temperature) over the whole vocabulary.
fn plain(temperature: f32, seed: u64) -> SamplerParams {
    SamplerParams {
        temperature,
        top_k: 0,
        top_p: 1.0,
        min_p: 0.0,
        repeat_penalty: 1.0,
        repeat_last_n: 64,
        frequency_penalty: 0.0,
        presence_penalty: 0.0,
        seed,
    }
}

fn sampler(params: SamplerParams) -> Sampler {
    Sampler::new(params).expect("valid parameters")
}

/// A deterministic pseudo-random logits row (a small LCG, so rows differ per `step`).
fn logits_row(n_vocab: usize, step: u64) -> Vec<f32> {
    let mut state = step
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    (0..n_vocab)
        .map(|_| {
            state = state
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            ((state >> 40) as f32 / (1u64 << 24) as f32) * 8.0 - 4.0
        })
        .collect()
}

fn softmax(logits: &[f32], temperature: f64) -> Vec<f64> {
    let max = logits
        .iter()
        .map(|&l| f64::from(l))
        .fold(f64::NEG_INFINITY, f64::max);
    let weights: Vec<f64> = logits
        .iter()
        .map(|&l| ((f64::from(l) - max) / temperature).exp())
        .collect();
    let total: f64 = weights.iter().sum();
    weights.iter().map(|w| w / total).collect()
}

/// Pearson's chi-square statistic of `counts` against the probabilities `expected`.
fn chi_square(counts: &[u64], expected: &[f64]) -> f64 {
    let n: u64 = counts.iter().sum();
    counts
        .iter()
        .zip(expected)
        .map(|(&observed, &p)| {
            let e = p * n as f64;
            (observed as f64 - e).powi(2) / e
        })
        .sum()
}

#[test]
fn greedy_picks_the_argmax_lowest_id_on_ties() {
    let mut greedy = Sampler::greedy();
    assert!(greedy.is_plain_argmax(), "a backend may supply its argmax");
    for step in 0..20 {
        let logits = logits_row(1000, step);
        let argmax = (0..logits.len())
            .max_by(|&a, &b| logits[a].total_cmp(&logits[b]).then(b.cmp(&a)))
            .expect("non-empty");
        assert_eq!(greedy.sample(&logits).expect("valid") as usize, argmax);
    }
    assert_eq!(greedy.sample(&[1.0, 3.0, 0.0, 3.0]).expect("valid"), 1);
    let mut negative = sampler(SamplerParams {
        temperature: -1.0,
        ..plain(0.0, 0)
    });
    assert_eq!(negative.sample(&[-5.0, -2.0, -2.0]).expect("valid"), 1);
}

#[test]
fn same_seed_and_logits_give_the_same_tokens() {
    let run = |seed: u64| {
        let mut s = sampler(SamplerParams {
            seed,
            repeat_penalty: 1.1,
            ..SamplerParams::default()
        });
        (0..200)
            .map(|step| s.sample(&logits_row(5000, step)).expect("valid"))
            .collect::<Vec<u32>>()
    };
    let first = run(42);
    assert_eq!(first, run(42));
    assert_ne!(first, run(43), "another seed draws other tokens");

    let mut s = sampler(plain(1.0, 9));
    let before_reset: Vec<u32> = (0..50)
        .map(|step| s.sample(&logits_row(100, step)).expect("valid"))
        .collect();
    s.reset();
    let after_reset: Vec<u32> = (0..50)
        .map(|step| s.sample(&logits_row(100, step)).expect("valid"))
        .collect();
    assert_eq!(before_reset, after_reset, "reset replays the seed");
}

#[test]
fn draws_follow_softmax_of_logits_over_temperature() {
    // chi-square with 5 degrees of freedom exceeds 20.5 with probability 0.001.
    let logits = [1.0, 0.5, 0.0, -0.5, -1.0, 2.0];
    for (temperature, seed) in [(0.7, 1), (1.0, 2), (1.8, 3)] {
        let mut s = sampler(plain(temperature, seed));
        let mut counts = [0u64; 6];
        for _ in 0..200_000 {
            counts[s.sample(&logits).expect("valid") as usize] += 1;
        }
        let expected = softmax(&logits, f64::from(temperature));
        let statistic = chi_square(&counts, &expected);
        assert!(
            statistic < 20.5,
            "T={temperature}: chi-square {statistic}, counts {counts:?}, expected {expected:?}"
        );
    }
}

#[test]
fn draws_after_top_k_follow_the_renormalized_softmax() {
    let logits = [0.3, 2.0, -1.0, 1.5, 1.0, 0.0];
    let mut s = sampler(SamplerParams {
        top_k: 3,
        ..plain(1.3, 5)
    });
    let mut counts = [0u64; 6];
    for _ in 0..100_000 {
        counts[s.sample(&logits).expect("valid") as usize] += 1;
    }
    assert_eq!(counts[0] + counts[2] + counts[5], 0, "outside the top 3");
    let kept = [logits[1], logits[3], logits[4]];
    let statistic = chi_square(&[counts[1], counts[3], counts[4]], &softmax(&kept, 1.3));
    // Two degrees of freedom: 13.8 at probability 0.001.
    assert!(
        statistic < 13.8,
        "chi-square {statistic}, counts {counts:?}"
    );
}

#[test]
fn penalties_on_a_hand_made_example() {
    let mut s = sampler(SamplerParams {
        repeat_penalty: 2.0,
        frequency_penalty: 0.1,
        presence_penalty: 0.3,
        ..plain(1.0, 0)
    });
    for token in [0, 1, 0, 7] {
        s.accept(token);
    }
    // Token 0 (twice, positive): 2.0 / 2 - 2 * 0.1 - 0.3 = 0.5.
    // Token 1 (once, negative): -1.0 * 2 - 0.1 - 0.3 = -2.4.
    // Token 7 is outside this 4-token vocabulary and ignored; tokens 2 and 3 are untouched.
    let logits = [2.0, -1.0, 0.5, 3.0];
    let expected = [0.5, -2.4, 0.5, 3.0];
    let candidates = s.candidates(&logits).expect("valid");
    assert_eq!(candidates.len(), 4);
    for c in candidates {
        let want = expected[c.id as usize] - 3.0;
        assert!(
            (c.logit - want).abs() < 1e-6,
            "token {}: {} vs {want}",
            c.id,
            c.logit
        );
    }
}

#[test]
fn penalties_look_only_at_the_last_n_tokens() {
    let mut s = sampler(SamplerParams {
        repeat_penalty: 4.0,
        repeat_last_n: 2,
        ..plain(0.0, 0)
    });
    for token in [0, 1, 2] {
        s.accept(token);
    }
    // Only tokens 1 and 2 are penalized: token 0 wins.
    assert_eq!(s.sample(&[1.0, 2.0, 2.0]).expect("valid"), 0);

    let mut off = sampler(SamplerParams {
        repeat_penalty: 4.0,
        repeat_last_n: 0,
        ..plain(0.0, 0)
    });
    off.accept(1);
    assert_eq!(off.sample(&[1.0, 2.0]).expect("valid"), 1);
}

#[test]
fn sampled_tokens_enter_the_history() {
    let mut s = sampler(SamplerParams {
        repeat_penalty: 2.0,
        ..plain(0.0, 0)
    });
    let logits = [1.0, 0.9, 0.2];
    // 1.0 → penalized to 0.5, so 0.9 wins next; then 0.5 against 0.45.
    let tokens: Vec<u32> = (0..3).map(|_| s.sample(&logits).expect("valid")).collect();
    assert_eq!(tokens, [0, 1, 0]);
    s.reset();
    assert_eq!(
        s.sample(&logits).expect("valid"),
        0,
        "reset clears the history"
    );
}

#[test]
fn nan_logits_are_never_drawn_and_never_panic() {
    let nan = f32::NAN;
    let logits = [nan, 1.0, nan, 0.5, nan];
    let mut s = sampler(SamplerParams {
        top_p: 0.99,
        min_p: 0.01,
        ..plain(1.0, 3)
    });
    for _ in 0..2000 {
        let token = s.sample(&logits).expect("valid");
        assert!(token == 1 || token == 3, "drew NaN token {token}");
    }
    let mut greedy = sampler(plain(0.0, 0));
    assert_eq!(greedy.sample(&logits).expect("valid"), 1);

    // Nothing finite to weigh: the draw falls back to the lowest id among the best.
    let mut s = sampler(SamplerParams::default());
    assert_eq!(s.sample(&[nan, nan, nan]).expect("valid"), 0);
    assert_eq!(s.sample(&[f32::NEG_INFINITY; 3]).expect("valid"), 0);
    assert_eq!(
        s.sample(&[0.0, f32::INFINITY, nan, f32::INFINITY])
            .expect("valid"),
        1
    );
    assert_eq!(s.sample(&[f32::MAX, -f32::MAX]).expect("valid"), 0);
}

#[test]
fn rejects_unusable_parameters_and_inputs() {
    let bad = [
        SamplerParams {
            temperature: f32::NAN,
            ..SamplerParams::default()
        },
        SamplerParams {
            temperature: f32::INFINITY,
            ..SamplerParams::default()
        },
        SamplerParams {
            top_p: 1.5,
            ..SamplerParams::default()
        },
        SamplerParams {
            top_p: f32::NAN,
            ..SamplerParams::default()
        },
        SamplerParams {
            min_p: -0.1,
            ..SamplerParams::default()
        },
        SamplerParams {
            repeat_penalty: 0.0,
            ..SamplerParams::default()
        },
        SamplerParams {
            frequency_penalty: f32::NAN,
            ..SamplerParams::default()
        },
    ];
    for params in bad {
        assert!(
            matches!(Sampler::new(params), Err(Error::InvalidArgument(_))),
            "{params:?}"
        );
    }
    let mut s = sampler(SamplerParams::default());
    assert!(matches!(s.sample(&[]), Err(Error::InvalidArgument(_))));
}

#[test]
fn full_vocabulary_with_default_settings() {
    // A 262,144-token vocabulary (Gemma 3's) through every stage.
    let logits = logits_row(262_144, 1);
    let mut s = sampler(SamplerParams::default());
    for _ in 0..20 {
        let token = s.sample(&logits).expect("valid") as usize;
        assert!(token < logits.len());
    }
    let mut nucleus = sampler(SamplerParams {
        top_p: 0.9,
        ..plain(1.0, 1)
    });
    let kept = nucleus.candidates(&logits).expect("valid").len();
    assert!(
        kept > 1000,
        "a flat distribution keeps many tokens, got {kept}"
    );
}

/// The index of the largest value, the lowest among equals.
fn plain_argmax(row: &[f32]) -> u32 {
    let best = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    row.iter().position(|&v| v == best).unwrap_or(0) as u32
}

#[test]
fn plain_argmax_is_claimed_exactly_when_every_draw_is_the_argmax() {
    let greedy = plain(0.0, 1);
    let cases = [
        (greedy, true),
        (SamplerParams { top_k: 3, ..greedy }, true),
        (SamplerParams::default(), false),
        (plain(0.5, 1), false),
        (
            SamplerParams {
                repeat_penalty: 4.0,
                ..greedy
            },
            false,
        ),
        (
            SamplerParams {
                frequency_penalty: 9.0,
                ..greedy
            },
            false,
        ),
        (
            SamplerParams {
                presence_penalty: 9.0,
                ..greedy
            },
            false,
        ),
        (
            SamplerParams {
                repeat_penalty: 4.0,
                repeat_last_n: 0,
                ..greedy
            },
            true,
        ),
    ];
    for (i, (params, claimed)) in cases.into_iter().enumerate() {
        let mut s = sampler(params);
        assert_eq!(s.is_plain_argmax(), claimed, "case {i}: {params:?}");
        // Where it is claimed, 50 draws after a history of the best tokens are the
        // argmax; where not, some draw is not.
        let mut all_argmax = true;
        for step in 0..50 {
            let row = logits_row(64, step);
            s.accept(plain_argmax(&row));
            all_argmax &= s.sample(&row).unwrap() == plain_argmax(&row);
        }
        assert_eq!(all_argmax, claimed, "case {i}: {params:?}");
    }
}
