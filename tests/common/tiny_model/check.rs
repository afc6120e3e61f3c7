//! Runs a scenario on every tiny model, on a backend and on its oracle, and compares the
//! logits of every step.

use super::backends::Backend;
use super::engine::Engine;
use super::tolerance::Tolerance;
use super::variants::variants;
use super::vocabulary;

/// The logits of one token of a scenario, and which token it was.
pub struct Step {
    pub what: String,
    pub logits: Vec<f64>,
}

/// A scenario: drives an engine with `tokens` and returns the logits of its steps.
pub type Scenario = fn(&mut dyn Engine, &[i32]) -> Vec<Step>;

/// Text the scenarios take their tokens from ([`scenario_tokens`]).
pub const TEXT: &str = "The tiny model reads the text in bytes and merges, then writes \
                    another token at every step; nothing in it was downloaded, and the \
                    numbers it holds were drawn at random from a seed.";

/// [`TEXT`] in the tiny models' tokens.
pub fn scenario_tokens() -> Vec<i32> {
    vocabulary::tokenize(TEXT)
}

/// Failing rows listed per model; the count says how many more failed.
const ROWS_LISTED: usize = 3;

/// Runs `scenario` on every tiny model on `backend` and on its oracle; fails listing
/// every model whose logits leave the tolerance, with the rows that do.
pub fn check_every_model(backend: Backend, scenario: Scenario) {
    let tokens = scenario_tokens();
    let mut failures = Vec::new();
    for variant in variants() {
        let gguf = variant.gguf();
        let (mut oracle, tolerance) = backend.oracle(&variant, &gguf);
        let expected = scenario(oracle.as_mut(), &tokens);
        let actual = scenario(&mut backend.engine(gguf), &tokens);
        let (worst, rows) = compare(&actual, &expected, tolerance);
        eprintln!(
            "{backend:?} {}: worst |Δlogit| / max |logit| {worst:.2e} (tolerance {:.0e})",
            variant.name, tolerance.relative
        );
        if !rows.is_empty() {
            let listed: Vec<&String> = rows.iter().take(ROWS_LISTED).collect();
            failures.push(format!(
                "{backend:?} {}: {} of {} steps out of tolerance, e.g.\n    {}",
                variant.name,
                rows.len(),
                expected.len(),
                listed
                    .iter()
                    .map(|s| s.as_str())
                    .collect::<Vec<_>>()
                    .join("\n    ")
            ));
        }
    }
    assert!(failures.is_empty(), "\n{}", failures.join("\n"));
}

/// The worst ratio of |Δlogit| to the row's max |logit|, and a line per row out of
/// `tolerance`.
fn compare(actual: &[Step], expected: &[Step], tolerance: Tolerance) -> (f64, Vec<String>) {
    assert_eq!(actual.len(), expected.len(), "the scenario ran differently");
    let mut worst = 0.0f64;
    let mut rows = Vec::new();
    for (a, e) in actual.iter().zip(expected) {
        assert_eq!(a.what, e.what);
        assert_eq!(a.logits.len(), e.logits.len(), "{}: logit count", a.what);
        let scale = e.logits.iter().fold(0.0f64, |m, v| m.max(v.abs()));
        let (mut max_diff, mut at) = (0.0f64, 0);
        for (i, (x, y)) in a.logits.iter().zip(&e.logits).enumerate() {
            // A NaN logit counts as the worst difference there is.
            let diff = if (x - y).is_nan() {
                f64::INFINITY
            } else {
                (x - y).abs()
            };
            if diff > max_diff {
                (max_diff, at) = (diff, i);
            }
        }
        let ratio = max_diff / scale;
        worst = worst.max(ratio);
        // False for NaN too.
        let within = ratio <= tolerance.relative;
        if !within {
            rows.push(format!(
                "{}: |Δ| {max_diff:.3e} at token {at} ({} vs {}), max |logit| {scale:.3}, ratio {ratio:.2e}",
                a.what, a.logits[at], e.logits[at]
            ));
        }
    }
    (worst, rows)
}
