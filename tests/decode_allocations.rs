//! Once a context has warmed up, a single-token decode on the CPU allocates nothing on
//! the host: not on the calling thread and not on the pool's worker threads (issue 10).
//! A global allocator counts every allocation of the process while a window is open; the
//! window covers 32 decode steps, through the C ABI (`rf_decode`) on SmolLM2 and through
//! `Context::decode` on every tiny model (each kernel family: Q8, Q8_K, float and
//! dequantized weights; several query heads per K/V head).
//!
//! The contexts run two threads and hold more than 400 cached tokens, so the matmuls and
//! the attention both go through the pool. Scratch that grows with the context takes
//! twice what the step asking for it needs, so after a prefill of P tokens the next P
//! steps fit; the warm-up steps and the window stay well inside that.
//!
//! Everything runs in one test: the counter is process-wide, and a second test running
//! beside the window would count its own allocations into it.

mod common;

use std::alloc::{GlobalAlloc, Layout, System};
use std::ptr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use common::SMOLLM2;
use common::ffi::{last_error, load_model};
use common::tiny_model::variants::variants;
use rocmforge::context::{Batch, Context, ContextParams, WantLogits};
use rocmforge::ffi::{
    rf_batch, rf_context, rf_context_default_params, rf_context_free, rf_context_new, rf_decode,
    rf_get_logits, rf_model, rf_model_free, rf_status,
};
use rocmforge::gguf::OwnedGguf;
use rocmforge::model::Model;

#[global_allocator]
static ALLOCATOR: CountingAllocator = CountingAllocator;

/// The system allocator, counting allocations (and reallocations) while [`COUNTING`] is
/// set, on whatever thread they happen.
struct CountingAllocator;

static COUNTING: AtomicBool = AtomicBool::new(false);
static ALLOCATIONS: AtomicUsize = AtomicUsize::new(0);
/// The sizes of the first allocations counted, to tell which buffer it was.
static FIRST_SIZES: [AtomicUsize; 8] = [const { AtomicUsize::new(0) }; 8];

impl CountingAllocator {
    fn count(size: usize) {
        if COUNTING.load(Ordering::SeqCst) {
            let index = ALLOCATIONS.fetch_add(1, Ordering::SeqCst);
            if let Some(first) = FIRST_SIZES.get(index) {
                first.store(size, Ordering::SeqCst);
            }
        }
    }
}

// SAFETY: every call is passed unchanged to the system allocator; counting touches only
// atomics and never allocates.
unsafe impl GlobalAlloc for CountingAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        Self::count(layout.size());
        // SAFETY: the caller's contract, passed on.
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        Self::count(layout.size());
        // SAFETY: the caller's contract, passed on.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        Self::count(new_size);
        // SAFETY: the caller's contract, passed on.
        unsafe { System.realloc(ptr, layout, new_size) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: the caller's contract, passed on.
        unsafe { System.dealloc(ptr, layout) }
    }
}

/// Runs `f` with the counter on; the allocations it made, on any thread, and the sizes
/// of the first few.
fn allocations_during(f: impl FnOnce()) -> (usize, Vec<usize>) {
    ALLOCATIONS.store(0, Ordering::SeqCst);
    COUNTING.store(true, Ordering::SeqCst);
    f();
    COUNTING.store(false, Ordering::SeqCst);
    let count = ALLOCATIONS.load(Ordering::SeqCst);
    let sizes = FIRST_SIZES[..count.min(FIRST_SIZES.len())]
        .iter()
        .map(|s| s.load(Ordering::SeqCst))
        .collect();
    (count, sizes)
}

const WARM_UP_STEPS: usize = 4;
const MEASURED_STEPS: usize = 32;

/// More cached tokens than the attention needs to run on the pool, for every model here.
const PROMPT_TOKENS: usize = 420;

fn prompt(n_vocab: usize) -> Vec<i32> {
    (0..PROMPT_TOKENS)
        .map(|i| ((i * 37 + 11) % n_vocab) as i32)
        .collect()
}

/// The token of decode step `i`.
fn step_token(i: usize, n_vocab: usize) -> i32 {
    ((i * 53 + 7) % n_vocab) as i32
}

fn params() -> ContextParams {
    ContextParams {
        n_ctx: 1024,
        n_seq_max: 2,
        n_batch: 512,
        n_threads: 2,
        ..ContextParams::default()
    }
}

#[test]
fn a_warmed_up_single_token_decode_allocates_nothing() {
    smollm2_through_the_c_abi();
    every_tiny_model_through_context_decode();
}

