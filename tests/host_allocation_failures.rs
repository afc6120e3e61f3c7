//! With the test-only `fault-injection` feature, the k-th fallible host allocation or
//! worker-thread start fails (`host_memory::fault_injection`). For every k over loading a
//! tiny model, making a context, decoding a prompt and generating from text through the C
//! ABI, the step that meets the failure returns `RF_ERR_OUT_OF_MEMORY` (the steps before it
//! succeed), freeing what was made leaves the process's live heap bytes where they were
//! (nothing leaked), and the next load, context, decode and generation succeed with the
//! same logits and text as before.
//!
//! A global allocator counts live heap bytes; everything runs in one test, since both
//! counters are process-wide.
#![cfg(feature = "fault-injection")]

mod common;

use std::alloc::{GlobalAlloc, Layout, System};
use std::ffi::{c_char, c_void};
use std::ptr;
use std::sync::atomic::{AtomicIsize, Ordering};

use common::ffi::{decode_last_logits, last_error};
use common::tiny_model::variants::variants;
use rocmforge::ffi::{
    rf_context, rf_context_default_params, rf_context_free, rf_context_new, rf_decode, rf_generate,
    rf_generate_default_params, rf_model, rf_model_default_params, rf_model_free,
    rf_model_load_from_memory, rf_sampler_default_params, rf_sampler_free, rf_sampler_new,
    rf_status,
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
    Generate,
}

/// What a run gives: the prompt's last logits and the generated text.
type Output = (Vec<f32>, Vec<u8>);

/// Prompt tokens: enough for the matmuls and the attention to use the pool's threads.
const PROMPT: [i32; 20] = [
    1, 5, 9, 2, 7, 30, 11, 4, 8, 3, 6, 10, 12, 14, 13, 15, 20, 17, 16, 19,
];

/// A text prompt for `rf_generate`, on its own sequence.
const TEXT_PROMPT: &str = "hello world, the quick brown fox";

#[test]
fn every_failed_host_allocation_is_an_out_of_memory_status_and_leaks_nothing() {
    // One model of the 32-value block types and one of the 256-value ones: their
    // activations take different quantization buffers.
    let all = variants();
    for variant in [&all[4], &all[14]] {
        let bytes = variant.gguf();
        fault_injection::fail_at(0);
        let expected = run(&bytes).unwrap_or_else(|(step, status)| {
            panic!(
                "{}: {step:?} failed with {status:?}: {}",
                variant.name,
                last_error()
            )
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
        let steps = [Step::Load, Step::Context, Step::Decode, Step::Generate].map(at);
        eprintln!(
            "{}: {n_allocations} fallible acquisitions failed in turn: {} in the load, {} in \
             context creation, {} in the decode, {} in generation",
            variant.name, steps[0], steps[1], steps[2], steps[3]
        );
        assert!(
            steps.iter().all(|&n| n > 0),
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
fn run(bytes: &[u8]) -> Result<Output, (Step, rf_status)> {
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

fn with_context(model: *mut rf_model) -> Result<Output, (Step, rf_status)> {
    let params = rocmforge::ffi::rf_context_params {
        n_ctx: 128,
        n_threads: 2,
        n_seq_max: 2,
        ..rf_context_default_params()
    };
    let mut ctx: *mut rf_context = ptr::null_mut();
    // SAFETY: a live model, parameters from the defaults and an out-pointer to a local.
    let status = unsafe { rf_context_new(model, &params, &mut ctx) };
    if status != rf_status::RF_OK {
        assert!(ctx.is_null());
        return Err((Step::Context, status));
    }
    let result = decode_last_logits(ctx, &PROMPT)
        .map_err(|status| (Step::Decode, status))
        .and_then(|logits| {
            let text = generate(ctx).map_err(|status| (Step::Generate, status))?;
            Ok((logits, text))
        });
    // SAFETY: a live context, freed once.
    unsafe { rf_context_free(ctx) };
    result
}

/// Eight greedy tokens after [`TEXT_PROMPT`] on sequence 1, as text.
fn generate(ctx: *mut rf_context) -> Result<Vec<u8>, rf_status> {
    let sampler_params = rocmforge::ffi::rf_sampler_params {
        temperature: 0.0,
        ..rf_sampler_default_params()
    };
    let mut sampler = ptr::null_mut();
    // SAFETY: parameters from the defaults and an out-pointer to a local.
    let status = unsafe { rf_sampler_new(&sampler_params, &mut sampler) };
    if status != rf_status::RF_OK {
        return Err(status);
    }
    let params = rocmforge::ffi::rf_generate_params {
        max_tokens: 8,
        seq_id: 1,
        ..rf_generate_default_params()
    };
    let mut text = Vec::new();
    // SAFETY: a live context and sampler, prompt bytes of the given length, parameters from
    // the defaults, and a callback whose user data is `text`, alive for the call.
    let status = unsafe {
        rf_generate(
            ctx,
            sampler,
            TEXT_PROMPT.as_ptr().cast(),
            TEXT_PROMPT.len(),
            &params,
            Some(collect_text),
            (&raw mut text).cast(),
        )
    };
    // SAFETY: a live sampler, freed once.
    unsafe { rf_sampler_free(sampler) };
    if status == rf_status::RF_OK {
        Ok(text)
    } else {
        Err(status)
    }
}

/// `rf_generate`'s text callback: appends the piece to the `Vec<u8>` at `user_data`.
unsafe extern "C" fn collect_text(text: *const c_char, len: usize, user_data: *mut c_void) -> bool {
    // SAFETY: `generate` passes its `Vec<u8>` as user data; the library passes `len` bytes.
    let (out, piece) = unsafe {
        (
            &mut *user_data.cast::<Vec<u8>>(),
            std::slice::from_raw_parts(text.cast::<u8>(), len),
        )
    };
    out.extend_from_slice(piece);
    true
}
