//! Greedy sampling on a GPU reads the argmax the device computed beside the logits: the
//! token is the one the sampler picks from the logits themselves, and the logits never
//! leave the device. Other samplers still get the logits, and the embeddings (the output
//! norm's rows) come back when asked.

mod common;
mod gpu_common;

use common::tiny_model::backends::{first_gpu, tiny_context};
use gpu_common::gpu;
use rocmforge::context::{Batch, Context, ContextParams, WantLogits};
use rocmforge::model::Placement;
use rocmforge::sampler::{Sampler, SamplerParams};

const PROMPT: [i32; 9] = [3, 141, 59, 26, 53, 58, 97, 93, 23];

/// The contexts these tests use: 128 slots, one thread.
fn small_context() -> ContextParams {
    ContextParams {
        n_ctx: 128,
        n_threads: 1,
        ..ContextParams::default()
    }
}

/// A context on the first usable GPU for tiny model `variant`.
fn gpu_context(variant: usize) -> Context {
    tiny_context(variant, first_gpu(), &small_context())
}

#[test]
#[ignore = "needs a GPU: run with --include-ignored on a GPU machine"]
fn greedy_tokens_are_the_argmax_of_every_output_row() {
    let _device = gpu();
    // F16, Q4_0 and Q6_K weights: the float, the integer and the 256-block heads.
    for variant in [1, 3, 14] {
        let mut ctx = gpu_context(variant);
        let flags = [1u8, 0, 1, 1, 0, 0, 1, 0, 1];
        ctx.decode(&Batch {
            tokens: &PROMPT,
            want_logits: WantLogits::Flags(&flags),
            ..Batch::default()
        })
        .unwrap();
        let n_outputs = flags.iter().filter(|&&f| f == 1).count() as i32;
        let tokens: Vec<u32> = (0..n_outputs)
            .map(|i| ctx.sample(&mut Sampler::greedy(), i).unwrap())
            .collect();
        for (i, &token) in tokens.iter().enumerate() {
            let from_logits = Sampler::greedy()
                .sample(ctx.logits(i as i32).unwrap())
                .unwrap();
            assert_eq!(
                token, from_logits,
                "variant {variant}, output {i}: the device's argmax is not the sampler's"
            );
        }
    }
}

#[test]
#[ignore = "needs a GPU: run with --include-ignored on a GPU machine"]
fn greedy_generation_leaves_the_logits_on_the_device() {
    let _device = gpu();
    let mut ctx = gpu_context(3);
    let n_vocab = ctx.model().config().n_vocab as u64;
    let mut sampler = Sampler::greedy();
    ctx.decode(&Batch {
        tokens: &PROMPT,
        ..Batch::default()
    })
    .unwrap();
    let host_bytes = ctx.memory().host_bytes;
    let mut generated = Vec::new();
    for _ in 0..16 {
        let token = ctx.sample(&mut sampler, -1).unwrap();
        generated.push(token);
        ctx.decode(&Batch {
            tokens: &[token as i32],
            ..Batch::default()
        })
        .unwrap();
    }
    assert_eq!(
        ctx.memory().host_bytes,
        host_bytes,
        "greedy steps copied the logits to the host"
    );
    ctx.logits(-1).unwrap();
    assert!(
        ctx.memory().host_bytes >= host_bytes + 4 * n_vocab,
        "asking for the logits copies a row"
    );

    // The same steps taken with the logits in hand give the same tokens.
    let mut again = gpu_context(3);
    again
        .decode(&Batch {
            tokens: &PROMPT,
            ..Batch::default()
        })
        .unwrap();
    let mut sampler = Sampler::greedy();
    for (step, &expected) in generated.iter().enumerate() {
        let token = sampler.sample(again.logits(-1).unwrap()).unwrap();
        assert_eq!(token, expected, "step {step}");
        again
            .decode(&Batch {
                tokens: &[token as i32],
                ..Batch::default()
            })
            .unwrap();
    }
}

#[test]
#[ignore = "needs a GPU: run with --include-ignored on a GPU machine"]
fn samplers_that_draw_read_the_logits() {
    let _device = gpu();
    let mut ctx = gpu_context(3);
    ctx.decode(&Batch {
        tokens: &PROMPT,
        ..Batch::default()
    })
    .unwrap();
    let params = SamplerParams {
        temperature: 1.5,
        seed: 7,
        ..SamplerParams::default()
    };
    let mut through_context = Sampler::new(params).unwrap();
    let mut direct = Sampler::new(params).unwrap();
    for _ in 0..20 {
        let token = ctx.sample(&mut through_context, -1).unwrap();
        assert_eq!(token, direct.sample(ctx.logits(-1).unwrap()).unwrap());
    }
    let mut penalized = Sampler::new(SamplerParams {
        repeat_penalty: 1e6,
        ..SamplerParams::greedy()
    })
    .unwrap();
    let first = ctx.sample(&mut penalized, -1).unwrap();
    let second = ctx.sample(&mut penalized, -1).unwrap();
    assert_ne!(
        first, second,
        "a penalized greedy sampler reads the logits, not the device's argmax"
    );
}

/// The embeddings a GPU step leaves beside its logits (the output norm's rows) are the
/// CPU's, within the two backends' rounding: every pooling, F16 and Q4_0 weights.
#[test]
#[ignore = "needs a GPU: run with --include-ignored on a GPU machine"]
fn embeddings_come_back_from_the_device() {
    use rocmforge::context::Pooling;
    let _device = gpu();
    for variant in [1, 3] {
        let mut gpu_ctx = gpu_context(variant);
        let mut cpu_ctx = tiny_context(variant, Placement::cpu(), &small_context());
        let batch = Batch {
            tokens: &PROMPT,
            want_logits: WantLogits::All,
            ..Batch::default()
        };
        gpu_ctx.decode(&batch).unwrap();
        cpu_ctx.decode(&batch).unwrap();
        let (mut on_gpu, mut on_cpu) = (Vec::new(), Vec::new());
        for pooling in [Pooling::Mean, Pooling::Cls, Pooling::Last] {
            gpu_ctx.embeddings(0, pooling, true, &mut on_gpu).unwrap();
            cpu_ctx.embeddings(0, pooling, true, &mut on_cpu).unwrap();
            let cosine: f32 = on_gpu.iter().zip(&on_cpu).map(|(a, b)| a * b).sum();
            assert!(
                cosine > 0.999,
                "variant {variant}, {pooling:?}: cosine {cosine}"
            );
        }
    }
}
