//! Embeddings against llama.cpp's (llama-cpp-python `embedding=True`, one model load per
//! pooling type, tests/fixtures/embeddings/smollm2.json from
//! scripts/gen-embedding-fixtures.py): mean, last-token and first-token pooling of SmolLM2's
//! final hidden states over three texts, each within cosine 0.99 of llama.cpp's.

mod common;

use std::sync::Arc;

use common::{SMOLLM2, model_path, read_json};
use rocmforge::context::{Batch, Context, ContextParams, Pooling, WantLogits};
use rocmforge::model::Model;

fn cosine(a: &[f32], b: &[f64]) -> f64 {
    let dot: f64 = a.iter().zip(b).map(|(&x, &y)| f64::from(x) * y).sum();
    let norm_a = a.iter().map(|&x| f64::from(x).powi(2)).sum::<f64>().sqrt();
    let norm_b = b.iter().map(|&y| y * y).sum::<f64>().sqrt();
    dot / (norm_a * norm_b)
}

fn context(model: &Arc<Model>) -> Context {
    let params = ContextParams {
        n_ctx: 256,
        n_threads: 2,
        ..ContextParams::default()
    };
    Context::new(model.clone(), &params).unwrap()
}

#[test]
fn pooled_embeddings_match_llama_cpp() {
    let model = Arc::new(Model::open(&model_path(SMOLLM2)).unwrap());
    let fixture = read_json("embeddings/smollm2.json");
    let mut embedding = Vec::new();
    for case in fixture["cases"].as_array().unwrap() {
        let tokens: Vec<i32> = case["tokens"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t.as_i64().unwrap() as i32)
            .collect();
        let mut ctx = context(&model);
        ctx.decode(&Batch {
            tokens: &tokens,
            want_logits: WantLogits::All,
            ..Batch::default()
        })
        .unwrap();
        for (name, pooling) in [
            ("mean", Pooling::Mean),
            ("last", Pooling::Last),
            ("cls", Pooling::Cls),
        ] {
            let expected: Vec<f64> = case[name]
                .as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_f64().unwrap())
                .collect();
            ctx.embeddings(0, pooling, false, &mut embedding).unwrap();
            let similarity = cosine(&embedding, &expected);
            println!(
                "{name:4} {:?}: cosine {similarity:.5}",
                case["text"].as_str().unwrap()
            );
            assert!(similarity >= 0.99, "{name} pooling: cosine {similarity}");
            ctx.embeddings(0, pooling, true, &mut embedding).unwrap();
            let norm = embedding
                .iter()
                .map(|&v| f64::from(v).powi(2))
                .sum::<f64>()
                .sqrt();
            assert!((norm - 1.0).abs() < 1e-5, "normalised length {norm}");
        }
        // Without pooling, the last output's row is the last-token pooling.
        let mut last = Vec::new();
        ctx.embeddings(-1, Pooling::None, false, &mut embedding)
            .unwrap();
        ctx.embeddings(0, Pooling::Last, false, &mut last).unwrap();
        assert_eq!(embedding, last);
    }
}

#[test]
fn pooling_tokens_without_outputs_is_refused() {
    let model = Arc::new(Model::open(&model_path(SMOLLM2)).unwrap());
    let mut ctx = context(&model);
    ctx.decode(&Batch {
        tokens: &[504, 1296, 3003, 4683],
        ..Batch::default()
    })
    .unwrap();
    let mut embedding = Vec::new();
    // Only the last token asked for logits: last-token pooling works, the mean does not.
    ctx.embeddings(0, Pooling::Last, false, &mut embedding)
        .unwrap();
    let error = ctx
        .embeddings(0, Pooling::Mean, false, &mut embedding)
        .unwrap_err();
    assert!(error.to_string().contains("asked for no output"), "{error}");
    assert!(
        ctx.embeddings(1, Pooling::Mean, false, &mut embedding)
            .is_err()
    );
}
