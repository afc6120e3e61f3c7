//! With the test-only `fault-injection` feature, the k-th fallible host allocation fails
//! (`host_memory::fault_injection`). For every k over loading a tiny model, making a
//! context and decoding a prompt through the C ABI, the step that meets the failure
//! returns `RF_ERR_OUT_OF_MEMORY` (the steps before it succeed), freeing what was made
//! leaves the process's live heap bytes where they were (nothing leaked), and the next
//! load, context and decode succeed with the same logits as before.
//!
//! A global allocator counts live heap bytes; everything runs in one test, since both
//! counters are process-wide.
#![cfg(feature = "fault-injection")]

mod common;

use std::alloc::{GlobalAlloc, Layout, System};
use std::ptr;
use std::sync::atomic::{AtomicIsize, Ordering};

use common::ffi::{decode_last_logits, last_error};
use common::tiny_model::variants::variants;
use rocmforge::ffi::{
    rf_context, rf_context_default_params, rf_context_free, rf_context_new, rf_decode, rf_model,
    rf_model_default_params, rf_model_free, rf_model_load_from_memory, rf_status,
};
use rocmforge::host_memory::fault_injection;

#[global_allocator]
static ALLOCATOR: LiveBytes = LiveBytes;

/// The system allocator, keeping the count of bytes allocated and not yet freed.
struct LiveBytes;

static LIVE: AtomicIsize = AtomicIsize::new(0);

// SAFETY: every call is passed unchanged to the system allocator; counting touches only an
// atomic and never allocates.
unsafe impl GlobalAlloc for LiveBytes {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: the caller's contract, passed on.
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            LIVE.fetch_add(layout.size() as isize, Ordering::SeqCst);
        }
        p
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: the caller's contract, passed on.
        let p = unsafe { System.alloc_zeroed(layout) };
        if !p.is_null() {
            LIVE.fetch_add(layout.size() as isize, Ordering::SeqCst);
        }
        p
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: the caller's contract, passed on.
        let p = unsafe { System.realloc(ptr, layout, new_size) };
        if !p.is_null() {
            LIVE.fetch_add(new_size as isize - layout.size() as isize, Ordering::SeqCst);
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size() as isize, Ordering::SeqCst);
        // SAFETY: the caller's contract, passed on.
        unsafe { System.dealloc(ptr, layout) }
    }
}

/// Which step of a run failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Step {
    Load,
    Context,
    Decode,
}

/// Prompt tokens: enough for the matmuls and the attention to use the pool's threads.
const PROMPT: [i32; 20] = [
    1, 5, 9, 2, 7, 30, 11, 4, 8, 3, 6, 10, 12, 14, 13, 15, 20, 17, 16, 19,
];

#[test]
fn every_failed_host_allocation_is_an_out_of_memory_status_and_leaks_nothing() {
    // One model of the 32-value block types and one of the 256-value ones: their
    // activations take different quantization buffers.
    let all = variants();
    for variant in [&all[4], &all[14]] {
        let bytes = variant.gguf();
        fault_injection::fail_at(0);
        let expected = run(&bytes).unwrap_or_else(|(step, status)| {
            panic!("{}: {step:?} failed with {status:?}", variant.name)
        });
        let n_allocations = fault_injection::count();
        assert!(n_allocations > 10, "{}: only {n_allocations}", variant.name);
        // Made before the baseline is taken, with room for every step.
        let mut failed_at = Vec::with_capacity(n_allocations);
        let baseline = live_bytes();
        for k in 1..=n_allocations {
            fault_injection::fail_at(k);
            let (step, status) = match run(&bytes) {
                Ok(_) => panic!("{}: allocation {k} failed unnoticed", variant.name),
                Err(failure) => failure,
            };
            failed_at.push(step);
            assert_eq!(
                status,
                rf_status::RF_ERR_OUT_OF_MEMORY,
                "{}: allocation {k}, at {step:?}: {}",
                variant.name,
                last_error()
            );
            assert_eq!(
                live_bytes(),
                baseline,
                "{}: allocation {k} failed at {step:?} and leaked",
                variant.name
            );
            fault_injection::fail_at(0);
            let again = run(&bytes).unwrap_or_else(|(step, status)| {
                panic!(
                    "{}: after allocation {k}: {step:?} gave {status:?}",
                    variant.name
                )
            });
            assert_eq!(again, expected, "{}: after allocation {k}", variant.name);
        }
        let at = |step| failed_at.iter().filter(|s| **s == step).count();
        let (load, context, decode) = (at(Step::Load), at(Step::Context), at(Step::Decode));
        eprintln!(
            "{}: {n_allocations} fallible allocations failed in turn: {load} in the load, \
             {context} in context creation, {decode} in the decode",
            variant.name
        );
        // The load makes none of its allocations through `host_memory` (yet), so only
        // context creation and the decode are swept.
        assert!(
            context > 0 && decode > 0,
            "{}: the sweep missed a step",
            variant.name
        );
    }
}

/// The heap bytes live now, with the thread's last-error message set to a fixed text
/// first (a failed call leaves its own message there, of its own length).
fn live_bytes() -> isize {
    // SAFETY: NULL arguments are defined to fail with RF_ERR_INVALID_ARGUMENT.
    let status = unsafe { rf_decode(ptr::null_mut(), ptr::null()) };
    assert_eq!(status, rf_status::RF_ERR_INVALID_ARGUMENT);
    LIVE.load(Ordering::SeqCst)
}

/// Loads the model in `bytes` on the CPU, makes a context of two threads and decodes
/// [`PROMPT`]; frees both whatever happened. The last token's logits, or the step that
/// failed and its status.
fn run(bytes: &[u8]) -> Result<Vec<f32>, (Step, rf_status)> {
    let params = rocmforge::ffi::rf_model_params {
        device: rocmforge::ffi::RF_DEVICE_CPU,
        ..rf_model_default_params()
    };
    let mut model: *mut rf_model = ptr::null_mut();
    // SAFETY: `bytes` outlives the model, freed below; the out-pointer is a local.
    let status = unsafe {
        rf_model_load_from_memory(bytes.as_ptr().cast(), bytes.len(), &params, &mut model)
    };
    if status != rf_status::RF_OK {
        assert!(model.is_null());
        return Err((Step::Load, status));
    }
    let result = with_context(model);
    // SAFETY: a live model, its contexts freed already, freed once.
    unsafe { rf_model_free(model) };
    result
}

fn with_context(model: *mut rf_model) -> Result<Vec<f32>, (Step, rf_status)> {
    let params = rocmforge::ffi::rf_context_params {
        n_ctx: 64,
        n_threads: 2,
        ..rf_context_default_params()
    };
    let mut ctx: *mut rf_context = ptr::null_mut();
    // SAFETY: a live model, parameters from the defaults and an out-pointer to a local.
    let status = unsafe { rf_context_new(model, &params, &mut ctx) };
    if status != rf_status::RF_OK {
        assert!(ctx.is_null());
        return Err((Step::Context, status));
    }
    let result = decode_last_logits(ctx, &PROMPT).map_err(|status| (Step::Decode, status));
    // SAFETY: a live context, freed once.
    unsafe { rf_context_free(ctx) };
    result
}
