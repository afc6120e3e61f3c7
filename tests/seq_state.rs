//! Saved sequence states through the Rust API (the C ABI's behaviour is in
//! c_examples/tests/test_state.c): a forked sequence's state names its tokens after the
//! shared block was copied on write.

mod common;

use std::sync::Arc;

use common::{SMOLLM2, model_path};
use rocmforge::context::{Batch, Context, ContextParams};
use rocmforge::model::Model;
use rocmforge::seq_state::{StateShape, decode};

fn saved_tokens(model: &Arc<Model>, ctx: &mut Context, seq: i32) -> Vec<i32> {
    let mut blob = Vec::new();
    ctx.state_seq_save(seq, &mut blob).unwrap();
    decode(&StateShape::of(model, ctx.params().kv_type), &blob)
        .unwrap()
        .tokens
}

#[test]
fn a_state_saved_after_copy_on_write_holds_the_copied_tokens() {
    let model = Arc::new(Model::open(&model_path(SMOLLM2)).unwrap());
    let params = ContextParams {
        n_ctx: 256,
        n_seq_max: 2,
        n_threads: 2,
        ..ContextParams::default()
    };
    let mut ctx = Context::new(model.clone(), &params).unwrap();
    let prompt = [504, 1296, 3003, 4683, 359, 2634, 30, 3546, 3615, 359];
    ctx.decode(&Batch {
        tokens: &prompt,
        ..Batch::default()
    })
    .unwrap();
    // Sequence 1 shares sequence 0's block; its next token copies the block first.
    ctx.seq_copy(0, 1, -1, -1).unwrap();
    ctx.decode(&Batch {
        tokens: &[42],
        seq_ids: Some(&[1]),
        ..Batch::default()
    })
    .unwrap();
    let mut expected = prompt.to_vec();
    expected.push(42);
    assert_eq!(saved_tokens(&model, &mut ctx, 1), expected);
    assert_eq!(saved_tokens(&model, &mut ctx, 0), prompt);
}
