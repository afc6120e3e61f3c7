//! Decode steps on a GPU run as one graph launch: a context's first decode step (one
//! token that wants its logits) is recorded into a graph and every later one replays it,
//! with only the step's inputs in device memory changing. Held to the same steps run
//! kernel by kernel (graphs turned off): the logits of every step equal bit for bit, over
//! every tiny model, two sequences on scattered KV blocks taking turns, block boundaries
//! crossed and prefill steps in between. A cancel before a replay stops the step and the
//! next one runs as if it had not been asked for.
//!
//! The steps are driven through the model and backend state directly (as a context
//! does), so a test can turn graphs off for its own state and read how its steps ran.

mod common;
mod gpu_common;

use common::tiny_model::backends::first_gpu;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use common::tiny_model::variants::{Variant, variants};
use common::tiny_model::vocabulary::N_TOKENS;
use rocmforge::backend::gpu::GraphStats;
use rocmforge::backend::{BackendState, ContextSizes, KvType, Step};
use rocmforge::error::Error;
use rocmforge::gguf::OwnedGguf;
use rocmforge::model::Model;

const BLOCK_SIZE: usize = 16;
/// Each sequence's KV blocks, scattered over the cache and in different orders, so a
/// replay that read a stale block table or the other sequence's would attend elsewhere.
const BLOCKS: [[u32; 4]; 2] = [[0, 5, 2, 7], [6, 1, 4, 3]];
const N_SLOTS: usize = 8 * BLOCK_SIZE;
const N_BATCH: usize = 8;

/// A model on the first usable GPU.
fn model_on_gpu(variant: &Variant) -> Arc<Model> {
    gpu_common::gpu();
    let placement = first_gpu();
    let gguf = OwnedGguf::from_buffer(variant.gguf()).expect("the tiny model parses");
    Arc::new(Model::from_gguf_on(gguf, placement).expect("the tiny model loads on the GPU"))
}

/// One context's GPU state, fed steps of two sequences as a context builds them.
struct Session {
    model: Arc<Model>,
    backend: BackendState,
    step: Step,
    /// Positions each sequence holds.
    len: [usize; 2],
    cancel: AtomicBool,
}

impl Session {
    fn new(model: &Arc<Model>, graphs: bool) -> Session {
        let mut backend = model
            .new_backend(
                &ContextSizes {
                    n_slots: N_SLOTS,
                    block_size: BLOCK_SIZE,
                    n_seq: BLOCKS.len(),
                    n_batch: N_BATCH,
                    kv_type: KvType::F16,
                    window: None,
                },
                1,
            )
            .expect("GPU state for a tiny model");
        gpu_state(&mut backend).set_graphs(graphs);
        Session {
            model: Arc::clone(model),
            backend,
            step: Step::new(N_BATCH, BLOCKS.len(), N_SLOTS, BLOCK_SIZE, None).unwrap(),
            len: [0; 2],
            cancel: AtomicBool::new(false),
        }
    }

    /// Appends `tokens` to sequence `seq` in one step; the logits of the last one.
    fn run(&mut self, seq: usize, tokens: &[i32]) -> Result<Vec<f32>, Error> {
        let (n, start) = (tokens.len(), self.len[seq]);
        let step = &mut self.step;
        step.n_tokens = n;
        step.tokens[..n].copy_from_slice(tokens);
        for t in 0..n {
            let pos = start + t;
            step.positions[t] = pos as i32;
            step.full.write_slots[t] =
                BLOCKS[seq][pos / BLOCK_SIZE] * BLOCK_SIZE as u32 + (pos % BLOCK_SIZE) as u32;
            step.seq_of_token[t] = seq as u32;
        }
        let held: Vec<i32> = (0..(start + n) as i32).collect();
        step.full
            .set_sequence(seq, BLOCKS[seq].iter().copied(), &held);
        step.output_tokens[0] = n as u32 - 1;
        step.n_outputs = 1;
        step.full.block_copies.clear();
        self.backend.begin_step(&self.step)?;
        self.model.forward(&mut self.backend, &self.cancel)?;
        self.len[seq] += n;
        Ok(self.backend.logits()?.to_vec())
    }

    fn stats(&mut self) -> GraphStats {
        gpu_state(&mut self.backend).graph_stats()
    }
}

fn gpu_state(backend: &mut BackendState) -> &mut rocmforge::backend::gpu::GpuParts {
    match backend {
        BackendState::Gpu(gpu) => gpu,
        BackendState::Cpu(_) => panic!("the model is on the GPU, its state is on the CPU"),
    }
}

/// A step of the scenario: a sequence and the tokens it appends.
type ScenarioStep = (usize, Vec<i32>);

