//! What a scenario drives: the library's [`Context`] on some backend, or the reference.
//! A scenario is written once against [`Engine`] and run on both.

use std::sync::Arc;

use rocmforge::context::{Batch, Context, ContextParams, WantLogits};
use rocmforge::model::Model;

pub trait Engine {
    /// Decodes `(sequence, token)` pairs as one batch, each token at the position after
    /// the last one its sequence holds; the logits of every token, in batch order.
    fn decode(&mut self, entries: &[(i32, i32)]) -> Vec<Vec<f64>>;

    /// Gives `dst` the positions `p0..p1` (`p1 < 0`: to the end) that `src` holds.
    fn seq_copy(&mut self, src: i32, dst: i32, p0: i32, p1: i32);

    /// Removes positions `p0..p1` (`p1 < 0`: to the end) of a sequence; the others keep
    /// their positions.
    fn seq_remove(&mut self, seq: i32, p0: i32, p1: i32);
}

/// Sequences a scenario may use.
pub const N_SEQUENCES: usize = 4;

/// The library through its public API.
pub struct LibraryEngine {
    context: Context,
}

impl LibraryEngine {
    pub fn new(model: Arc<Model>) -> LibraryEngine {
        let params = ContextParams {
            n_ctx: 256,
            n_seq_max: N_SEQUENCES,
            n_batch: 64,
            n_threads: 2,
            ..ContextParams::default()
        };
        let context = Context::new(model, &params).expect("a context for a tiny model");
        LibraryEngine { context }
    }
}

impl Engine for LibraryEngine {
    fn decode(&mut self, entries: &[(i32, i32)]) -> Vec<Vec<f64>> {
        let seq_ids: Vec<i32> = entries.iter().map(|&(seq, _)| seq).collect();
        let tokens: Vec<i32> = entries.iter().map(|&(_, token)| token).collect();
        self.context
            .decode(&Batch {
                tokens: &tokens,
                seq_ids: Some(&seq_ids),
                want_logits: WantLogits::All,
                ..Batch::default()
            })
            .expect("decode");
        (0..tokens.len())
            .map(|i| {
                let logits = self
                    .context
                    .logits(i as i32)
                    .expect("logits of every token");
                logits.iter().map(|&v| f64::from(v)).collect()
            })
            .collect()
    }

    fn seq_copy(&mut self, src: i32, dst: i32, p0: i32, p1: i32) {
        self.context.seq_copy(src, dst, p0, p1).expect("seq_copy");
    }

    fn seq_remove(&mut self, seq: i32, p0: i32, p1: i32) {
        self.context.seq_remove(seq, p0, p1).expect("seq_remove");
    }
}
