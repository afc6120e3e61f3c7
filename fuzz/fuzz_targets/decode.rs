//! `rf_decode` with fuzzed batches (tokens, positions, sequence ids, logit flags) mixed
//! with `rf_seq_remove`, `rf_seq_copy` and `rf_context_cancel`, on a tiny two-layer model,
//! with the KV bookkeeping and the logits checked after every step (see `DecodeRun`).
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use rocmforge::ffi::rf_model;
use rocmforge_fuzz::decode_program;
use rocmforge_fuzz::decode_run::DecodeRun;
use rocmforge_fuzz::host::{abort_on_panic, leak, load_model};
use rocmforge_fuzz::models::{SMALL, mixed_types, tiny_llama};
use rocmforge_fuzz::vocabularies::byte_level;

/// The model every input decodes with, loaded once.
struct Fixture {
    model: *mut rf_model,
    n_vocab: usize,
}

// SAFETY: an `rf_model` is immutable and may be shared by any number of threads (the C
// API's promise); the fixture is never freed.
unsafe impl Sync for Fixture {}
// SAFETY: as above.
unsafe impl Send for Fixture {}

fn fixture() -> &'static Fixture {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        abort_on_panic();
        let vocab = byte_level(Some("smollm"), &[]);
        let bytes = tiny_llama(&vocab, SMALL, mixed_types(), 7, None).expect("the tiny model");
        let model = load_model(leak(bytes), false).expect("the tiny model loads");
        Fixture {
            model,
            n_vocab: vocab.n_tokens as usize,
        }
    })
}

fuzz_target!(|data: &[u8]| {
    let fixture = fixture();
    let (shape, ops) = decode_program::parse(data, fixture.n_vocab);
    // SAFETY: the fixture's model is never freed.
    let mut run = unsafe { DecodeRun::new(fixture.model, fixture.n_vocab, shape) };
    for op in &ops {
        run.run(op);
    }
});