/// Prompts of 5 and 3 tokens, then 30 decode steps taking turns between the sequences
/// (each crosses a block boundary), with a 2-token step of sequence 0 after the tenth.
fn scenario() -> Vec<ScenarioStep> {
    let token = |i: usize| ((i * 37 + 11) as u64 % N_TOKENS) as i32;
    let mut steps = vec![
        (0, (0..5).map(token).collect()),
        (1, (5..8).map(token).collect()),
    ];
    for i in 0..30 {
        steps.push((i % 2, vec![token(100 + i)]));
        if i == 10 {
            steps.push((0, vec![token(200), token(201)]));
        }
    }
    steps
}

const N_DECODE_STEPS: u64 = 30;
const N_OTHER_STEPS: u64 = 3;

fn run_scenario(session: &mut Session, steps: &[ScenarioStep]) -> Vec<Vec<f32>> {
    steps
        .iter()
        .map(|(seq, tokens)| session.run(*seq, tokens).expect("the step runs"))
        .collect()
}

fn bits(logits: &[f32]) -> Vec<u32> {
    logits.iter().map(|l| l.to_bits()).collect()
}

#[test]
#[ignore = "needs a GPU: run with --include-ignored on a GPU machine"]
fn replayed_decode_steps_equal_kernel_by_kernel_ones_bit_for_bit() {
    let steps = scenario();
    for variant in variants() {
        let model = model_on_gpu(&variant);
        let mut graphs = Session::new(&model, true);
        let mut eager = Session::new(&model, false);
        let replayed = run_scenario(&mut graphs, &steps);
        let expected = run_scenario(&mut eager, &steps);

        for (i, (r, e)) in replayed.iter().zip(&expected).enumerate() {
            assert!(
                e.iter().all(|l| l.is_finite()),
                "{}: step {i}",
                variant.name
            );
            assert!(
                bits(r) == bits(e),
                "{}: step {i} ({:?}) differs with graphs: {:?} vs {:?}",
                variant.name,
                steps[i],
                &r[..4],
                &e[..4]
            );
        }
        let stats = graphs.stats();
        assert_eq!(
            (stats.captured, stats.launched, stats.eager, stats.off),
            (1, N_DECODE_STEPS, N_OTHER_STEPS, None),
            "{}: one capture, every decode step a launch",
            variant.name
        );
        let stats = eager.stats();
        assert_eq!(
            (stats.captured, stats.launched, stats.eager),
            (0, 0, N_DECODE_STEPS + N_OTHER_STEPS),
            "{}: graphs off",
            variant.name
        );
        assert!(stats.off.is_some());
        // Each step's logits are its own: a replay that ignored its inputs could not match.
        for (i, pair) in expected.windows(2).enumerate() {
            assert!(bits(&pair[0]) != bits(&pair[1]), "steps {i} and {}", i + 1);
        }
        eprintln!("{}: {} steps equal bit for bit", variant.name, steps.len());
    }
}

#[test]
#[ignore = "needs a GPU: run with --include-ignored on a GPU machine"]
fn a_cancel_before_a_decode_step_stops_it_and_the_next_runs_as_if_never_asked() {
    let model = model_on_gpu(&variants()[3]);
    let steps = scenario();
    let mut eager = Session::new(&model, false);
    let expected = run_scenario(&mut eager, &steps[..8]);

    let mut graphs = Session::new(&model, true);
    let mut actual = run_scenario(&mut graphs, &steps[..2]);
    // Before the capture, then before a replay: each step fails as cancelled and leaves
    // nothing behind, and runs once the flag is cleared.
    for (i, (seq, tokens)) in steps.iter().enumerate().take(8).skip(2) {
        if i == 2 || i == 5 {
            let before = graphs.stats();
            graphs.cancel.store(true, Ordering::Relaxed);
            assert!(matches!(graphs.run(*seq, tokens), Err(Error::Cancelled)));
            assert_eq!(
                graphs.stats(),
                before,
                "step {i}: a cancelled step runs nothing"
            );
            graphs.cancel.store(false, Ordering::Relaxed);
        }
        actual.push(graphs.run(*seq, tokens).expect("the step runs"));
    }
    let stats = graphs.stats();
    assert_eq!((stats.captured, stats.launched), (1, 6));
    for (i, (a, e)) in actual.iter().zip(&expected).enumerate() {
        assert!(bits(a) == bits(e), "step {i} differs after the cancels");
    }
}

#[test]
#[ignore = "needs a GPU: run with --include-ignored on a GPU machine"]
fn a_gpu_state_runs_only_the_model_it_was_made_for() {
    let variant = &variants()[3];
    let (made_for, other) = (model_on_gpu(variant), model_on_gpu(variant));
    let mut session = Session::new(&made_for, true);
    session.model = other;
    let refused = session.run(0, &[1, 2, 3]);
    assert!(
        matches!(&refused, Err(Error::InvalidArgument(m)) if m.contains("made for")),
        "{refused:?}"
    );
}