fn smollm2_through_the_c_abi() {
    let model = load_smollm2();
    let ctx = new_context(model);
    let n_vocab = 49152;
    let prompt = prompt(n_vocab);
    c_decode(ctx, &prompt, None);
    // Steps alternate between a batch that leaves every optional array out and one that
    // gives them all, so both ways through `rf_decode` are measured.
    let mut position = prompt.len() as i32;
    let mut step = |i: usize| {
        let token = step_token(i, n_vocab);
        let explicit = (i % 2 == 1).then_some(position);
        c_decode(ctx, &[token], explicit);
        position += 1;
    };
    (0..WARM_UP_STEPS).for_each(&mut step);
    let (count, sizes) = allocations_during(|| {
        (WARM_UP_STEPS..WARM_UP_STEPS + MEASURED_STEPS).for_each(&mut step);
    });
    // SAFETY: both live, freed once, the context first.
    unsafe {
        rf_context_free(ctx);
        rf_model_free(model);
    }
    assert_eq!(
        count, 0,
        "SmolLM2: {MEASURED_STEPS} rf_decode steps allocated {count} times (first sizes {sizes:?})"
    );
}

fn every_tiny_model_through_context_decode() {
    for variant in variants() {
        let file = OwnedGguf::from_buffer(variant.gguf()).expect("the tiny model parses");
        let model = Arc::new(Model::from_gguf(file).expect("the tiny model loads"));
        let n_vocab = model.config().n_vocab;
        let mut ctx = Context::new(model, &params()).expect("a context");
        ctx.decode(&Batch {
            tokens: &prompt(n_vocab),
            ..Batch::default()
        })
        .expect("the prompt decodes");
        // Every other step asks for its logits explicitly.
        let want = [1u8];
        let mut step = |i: usize| {
            let token = [step_token(i, n_vocab)];
            let want_logits = if i % 2 == 1 {
                WantLogits::Flags(&want)
            } else {
                WantLogits::Last
            };
            ctx.decode(&Batch {
                tokens: &token,
                want_logits,
                ..Batch::default()
            })
            .expect("a decode step");
            ctx.logits(-1).expect("the step's logits");
        };
        (0..WARM_UP_STEPS).for_each(&mut step);
        let (count, sizes) = allocations_during(|| {
            (WARM_UP_STEPS..WARM_UP_STEPS + MEASURED_STEPS).for_each(&mut step);
        });
        assert_eq!(
            count, 0,
            "{}: {MEASURED_STEPS} Context::decode steps allocated {count} times (first sizes {sizes:?})",
            variant.name
        );
    }
}

fn load_smollm2() -> *mut rf_model {
    load_model(SMOLLM2)
}

fn new_context(model: *mut rf_model) -> *mut rf_context {
    let p = params();
    let params = rocmforge::ffi::rf_context_params {
        n_ctx: p.n_ctx as u32,
        n_seq_max: p.n_seq_max as u32,
        n_batch: p.n_batch as u32,
        n_threads: p.n_threads as u32,
        ..rf_context_default_params()
    };
    let mut ctx = ptr::null_mut();
    // SAFETY: a live model, parameters from the defaults and an out-pointer to a local.
    let status = unsafe { rf_context_new(model, &params, &mut ctx) };
    assert_eq!(status, rf_status::RF_OK, "a context: {}", last_error());
    ctx
}

/// Decodes `tokens` on sequence 0, the last one wanting logits, and reads those logits.
/// With `first_position`, the batch gives positions, sequence ids and logit flags
/// explicitly; without, it leaves them NULL.
fn c_decode(ctx: *mut rf_context, tokens: &[i32], first_position: Option<i32>) {
    let n = tokens.len();
    // At most one token when explicit, so these fixed arrays cover it.
    let positions = [first_position.unwrap_or(0)];
    let seq_ids = [0i32];
    let want = [1u8];
    let explicit = |p: *const _| {
        if first_position.is_some() {
            p
        } else {
            ptr::null()
        }
    };
    assert!(first_position.is_none() || n == 1);
    let batch = rf_batch {
        n_tokens: n,
        tokens: tokens.as_ptr(),
        positions: explicit(positions.as_ptr()),
        seq_ids: explicit(seq_ids.as_ptr()),
        want_logits: if first_position.is_some() {
            want.as_ptr()
        } else {
            ptr::null()
        },
    };
    let (mut logits, mut n_vocab) = (ptr::null(), 0usize);
    // SAFETY: a live context, a batch whose arrays hold `n` elements or are NULL, and
    // out-pointers to locals.
    unsafe {
        assert_eq!(
            rf_decode(ctx, &batch),
            rf_status::RF_OK,
            "rf_decode: {}",
            last_error()
        );
        let status = rf_get_logits(ctx, -1, &mut logits, &mut n_vocab);
        assert_eq!(status, rf_status::RF_OK, "rf_get_logits: {}", last_error());
    }
    assert!(n_vocab > 0 && !logits.is_null());
}
